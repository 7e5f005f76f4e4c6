package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

func TestWatchPollMode(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 5 {
		write(t, filepath.Join(root, fmt.Sprintf("d%d", i%2), fmt.Sprintf("old%d.pdf", i)), fmt.Sprint("old ", i))
	}
	st := openStore(t)
	co := &countingOpen{}
	w := NewWatch(st, WatchOptions{Logger: testLogger(t), Open: co.open})
	f := watchFolder(root)
	f.Watch = config.WatchPoll
	f.PollInterval = 200 * time.Millisecond
	runWatch(t, w, f)
	waitFor(t, 5*time.Second, "the files there before", func() bool { return len(items(t, st, root)) == 5 })
	if m := w.Modes()["inbox"]; m != (Mode{ModePoll, `watch = "poll"`}) {
		t.Errorf("mode %+v", m)
	}
	time.Sleep(time.Second) // five polls over unchanged files
	if n := co.n.Load(); n != 5 {
		t.Errorf("%d files read, want 5: polls re-read unchanged files", n)
	}
	write(t, filepath.Join(root, "d0", "new.pdf"), "new")
	write(t, filepath.Join(root, "d1", "old1.pdf"), "old 1, new version")
	waitFor(t, 5*time.Second, "the new file and the new version", func() bool {
		return w.Stats().Snapshot().New == 7
	})
	time.Sleep(time.Second)
	if n := co.n.Load(); n != 7 {
		t.Errorf("%d files read, want 7", n)
	}
	if c := w.Stats().Snapshot(); c.New != 7 || c.Duplicates != 0 {
		t.Errorf("new %d, duplicates %d; want 7, 0", c.New, c.Duplicates)
	}
}

// TestWatchRestartReadsNothing: a restart over 10,000 files already
// claimed reads none of them.
func TestWatchRestartReadsNothing(t *testing.T) {
	t.Parallel()
	const n = 10000
	root := t.TempDir()
	for i := range n {
		write(t, filepath.Join(root, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("cv%05d.pdf", i)), fmt.Sprint("cv ", i))
	}
	st := openStore(t)
	f := watchFolder(root)
	f.Settle = 0
	first := NewWatch(st, WatchOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx, []config.Folder{f}) }()
	waitFor(t, 60*time.Second, "the first run to claim every file", func() bool { return first.Stats().Snapshot().New == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	co := &countingOpen{}
	again := NewWatch(st, WatchOptions{Open: co.open})
	var mu sync.Mutex
	var walks []jobKind
	again.hooks.walked = func(_ string, k jobKind, _ time.Duration) { mu.Lock(); walks = append(walks, k); mu.Unlock() }
	runWatch(t, again, f)
	waitFor(t, 30*time.Second, "the start rescan", func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(walks, jobRescan) })
	time.Sleep(200 * time.Millisecond)
	c := again.Stats().Snapshot()
	if co.n.Load() != 0 || c.Unchanged != n || c.New != 0 || c.Settling != 0 {
		t.Errorf("restart: %d files read, %+v; want none read, %d unchanged", co.n.Load(), c, n)
	}
}

func TestWatchFolderMissingAtStart(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "not-yet")
	st := openStore(t)
	log, warnings := newLogRecorder(t)
	w := NewWatch(st, WatchOptions{Logger: log})
	f := watchFolder(root)
	f.RescanInterval = 300 * time.Millisecond
	runWatch(t, w, f)
	time.Sleep(100 * time.Millisecond)
	write(t, filepath.Join(root, "cv.pdf"), "the share is mounted")
	waitFor(t, 5*time.Second, "the file, after a rescan", func() bool { return len(items(t, st, root)) == 1 })
	time.Sleep(700 * time.Millisecond)
	if ws := warnings(); len(ws) != 1 {
		t.Errorf("logged %q, want one error about the missing folder", ws)
	}
}

func TestWatchUnreadableFileIsRetriedByRescan(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st := openStore(t)
	co := &countingOpen{fail: "locked.pdf"}
	w := NewWatch(st, WatchOptions{Logger: testLogger(t), Open: co.open})
	f := watchFolder(root)
	f.RescanInterval = 500 * time.Millisecond
	runWatch(t, w, f)
	write(t, filepath.Join(root, "locked.pdf"), "cannot be read yet")
	waitFor(t, 5*time.Second, "a failed read", func() bool { return w.Stats().Errors.Load() > 0 })
	if len(items(t, st, root)) != 0 {
		t.Fatal("an unreadable file was claimed")
	}
	co.mu.Lock()
	co.fail = ""
	co.mu.Unlock()
	waitFor(t, 5*time.Second, "the file, at a rescan", func() bool { return len(items(t, st, root)) == 1 })
}

func TestWatchEmptyThenWritten(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st := openStore(t)
	runWatch(t, NewWatch(st, WatchOptions{Logger: testLogger(t)}), watchFolder(root))
	p := filepath.Join(root, "cv.pdf")
	write(t, p, "")
	time.Sleep(500 * time.Millisecond)
	if err := os.WriteFile(p, []byte("now with content"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the file once written", func() bool { return len(items(t, st, root)) == 1 })
}

// batchStore adds the batched lookup the walks use when a store has it.
type batchStore struct {
	*state.Store
	calls atomic.Int64
}

func (b *batchStore) LookupFiles(sourceID string, paths []string, found func(int, state.FileRecord)) error {
	b.calls.Add(1)
	for i, p := range paths {
		r, ok, err := b.LookupFile(sourceID, p)
		if err != nil {
			return err
		}
		if ok {
			found(i, r)
		}
	}
	return nil
}

func TestWatchBatchLookup(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 300 {
		write(t, filepath.Join(root, fmt.Sprintf("d%d", i%3), fmt.Sprintf("cv%03d.pdf", i)), fmt.Sprint("cv ", i))
	}
	st := &batchStore{Store: openStore(t)}
	if err := NewScanner(st, ScannerOptions{}).Scan(t.Context(), []config.Folder{folder(root)}); err != nil {
		t.Fatal(err)
	}
	// The scan looks up a directory at a time too; count the watch's.
	if n := st.calls.Load(); n == 0 || n > 4 {
		t.Errorf("scan: %d batched lookups; want one per directory", n)
	}
	st.calls.Store(0)
	write(t, filepath.Join(root, "d0", "new.pdf"), "new while stopped")
	co := &countingOpen{}
	w := NewWatch(st, WatchOptions{Logger: testLogger(t), Open: co.open})
	runWatch(t, w, watchFolder(root))
	waitFor(t, 5*time.Second, "the new file", func() bool { return w.Stats().Snapshot().New == 1 })
	if c := w.Stats().Snapshot(); c.Unchanged != 300 || co.n.Load() != 1 || st.calls.Load() == 0 || st.calls.Load() > 4 {
		t.Errorf("%+v, %d reads, %d batched lookups; want 300 unchanged, 1 read, one lookup per directory", c, co.n.Load(), st.calls.Load())
	}
}
