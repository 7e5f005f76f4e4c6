package watcher

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

const testSource = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

func folder(path string) config.Folder {
	return config.Folder{
		Name: "inbox", Path: path, SourceID: testSource, Recursive: true,
		Include: config.DefaultInclude(), MaxSize: 1000,
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), state.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// pendingPaths lists the paths of the items queued for upload.
func pendingPaths(t *testing.T, st *state.Store, root string) []string {
	t.Helper()
	var out []string
	err := st.Items(func(it state.Item) error {
		rel, _ := filepath.Rel(root, it.Path)
		out = append(out, filepath.ToSlash(rel))
		if it.Size == 0 || it.FileName != filepath.Base(it.Path) {
			t.Errorf("item %s: size %d, name %q", it.Path, it.Size, it.FileName)
		}
		return nil
	}, state.Pending)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestScanPicksCVsAndSkipsTheRest(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "Anna Smith CV.pdf"), "pdf 1")
	write(t, filepath.Join(root, "UPPER.PDF"), "pdf 2")
	write(t, filepath.Join(root, "copy of anna.pdf"), "pdf 1") // duplicate content
	write(t, filepath.Join(root, "Data Scientist", "bob.docx"), "docx 1")
	write(t, filepath.Join(root, "Data Scientist", "deep", "carol.odt"), "odt 1")
	write(t, filepath.Join(root, "~$bob.docx"), "lock")
	write(t, filepath.Join(root, "download.pdf.part"), "partial")
	write(t, filepath.Join(root, "download.pdf.crdownload"), "partial")
	write(t, filepath.Join(root, "x.tmp"), "temp")
	write(t, filepath.Join(root, ".hidden.pdf"), "hidden")
	write(t, filepath.Join(root, ".git", "cv.pdf"), "in a dot dir")
	write(t, filepath.Join(root, "notes.txt"), "not a CV type")
	write(t, filepath.Join(root, "empty.pdf"), "")
	write(t, filepath.Join(root, "huge.pdf"), strings.Repeat("x", 1001))
	write(t, filepath.Join(root, "archive", "old.pdf"), "excluded dir")
	// Symbolic links: to a file inside (absolute, into an excluded
	// directory), to one outside (skipped), a loop, a dangling one.
	write(t, filepath.Join(root, "archive", "linked.rtf"), "rtf via link")
	os.Symlink(filepath.Join(root, "archive", "linked.rtf"), filepath.Join(root, "linked.rtf"))
	outside := filepath.Join(t.TempDir(), "outside.rtf")
	write(t, outside, "rtf outside")
	os.Symlink(outside, filepath.Join(root, "outside.rtf"))
	os.Symlink(root, filepath.Join(root, "Data Scientist", "loop"))
	os.Symlink(filepath.Join(root, "nowhere.pdf"), filepath.Join(root, "dangling.pdf"))

	st := openStore(t)
	f := folder(root)
	f.Exclude = []string{"archive"}
	s := NewScanner(st, ScannerOptions{Logger: testLogger(t)})
	if err := s.Scan(t.Context(), []config.Folder{f}); err != nil {
		t.Fatal(err)
	}
	// Either copy of Anna's CV is the one queued: files are hashed in
	// parallel.
	got := pendingPaths(t, st, root)
	got = slices.DeleteFunc(got, func(p string) bool { return p == "copy of anna.pdf" || p == "Anna Smith CV.pdf" })
	want := []string{"Data Scientist/bob.docx", "Data Scientist/deep/carol.odt", "UPPER.PDF", "linked.rtf"}
	if !slices.Equal(got, want) || len(pendingPaths(t, st, root)) != 5 {
		t.Errorf("queued %q, want one copy of Anna's CV and %q", pendingPaths(t, st, root), want)
	}
	c := s.Stats().Snapshot()
	if c.New != 5 || c.Duplicates != 1 {
		t.Errorf("new %d, duplicates %d; want 5, 1", c.New, c.Duplicates)
	}
	// ~$, .part, .crdownload, .tmp, .hidden, notes.txt, empty, huge,
	// the link outside.
	if c.Skipped != 9 {
		t.Errorf("skipped %d, want 9", c.Skipped)
	}
	if c.Errors != 1 { // the dangling link
		t.Errorf("errors %d, want 1 (the dangling link)", c.Errors)
	}
}

func TestScanNotRecursive(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "top.pdf"), "top")
	write(t, filepath.Join(root, "sub", "below.pdf"), "below")
	st := openStore(t)
	f := folder(root)
	f.Recursive = false
	if err := NewScanner(st, ScannerOptions{}).Scan(t.Context(), []config.Folder{f}); err != nil {
		t.Fatal(err)
	}
	if got := pendingPaths(t, st, root); !slices.Equal(got, []string{"top.pdf"}) {
		t.Errorf("queued %q, want only top.pdf", got)
	}
}

// countingOpen counts the files a scan reads.
type countingOpen struct {
	n    atomic.Int64
	mu   sync.Mutex
	fail string
}

func (c *countingOpen) open(p string) (*os.File, error) {
	c.n.Add(1)
	c.mu.Lock()
	fail := c.fail
	c.mu.Unlock()
	if fail != "" && strings.HasSuffix(p, fail) {
		return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrPermission}
	}
	return os.Open(p)
}

