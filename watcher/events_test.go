package watcher

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/cvfeed/cvfeed/config"
)

// captureEvents returns a Watch whose event side the test can look at.
func captureEvents(w *Watch) func() *eventWatch {
	var mu sync.Mutex
	var ev *eventWatch
	w.hooks.events = func(_ string, e *eventWatch) { mu.Lock(); ev = e; mu.Unlock() }
	return func() *eventWatch { mu.Lock(); defer mu.Unlock(); return ev }
}

func (e *eventWatch) watchedDirs(root string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for d := range e.dirs {
		rel, _ := filepath.Rel(root, d)
		out = append(out, filepath.ToSlash(rel))
	}
	slices.Sort(out)
	return out
}

func TestWatchDirectories(t *testing.T) {
	t.Parallel()
	root, elsewhere := t.TempDir(), t.TempDir()
	st := openStore(t)
	log, warnings := newLogRecorder(t)
	w := NewWatch(st, WatchOptions{Logger: log})
	events := captureEvents(w)
	runWatch(t, w, watchFolder(root))
	waitFor(t, 2*time.Second, "the start rescan", func() bool { return events() != nil && events().watching(root) })

	// mkdir -p a/b/c, then files at once: the directories are there
	// before their watches.
	if err := os.MkdirAll(filepath.Join(root, "a", "b", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "a", "1.pdf"), "one")
	write(t, filepath.Join(root, "a", "b", "2.pdf"), "two")
	write(t, filepath.Join(root, "a", "b", "c", "3.pdf"), "three")
	// A directory moved in with its files, old ones.
	write(t, filepath.Join(elsewhere, "batch", "4.pdf"), "four")
	write(t, filepath.Join(elsewhere, "batch", "deep", "5.pdf"), "five")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(elsewhere, "batch", "4.pdf"), old, old)
	if err := os.Rename(filepath.Join(elsewhere, "batch"), filepath.Join(root, "batch")); err != nil {
		t.Fatal(err)
	}
	// A dot directory and an excluded one are neither watched nor taken.
	write(t, filepath.Join(root, ".git", "6.pdf"), "six")
	want := []string{"a/1.pdf", "a/b/2.pdf", "a/b/c/3.pdf", "batch/4.pdf", "batch/deep/5.pdf"}
	waitFor(t, 5*time.Second, "the files of the new directories", func() bool { return len(items(t, st, root)) >= len(want) })
	time.Sleep(300 * time.Millisecond)
	if got := itemNames(items(t, st, root)); !slices.Equal(got, want) {
		t.Errorf("items %q, want %q", got, want)
	}
	dirs := []string{".", "a", "a/b", "a/b/c", "batch", "batch/deep"}
	if got := events().watchedDirs(root); !slices.Equal(got, dirs) {
		t.Errorf("watched %q, want %q", got, dirs)
	}

	// Removed directories drop their watches, quietly.
	if err := os.RemoveAll(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "batch"), filepath.Join(elsewhere, "gone")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the watches to be dropped", func() bool {
		return slices.Equal(events().watchedDirs(root), []string{"."})
	})
	// A directory moved away is not watched any more: a file written
	// there now is not taken.
	write(t, filepath.Join(elsewhere, "gone", "7.pdf"), "seven")
	time.Sleep(400 * time.Millisecond)
	if got := items(t, st, root); len(got) != len(want) {
		t.Errorf("items %q after removals", itemNames(got))
	}
	if ws := warnings(); len(ws) != 0 {
		t.Errorf("warnings and errors logged: %q", ws)
	}
}

func TestWatchOddNames(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st := openStore(t)
	w := NewWatch(st, WatchOptions{Logger: testLogger(t)})
	runWatch(t, w, watchFolder(root))
	time.Sleep(100 * time.Millisecond)
	write(t, filepath.Join(root, "bad\xffname.pdf"), "invalid UTF-8 in the name")
	write(t, filepath.Join(root, "new\nline.pdf"), "a newline in the name")
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	os.Symlink(root, filepath.Join(root, "sub", "loop"))
	os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(root, "dangling.pdf"))
	write(t, filepath.Join(root, "sub", "ok.pdf"), "fine")
	waitFor(t, 5*time.Second, "3 items", func() bool { return len(items(t, st, root)) == 3 })
	time.Sleep(300 * time.Millisecond)
	want := []string{"bad\xffname.pdf", "new\nline.pdf", "sub/ok.pdf"}
	if got := itemNames(items(t, st, root)); !slices.Equal(got, want) {
		t.Errorf("items %q, want %q", got, want)
	}
}

