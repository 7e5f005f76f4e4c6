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
	"github.com/cvfeed/cvfeed/state"
)

// watchFolder is a folder for Watch tests: quick to settle.
func watchFolder(path string) config.Folder {
	f := folder(path)
	f.Settle = 200 * time.Millisecond
	f.Watch = config.WatchAuto
	f.RescanInterval = time.Hour
	f.MaxSize = 10 << 20
	return f
}

// logRecorder keeps the warnings and errors logged, and shows every record
// in the test's output.
type logRecorder struct {
	slog.Handler
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogRecorder(t *testing.T) (*slog.Logger, func() []string) {
	r := &logRecorder{Handler: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}), mu: new(sync.Mutex), recs: new([]slog.Record)}
	warnings := func() []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		var out []string
		for _, rec := range *r.recs {
			out = append(out, rec.Level.String()+" "+rec.Message)
		}
		return out
	}
	return slog.New(r), warnings
}

func (r *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		r.mu.Lock()
		*r.recs = append(*r.recs, rec.Clone())
		r.mu.Unlock()
	}
	return r.Handler.Handle(ctx, rec)
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{Handler: r.Handler.WithAttrs(as), mu: r.mu, recs: r.recs}
}

func (r *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{Handler: r.Handler.WithGroup(name), mu: r.mu, recs: r.recs}
}

// runWatch runs w over folders until the test ends, and checks that Run
// then returns nil promptly.
func runWatch(t *testing.T, w *Watch, folders ...config.Folder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, folders) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// items returns the items of the store under root by relative path, with
// their content hash; a path claimed twice fails the test.
func items(t *testing.T, st *state.Store, root string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := st.Items(func(it state.Item) error {
		if !strings.HasPrefix(it.Path, root+"/") {
			return nil
		}
		rel, _ := filepath.Rel(root, it.Path)
		rel = filepath.ToSlash(rel)
		if _, dup := out[rel]; dup {
			t.Errorf("%s claimed twice", rel)
		}
		out[rel] = it.SHA256
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func itemNames(m map[string][32]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestWatchNewFilesClaimedOnce(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, filepath.Join(root, "before.pdf"), "there before the start")
	st := openStore(t)
	w := NewWatch(st, WatchOptions{Logger: testLogger(t)})
	runWatch(t, w, watchFolder(root))
	waitFor(t, 5*time.Second, "the file there before the start", func() bool { return len(items(t, st, root)) == 1 })
	for i := range 3 {
		write(t, filepath.Join(root, fmt.Sprintf("cv%d.pdf", i)), fmt.Sprint("cv ", i))
	}
	want := []string{"before.pdf", "cv0.pdf", "cv1.pdf", "cv2.pdf"}
	waitFor(t, 5*time.Second, "4 items", func() bool { return len(items(t, st, root)) == 4 })
	time.Sleep(500 * time.Millisecond) // nothing more comes
	if got := itemNames(items(t, st, root)); !slices.Equal(got, want) {
		t.Errorf("items %q, want %q", got, want)
	}
	if c := w.Stats().Snapshot(); c.New != 4 || c.Duplicates != 0 {
		t.Errorf("new %d, duplicates %d; want 4, 0", c.New, c.Duplicates)
	}
	if m := w.Modes()["inbox"]; m.Kind != ModeEvents {
		t.Errorf("mode %+v, want events on a local file system", m)
	}
}

// TestWatchHeldOpenFile is the acceptance check of issue 3: a scanner that
// keeps its file open and pauses between pages for longer than settle must
// not have half a file taken.
func TestWatchHeldOpenFile(t *testing.T) {
	for _, mode := range []string{config.WatchEvents, config.WatchPoll} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			st := openStore(t)
			f := watchFolder(root)
			f.Settle = time.Second
			f.Watch = mode
			if mode == config.WatchPoll {
				f.PollInterval = 200 * time.Millisecond
			}
			runWatch(t, NewWatch(st, WatchOptions{Logger: testLogger(t)}), f)
			time.Sleep(200 * time.Millisecond) // the start rescan is done
			path := filepath.Join(root, "scan.pdf")
			fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			first, second := strings.Repeat("page one ", 1000), strings.Repeat("page two ", 1000)
			if _, err := fh.WriteString(first); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if got := items(t, st, root); len(got) != 0 {
				t.Fatalf("claimed %q while the writer still held the file", itemNames(got))
			}
			if _, err := fh.WriteString(second); err != nil {
				t.Fatal(err)
			}
			fh.Close()
			waitFor(t, 5*time.Second, "the complete file", func() bool { return len(items(t, st, root)) == 1 })
			time.Sleep(300 * time.Millisecond)
			got := items(t, st, root)
			if want := sha256.Sum256([]byte(first + second)); len(got) != 1 || got["scan.pdf"] != want {
				t.Errorf("items %q; want scan.pdf once, with the hash of the whole content", itemNames(got))
			}
		})
	}
}