func TestRescanReadsOnlyChangedFiles(t *testing.T) {
	root := t.TempDir()
	for i := range 200 {
		write(t, filepath.Join(root, fmt.Sprintf("d%d", i%7), fmt.Sprintf("cv%03d.pdf", i)), fmt.Sprint("cv ", i))
	}
	st := openStore(t)
	co := &countingOpen{}
	scan := func() Counts {
		s := NewScanner(st, ScannerOptions{Open: co.open})
		if err := s.Scan(t.Context(), []config.Folder{folder(root)}); err != nil {
			t.Fatal(err)
		}
		return s.Stats().Snapshot()
	}
	if c := scan(); c.New != 200 || co.n.Load() != 200 {
		t.Fatalf("first scan: %+v, %d opens; want 200 new, 200 opens", c, co.n.Load())
	}
	co.n.Store(0)
	if c := scan(); c.Unchanged != 200 || c.New != 0 || co.n.Load() != 0 {
		t.Fatalf("rescan: %+v, %d files read; want 200 unchanged and none read", c, co.n.Load())
	}
	// One file rewritten, one touched, one added.
	write(t, filepath.Join(root, "d0", "cv000.pdf"), "a new version")
	now := testTime()
	os.Chtimes(filepath.Join(root, "d1", "cv001.pdf"), now, now)
	write(t, filepath.Join(root, "new.pdf"), "a new CV")
	co.n.Store(0)
	c := scan()
	if c.New != 2 || c.Known != 1 || c.Unchanged != 198 || co.n.Load() != 3 {
		t.Errorf("scan after changes: %+v, %d reads; want 2 new, 1 known, 198 unchanged, 3 reads", c, co.n.Load())
	}
}

func TestScanUnreadableFileIsCountedNotFatal(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "a.pdf"), "a")
	write(t, filepath.Join(root, "locked.pdf"), "b")
	write(t, filepath.Join(root, "c.pdf"), "c")
	st := openStore(t)
	co := &countingOpen{fail: "locked.pdf"}
	s := NewScanner(st, ScannerOptions{Open: co.open})
	missing := folder(filepath.Join(root, "does-not-exist"))
	missing.Name = "missing"
	if err := s.Scan(t.Context(), []config.Folder{missing, folder(root)}); err != nil {
		t.Fatal(err)
	}
	if got := pendingPaths(t, st, root); !slices.Equal(got, []string{"a.pdf", "c.pdf"}) {
		t.Errorf("queued %q, want a.pdf and c.pdf", got)
	}
	if c := s.Stats().Snapshot(); c.Errors != 2 {
		t.Errorf("errors = %d, want 2 (the missing folder, the unreadable file)", c.Errors)
	}
	// The unreadable file is not remembered: the next scan tries it again.
	if _, ok, _ := st.LookupFile(testSource, filepath.Join(root, "locked.pdf")); ok {
		t.Error("an unreadable file was remembered as scanned")
	}
}

func TestScanManySmallFilesConcurrently(t *testing.T) {
	root := t.TempDir()
	want := map[[32]byte]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			content := fmt.Sprint("cv body ", i)
			write(t, filepath.Join(root, fmt.Sprint(i%13), fmt.Sprintf("%d.docx", i)), content)
			mu.Lock()
			want[sha256.Sum256([]byte(content))] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	st := openStore(t)
	if err := NewScanner(st, ScannerOptions{Hashers: 8}).Scan(t.Context(), []config.Folder{folder(root)}); err != nil {
		t.Fatal(err)
	}
	got := 0
	st.Items(func(it state.Item) error {
		if !want[it.SHA256] {
			t.Errorf("item %s has a hash of no file", it.Path)
		}
		got++
		return nil
	})
	if got != 1000 {
		t.Errorf("%d items, want 1000", got)
	}
}

func TestScanCancelled(t *testing.T) {
	root := t.TempDir()
	for i := range 50 {
		write(t, filepath.Join(root, fmt.Sprintf("%d.pdf", i)), fmt.Sprint(i))
	}
	ctx, cancel := contextWithCancel(t)
	cancel()
	err := NewScanner(openStore(t), ScannerOptions{}).Scan(ctx, []config.Folder{folder(root)})
	if !errors.Is(err, errCanceled()) {
		t.Errorf("Scan on a cancelled context = %v, want context.Canceled", err)
	}
}

// TestScanLargeDirectoryWithBadEntries: a directory read in several chunks,
// with a dangling link among its entries, is walked to the end.
func TestScanLargeDirectoryWithBadEntries(t *testing.T) {
	root := t.TempDir()
	for i := range 1300 {
		write(t, filepath.Join(root, fmt.Sprintf("cv%04d.pdf", i)), fmt.Sprint("cv ", i))
	}
	for i := range 5 {
		os.Symlink(filepath.Join(root, "missing"), filepath.Join(root, fmt.Sprintf("dangling%d.pdf", i)))
	}
	st := openStore(t)
	s := NewScanner(st, ScannerOptions{})
	if err := s.Scan(t.Context(), []config.Folder{folder(root)}); err != nil {
		t.Fatal(err)
	}
	if c := s.Stats().Snapshot(); c.New != 1300 || c.Errors != 5 {
		t.Errorf("new %d, errors %d; want 1300 and 5", c.New, c.Errors)
	}
}
