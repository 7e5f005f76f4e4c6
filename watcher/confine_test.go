package watcher

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/config"
)

// lineRecorder keeps every record as "LEVEL message key=value...", and
// shows it in the test's output.
type lineRecorder struct {
	slog.Handler
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newLineRecorder(t *testing.T) (*slog.Logger, func(substr ...string) []string) {
	r := &lineRecorder{Handler: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}), mu: new(sync.Mutex), lines: new([]string)}
	match := func(substr ...string) []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		var out []string
	lines:
		for _, l := range *r.lines {
			for _, s := range substr {
				if !strings.Contains(l, s) {
					continue lines
				}
			}
			out = append(out, l)
		}
		return out
	}
	return slog.New(r), match
}

func (r *lineRecorder) Handle(ctx context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
		return true
	}
	for _, a := range r.attrs {
		add(a)
	}
	rec.Attrs(add)
	r.mu.Lock()
	*r.lines = append(*r.lines, b.String())
	r.mu.Unlock()
	return r.Handler.Handle(ctx, rec)
}

func (r *lineRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineRecorder{Handler: r.Handler.WithAttrs(as), mu: r.mu, lines: r.lines, attrs: append(slices.Clip(r.attrs), as...)}
}

// linkTree makes a share whose links lead inside and outside it:
//
//	share/in.pdf, share/sub/b.pdf
//	share/private/t1.pdf, t2.pdf, d/t3.pdf   (excluded: reached only by links)
//	share/rel-in.pdf -> private/t1.pdf
//	share/abs-in.pdf -> DIR/share/private/t2.pdf
//	share/dir-in -> ../share/private/d       (climbs above and comes back)
//	share/file-out.pdf -> ../out/secret.pdf
//	share/dir-out -> DIR/out/dir
//	out/secret.pdf, out/dir/x.pdf            (outside)
//
// It returns DIR, the share and the hashes of the two outside files.
func linkTree(t *testing.T) (string, string, [][32]byte) {
	t.Helper()
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	write(t, filepath.Join(share, "in.pdf"), "in")
	write(t, filepath.Join(share, "sub", "b.pdf"), "b")
	write(t, filepath.Join(share, "private", "t1.pdf"), "t1 via a relative link")
	write(t, filepath.Join(share, "private", "t2.pdf"), "t2 via an absolute link")
	write(t, filepath.Join(share, "private", "d", "t3.pdf"), "t3 via a directory link")
	write(t, filepath.Join(dir, "out", "secret.pdf"), "secret outside")
	write(t, filepath.Join(dir, "out", "dir", "x.pdf"), "x outside")
	for name, target := range map[string]string{
		"rel-in.pdf":   "private/t1.pdf",
		"abs-in.pdf":   filepath.Join(share, "private", "t2.pdf"),
		"dir-in":       "../share/private/d",
		"file-out.pdf": "../out/secret.pdf",
		"dir-out":      filepath.Join(dir, "out", "dir"),
	} {
		if err := os.Symlink(target, filepath.Join(share, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, share, [][32]byte{sha256.Sum256([]byte("secret outside")), sha256.Sum256([]byte("x outside"))}
}

func TestScanFollowSymlinks(t *testing.T) {
	inside := []string{"abs-in.pdf", "dir-in/t3.pdf", "in.pdf", "rel-in.pdf", "sub/b.pdf"}
	tests := []struct {
		policy string
		want   []string
		// log lines expected once each: level, message, link
		logs [][]string
	}{
		{config.FollowInside, inside, [][]string{
			{"WARN", "leads outside the folder", "link=SHARE/file-out.pdf", "target=../out/secret.pdf"},
			{"WARN", "leads outside the folder", "link=SHARE/dir-out", "target=DIR/out/dir"},
		}},
		{config.FollowNever, []string{"in.pdf", "sub/b.pdf"}, [][]string{
			{"INFO", "not followed", "link=SHARE/rel-in.pdf"},
			{"INFO", "not followed", "link=SHARE/abs-in.pdf"},
			{"INFO", "not followed", "link=SHARE/dir-in"},
			{"INFO", "not followed", "link=SHARE/file-out.pdf"},
			{"INFO", "not followed", "link=SHARE/dir-out"},
		}},
		{config.FollowAll, append([]string{"dir-out/x.pdf", "file-out.pdf"}, inside...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			dir, share, outside := linkTree(t)
			st := openStore(t)
			f := folder(share)
			f.Exclude = []string{"private"}
			f.FollowSymlinks = tt.policy
			log, lines := newLineRecorder(t)
			s := NewScanner(st, ScannerOptions{Logger: log})
			if err := s.Scan(t.Context(), []config.Folder{f}); err != nil {
				t.Fatal(err)
			}
			got := items(t, st, share)
			if names := itemNames(got); !slices.Equal(names, slices.Sorted(slices.Values(tt.want))) {
				t.Errorf("items %q, want %q", names, tt.want)
			}
			if tt.policy != config.FollowAll {
				for p, sum := range got {
					if slices.Contains(outside, sum) {
						t.Errorf("%s holds the content of a file outside the folder", p)
					}
				}
			}
			for _, want := range tt.logs {
				for i := range want {
					want[i] = strings.NewReplacer("SHARE", share, "DIR", dir).Replace(want[i])
				}
				if n := len(lines(want...)); n != 1 {
					t.Errorf("%d log lines with %q, want 1", n, want)
				}
			}
			if c := s.Stats().Snapshot(); c.Errors != 0 {
				t.Errorf("errors %d, want 0: a link not followed is no error", c.Errors)
			}
		})
	}
}

// TestWatchWarnsOncePerLink: the daemon walks the same tree again and
// again; a link outside is named once, and again when its target changes.
func TestWatchWarnsOncePerLink(t *testing.T) {
	t.Parallel()
	dir, share, _ := linkTree(t)
	st := openStore(t)
	log, lines := newLineRecorder(t)
	w := NewWatch(st, WatchOptions{Logger: log})
	polls := make(chan struct{}, 100)
	w.hooks.walked = func(_ string, k jobKind, _ time.Duration) {
		select {
		case polls <- struct{}{}:
		default:
		}
	}
	f := watchFolder(share)
	f.Exclude = []string{"private"}
	f.Watch = config.WatchPoll
	f.PollInterval = 50 * time.Millisecond
	runWatch(t, w, f)
	waitWalks := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-polls:
			case <-time.After(10 * time.Second):
				t.Fatal("no walk within 10s")
			}
		}
	}
	waitWalks(5)
	link := "link=" + filepath.Join(share, "file-out.pdf")
	if n := len(lines("WARN", "outside", link)); n != 1 {
		t.Errorf("after 5 walks, %d warnings for %s, want 1", n, link)
	}
	// Another target: named again.
	os.Remove(filepath.Join(share, "file-out.pdf"))
	if err := os.Symlink(filepath.Join(dir, "out", "dir", "x.pdf"), filepath.Join(share, "file-out.pdf")); err != nil {
		t.Fatal(err)
	}
	waitWalks(5)
	if n := len(lines("WARN", "outside", link)); n != 2 {
		t.Errorf("after the target changed, %d warnings for %s, want 2", n, link)
	}
	waitFor(t, 5*time.Second, "the files inside", func() bool { return len(items(t, st, share)) == 5 })
	if got := itemNames(items(t, st, share)); !slices.Equal(got, []string{"abs-in.pdf", "dir-in/t3.pdf", "in.pdf", "rel-in.pdf", "sub/b.pdf"}) {
		t.Errorf("items %q", got)
	}
}