// TestWatchFallsBackToPolling: a watch that cannot be added (here a fake
// ENOSPC from the third directory on) makes the folder polled, says so
// once, and files are still taken.
func TestWatchFallsBackToPolling(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, d := range []string{"a", "b", "c"} {
		write(t, filepath.Join(root, d, "old-"+d+".pdf"), "old "+d)
	}
	st := openStore(t)
	log, warnings := newLogRecorder(t)
	w := NewWatch(st, WatchOptions{Logger: log})
	var mu sync.Mutex
	added := 0
	w.hooks.addWatch = func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if added++; added > 2 {
			return syscall.ENOSPC
		}
		return nil
	}
	f := watchFolder(root)
	f.Watch = config.WatchEvents
	f.PollInterval = 200 * time.Millisecond // the fallback's period
	runWatch(t, w, f)
	waitFor(t, 3*time.Second, "the fallback", func() bool { return w.Modes()["inbox"].Kind == ModePoll })
	if m := w.Modes()["inbox"]; !strings.Contains(m.Reason, "fs.inotify.max_user_watches") || !strings.HasPrefix(m.Reason, "fallback: ") {
		t.Errorf("mode %+v, want a fallback naming max_user_watches", m)
	}
	write(t, filepath.Join(root, "c", "new.pdf"), "new after the fallback")
	waitFor(t, 5*time.Second, "4 items", func() bool { return len(items(t, st, root)) == 4 })
	ws := warnings()
	if len(ws) != 1 || !strings.Contains(ws[0], "polling it instead") {
		t.Errorf("warnings %q, want one about polling", ws)
	}
}

func TestOverflowFallsBack(t *testing.T) {
	s := newSource(NewWatch(nil, WatchOptions{}), watchFolder(t.TempDir()))
	fb := s.onError(fsnotify.ErrEventOverflow)
	if fb == nil || !strings.Contains(fb.reason, "max_queued_events") {
		t.Errorf("onError(overflow) = %v, want a fallback naming max_queued_events", fb)
	}
	if fb := s.onError(syscall.EINVAL); fb != nil {
		t.Errorf("onError(EINVAL) = %v, want nil", fb)
	}
}

func TestWatchFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{syscall.ENOSPC, "fallback: inotify watch limit reached (fs.inotify.max_user_watches)"},
		{syscall.EMFILE, "fallback: inotify instance limit reached (fs.inotify.max_user_instances)"},
		{syscall.ENOMEM, "fallback: cannot watch /x"},
	} {
		if got := "fallback: " + watchFailure("/x", tc.err).reason; got != tc.want {
			t.Errorf("watchFailure(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestNetworkFS(t *testing.T) {
	for _, tc := range []struct {
		magic int64
		name  string
		ok    bool
	}{
		{0x6969, "nfs", true},
		{0x517B, "smb", true},
		{0xFF534D42, "cifs", true},
		{int64(int32(-0xACB2BE)), "cifs", true}, // 0xFF534D42 in a 32-bit f_type
		{0xFE534D42, "smb2", true},
		{0x65735546, "fuse", true},
		{0x00C36400, "ceph", true},
		{0x01021997, "9p", true},
		{0x6B414653, "afs", true},
		{0xEF53, "", false},     // ext4
		{0x58465342, "", false}, // xfs
		{0x9123683E, "", false}, // btrfs
		{0x01021994, "", false}, // tmpfs
		{0x794C7630, "", false}, // overlayfs
		{0, "", false},
	} {
		if name, ok := networkFS(tc.magic); name != tc.name || ok != tc.ok {
			t.Errorf("networkFS(%#x) = %q, %v; want %q, %v", tc.magic, name, ok, tc.name, tc.ok)
		}
	}
}

func TestChooseMode(t *testing.T) {
	defer func(old func(string) (int64, error)) { fsTypeOf = old }(fsTypeOf)
	magic := int64(0xEF53)
	fsTypeOf = func(string) (int64, error) { return magic, nil }
	for _, tc := range []struct {
		watch  string
		poll   time.Duration
		magic  int64
		want   Mode
		period time.Duration
	}{
		{config.WatchAuto, 0, 0xEF53, Mode{ModeEvents, "local file system"}, config.DefaultPoll},
		{config.WatchAuto, 0, 0x6969, Mode{ModePoll, "network file system (nfs)"}, config.DefaultPoll},
		{config.WatchAuto, time.Minute, 0x6969, Mode{ModePoll, "poll_interval set"}, time.Minute},
		{config.WatchAuto, time.Second, 0xEF53, Mode{ModePoll, "poll_interval set"}, time.Second},
		{config.WatchPoll, 0, 0xEF53, Mode{ModePoll, `watch = "poll"`}, config.DefaultPoll},
		{config.WatchEvents, 0, 0x6969, Mode{ModeEvents, `watch = "events"`}, config.DefaultPoll},
	} {
		magic = tc.magic
		f := config.Folder{Path: "/x", Watch: tc.watch, PollInterval: tc.poll}
		if got, period := chooseMode(&f); got != tc.want || period != tc.period {
			t.Errorf("chooseMode(watch %s, poll_interval %v, magic %#x) = %+v, %v; want %+v, %v", tc.watch, tc.poll, tc.magic, got, period, tc.want, tc.period)
		}
	}
}

// TestWatchOverflowFallsBack: an overflow of either inotify queue makes the
// folder polled, logged once, and files are still taken.
func TestWatchOverflowFallsBack(t *testing.T) {
	for _, which := range []string{"fsnotify", "own"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			st := openStore(t)
			log, warnings := newLogRecorder(t)
			w := NewWatch(st, WatchOptions{Logger: log})
			events := captureEvents(w)
			f := watchFolder(root)
			f.Watch = config.WatchEvents
			f.PollInterval = 200 * time.Millisecond
			runWatch(t, w, f)
			waitFor(t, 2*time.Second, "the watch", func() bool { return events() != nil && events().watching(root) })
			if which == "fsnotify" {
				events().fw.Errors <- fsnotify.ErrEventOverflow
			} else {
				events().ww.events <- writeEvent{overflow: true}
			}
			waitFor(t, 2*time.Second, "the fallback", func() bool { return w.Modes()["inbox"].Kind == ModePoll })
			if m := w.Modes()["inbox"]; !strings.Contains(m.Reason, "fs.inotify.max_queued_events") {
				t.Errorf("mode %+v, want a fallback naming max_queued_events", m)
			}
			write(t, filepath.Join(root, "after.pdf"), "after the overflow")
			waitFor(t, 5*time.Second, "the file", func() bool { return len(items(t, st, root)) == 1 })
			if ws := warnings(); len(ws) != 1 {
				t.Errorf("warnings %q, want one", ws)
			}
		})
	}
}

// TestWatchRefusedDirectory: a directory whose watch is refused (EACCES)
// is skipped with one warning; the folder stays in events mode.
func TestWatchRefusedDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, filepath.Join(root, "locked", "x.pdf"), "behind a refused watch")
	st := openStore(t)
	log, warnings := newLogRecorder(t)
	w := NewWatch(st, WatchOptions{Logger: log})
	w.hooks.addWatch = func(dir string) error {
		if filepath.Base(dir) == "locked" {
			return syscall.EACCES
		}
		return nil
	}
	f := watchFolder(root)
	f.RescanInterval = 200 * time.Millisecond
	runWatch(t, w, f)
	write(t, filepath.Join(root, "open", "y.pdf"), "fine")
	waitFor(t, 5*time.Second, "y.pdf", func() bool { return len(items(t, st, root)) == 1 })
	time.Sleep(600 * time.Millisecond) // a few rescans meet the directory again
	if m := w.Modes()["inbox"]; m.Kind != ModeEvents {
		t.Errorf("mode %+v, want events", m)
	}
	if ws := warnings(); len(ws) != 1 || !strings.Contains(ws[0], "cannot watch directory") {
		t.Errorf("warnings %q, want one about the directory", ws)
	}
}
