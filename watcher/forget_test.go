package watcher

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// known reports whether state still holds the identity of path.
func known(t *testing.T, st *state.Store, path string) bool {
	t.Helper()
	_, ok, err := st.LookupFile(testSource, path)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func scanOnce(t *testing.T, st *state.Store, folders ...config.Folder) {
	t.Helper()
	s := NewScanner(st, ScannerOptions{Logger: testLogger(t)})
	if err := s.Scan(t.Context(), folders); err != nil {
		t.Fatal(err)
	}
}

// A file removed from the folder by hand is noted missing by the next scan
// and forgotten by the one after forget_missing; the others stay, and so
// does the identity of another folder with the same source_id.
func TestScanForgetsMissingFiles(t *testing.T) {
	root := t.TempDir()
	dir, other := filepath.Join(root, "cvs"), filepath.Join(root, "other")
	anna, bob, carl := filepath.Join(dir, "anna.pdf"), filepath.Join(dir, "bob.pdf"), filepath.Join(dir, "sub", "carl.pdf")
	dora := filepath.Join(other, "dora.pdf")
	for _, p := range []string{anna, bob, carl, dora} {
		write(t, p, "cv of "+filepath.Base(p))
	}
	st := openStore(t)
	f := folder(dir)
	f.ForgetMissing = time.Millisecond
	g := folder(other)
	g.Name = "other"
	scanOnce(t, st, f, g)
	for _, p := range []string{anna, bob, carl, dora} {
		if !known(t, st, p) {
			t.Fatalf("%s not known after the first scan", p)
		}
	}
	if err := os.Remove(bob); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(other); err != nil {
		t.Fatal(err)
	}
	scanOnce(t, st, f) // bob noted missing, since now
	if !known(t, st, bob) {
		t.Errorf("%s forgotten by the first scan that missed it; want it noted only", bob)
	}
	deadline := time.Now().Add(5 * time.Second)
	for known(t, st, bob) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond) // forget_missing has to pass: a time, not an event
		scanOnce(t, st, f)
	}
	if known(t, st, bob) {
		t.Errorf("%s still known after forget_missing", bob)
	}
	for _, p := range []string{anna, carl, dora} {
		if !known(t, st, p) {
			t.Errorf("%s forgotten; want it kept", p)
		}
	}
}

// forget_missing 0 forgets nothing.
func TestScanForgetMissingZeroKeeps(t *testing.T) {
	dir := t.TempDir()
	bob := filepath.Join(dir, "bob.pdf")
	write(t, bob, "bob")
	st := openStore(t)
	f := folder(dir)
	scanOnce(t, st, f)
	os.Remove(bob)
	for range 3 {
		scanOnce(t, st, f)
	}
	if !known(t, st, bob) {
		t.Errorf("%s forgotten with forget_missing 0", bob)
	}
}

// A share that did not mount (its mount point empty, on another device
// than recorded) is down: however long it stays so, nothing of it is
// forgotten.
func TestScanDownFolderForgetsNothing(t *testing.T) {
	dir := t.TempDir()
	anna := filepath.Join(dir, "anna.pdf")
	write(t, anna, "anna")
	st := openStore(t)
	f := folder(dir)
	f.ForgetMissing = time.Millisecond
	scanOnce(t, st, f)
	if !known(t, st, anna) {
		t.Fatal("anna.pdf not known after the first scan")
	}
	os.Remove(anna)
	if err := st.SetFolderDevice(testSource, dir, state.FolderDevice{Dev: devOf(t, dir) + 1, MountRoot: dir}); err != nil {
		t.Fatal(err)
	}
	if CheckFolder(st, f) == nil {
		t.Fatal("the folder is up; the test needs it down")
	}
	for range 3 {
		time.Sleep(2 * time.Millisecond) // longer than forget_missing
		scanOnce(t, st, f)
	}
	if !known(t, st, anna) {
		t.Error("anna.pdf forgotten while its folder was down")
	}
}

// A whole directory removed from the folder (the walk never lists it) is
// swept file by file, and its files are forgotten too; the files of a
// directory the walk listed whole stay.
func TestScanForgetsGoneDirectory(t *testing.T) {
	dir := t.TempDir()
	keep, gone1, gone2 := filepath.Join(dir, "a", "keep.pdf"), filepath.Join(dir, "b", "gone1.pdf"), filepath.Join(dir, "b", "c", "gone2.pdf")
	for _, p := range []string{keep, gone1, gone2} {
		write(t, p, "cv of "+filepath.Base(p))
	}
	st := openStore(t)
	f := folder(dir)
	f.ForgetMissing = time.Millisecond
	scanOnce(t, st, f)
	if err := os.RemoveAll(filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (known(t, st, gone1) || known(t, st, gone2)) && time.Now().Before(deadline) {
		scanOnce(t, st, f)
		time.Sleep(2 * time.Millisecond) // forget_missing has to pass: a time, not an event
	}
	if known(t, st, gone1) || known(t, st, gone2) {
		t.Errorf("files of a removed directory still known after forget_missing")
	}
	if !known(t, st, keep) {
		t.Errorf("%s forgotten; want it kept", keep)
	}
}