// TestWatchEventLinkOutside: a link made while cvfeed watches (inotify)
// is judged like one found by a walk.
func TestWatchEventLinkOutside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	write(t, filepath.Join(dir, "out", "secret.pdf"), "secret outside")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	log, lines := newLineRecorder(t)
	w := NewWatch(st, WatchOptions{Logger: log})
	runWatch(t, w, watchFolder(share))
	waitFor(t, 5*time.Second, "events mode", func() bool { return w.Modes()["inbox"].Kind == ModeEvents })
	waitFor(t, 5*time.Second, "the start rescan", func() bool { return len(lines("walk done")) > 0 })
	if err := os.Symlink("../out/secret.pdf", filepath.Join(share, "cv.pdf")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(share, "real.pdf"), "a real CV")
	link := "link=" + filepath.Join(share, "cv.pdf")
	waitFor(t, 5*time.Second, "the warning", func() bool { return len(lines("WARN", "outside", link)) == 1 })
	waitFor(t, 5*time.Second, "the real CV", func() bool { return len(items(t, st, share)) == 1 })
	if got := itemNames(items(t, st, share)); !slices.Equal(got, []string{"real.pdf"}) {
		t.Errorf("items %q, want only real.pdf", got)
	}
}

// TestHashAfterDirSwappedForLink: between the walk and the read, a
// directory is replaced by a symbolic link to outside. The read fails;
// nothing outside is read.
func TestHashAfterDirSwappedForLink(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	write(t, filepath.Join(share, "d", "cv.pdf"), "inside")
	write(t, filepath.Join(dir, "out", "cv.pdf"), "outside")
	f := folder(share)
	fi, err := os.Stat(filepath.Join(share, "d", "cv.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(share, "d"), filepath.Join(share, "d.old"))
	if err := os.Symlink("../out", filepath.Join(share, "d")); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{config.FollowInside, config.FollowNever} {
		f.FollowSymlinks = policy
		h := newHandover(openStore(t), testLogger(t), nil, nil)
		c, res := h.examine(file{folder: &f, abs: filepath.Join(share, "d", "cv.pdf"), rel: "d/cv.pdf", info: fi}, make([]byte, 4096))
		if res != dropped || h.stats.Bytes.Load() != 0 {
			t.Errorf("%s: examine after the swap = %v, %d bytes read (candidate %x); want dropped, nothing read", policy, res, h.stats.Bytes.Load(), c.SHA256)
		}
	}
}