func TestWatchIgnoresTempNamesAndTakesTheRename(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st := openStore(t)
	runWatch(t, NewWatch(st, WatchOptions{Logger: testLogger(t)}), watchFolder(root))
	time.Sleep(100 * time.Millisecond)
	write(t, filepath.Join(root, "~$x.docx"), "office lock")
	write(t, filepath.Join(root, "x.part"), "partial")
	write(t, filepath.Join(root, ".hidden.pdf"), "hidden")
	part := filepath.Join(root, "x.pdf.part")
	write(t, part, "the downloaded CV")
	time.Sleep(400 * time.Millisecond) // longer than settle: the .part is ignored, not late
	if err := os.Rename(part, filepath.Join(root, "x.pdf")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "x.pdf", func() bool { return len(items(t, st, root)) > 0 })
	time.Sleep(500 * time.Millisecond)
	if got := itemNames(items(t, st, root)); !slices.Equal(got, []string{"x.pdf"}) {
		t.Errorf("items %q, want only x.pdf", got)
	}
}

func TestWatchDoneDirInsideIsNotTaken(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	done := filepath.Join(root, "done")
	write(t, filepath.Join(done, "old.pdf"), "uploaded yesterday")
	st := openStore(t)
	f := watchFolder(root)
	f.DoneDir = done
	f.AfterUpload = config.AfterMove
	w := NewWatch(st, WatchOptions{Logger: testLogger(t)})
	var ev *eventWatch
	var mu sync.Mutex
	w.hooks.events = func(_ string, e *eventWatch) { mu.Lock(); ev = e; mu.Unlock() }
	runWatch(t, w, f)
	write(t, filepath.Join(root, "a.pdf"), "a CV")
	waitFor(t, 5*time.Second, "a.pdf", func() bool { return len(items(t, st, root)) == 1 })
	// The after-action moves it; another file is moved there before it
	// settled.
	if err := os.Rename(filepath.Join(root, "a.pdf"), filepath.Join(done, "a.pdf")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "b.pdf"), "b CV")
	if err := os.Rename(filepath.Join(root, "b.pdf"), filepath.Join(done, "b.pdf")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(done, "c.pdf"), "written there")
	time.Sleep(800 * time.Millisecond)
	if got := itemNames(items(t, st, root)); !slices.Equal(got, []string{"a.pdf"}) {
		t.Errorf("items %q, want only a.pdf", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if ev.watching(done) {
		t.Error("done_dir is watched")
	}
}

func TestWatchFileDeletedBeforeSettle(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st := openStore(t)
	f := watchFolder(root)
	f.Settle = time.Second
	w := NewWatch(st, WatchOptions{Logger: testLogger(t)})
	runWatch(t, w, f)
	time.Sleep(100 * time.Millisecond)
	p := filepath.Join(root, "short-lived.pdf")
	write(t, p, "here for a moment")
	waitFor(t, 2*time.Second, "the file to be pending", func() bool { return w.Stats().Settling.Load() == 1 })
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the file to be forgotten", func() bool { return w.Stats().Settling.Load() == 0 })
	time.Sleep(1500 * time.Millisecond) // past settle
	if got := items(t, st, root); len(got) != 0 {
		t.Errorf("items %q, want none", itemNames(got))
	}
}

func TestWatchSetFolders(t *testing.T) {
	t.Parallel()
	rootA, rootB := t.TempDir(), t.TempDir()
	st := openStore(t)
	a, b := watchFolder(rootA), watchFolder(rootB)
	a.Name, b.Name = "a", "b"
	w := NewWatch(st, WatchOptions{Logger: testLogger(t)})
	runWatch(t, w, a)
	waitFor(t, 2*time.Second, "folder a", func() bool { return w.Modes()["a"].Kind != "" })
	w.SetFolders([]config.Folder{a, b})
	waitFor(t, 2*time.Second, "folder b", func() bool { return w.Modes()["b"].Kind != "" })
	write(t, filepath.Join(rootB, "b.pdf"), "in b")
	waitFor(t, 5*time.Second, "b.pdf", func() bool { return len(items(t, st, rootB)) == 1 })

	w.SetFolders([]config.Folder{b})
	waitFor(t, 2*time.Second, "folder a to stop", func() bool { _, ok := w.Modes()["a"]; return !ok })
	write(t, filepath.Join(rootA, "a.pdf"), "in a, not watched any more")
	write(t, filepath.Join(rootB, "b2.pdf"), "in b again")
	waitFor(t, 5*time.Second, "b2.pdf", func() bool { return len(items(t, st, rootB)) == 2 })
	time.Sleep(500 * time.Millisecond)
	if got := items(t, st, rootA); len(got) != 0 {
		t.Errorf("items in the removed folder: %q", itemNames(got))
	}
	// A changed folder restarts: b becomes polled.
	b.Watch = config.WatchPoll
	b.PollInterval = 100 * time.Millisecond
	w.SetFolders([]config.Folder{b})
	waitFor(t, 2*time.Second, "folder b polled", func() bool { return w.Modes()["b"].Kind == ModePoll })
}
