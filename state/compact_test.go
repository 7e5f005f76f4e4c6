package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCompact: after a backfill with after_upload = move, compaction gives
// back the pages of the identities and actions that went, and the state
// still holds every item; a state another process holds is not touched.
func TestCompact(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	if err := backfillLike(s, n, true); err != nil {
		t.Fatal(err)
	}
	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Compact(p, &Options{LockTimeout: 100e6}); !errors.Is(err, ErrLocked) {
		t.Errorf("Compact of a state this process holds open = %v, want ErrLocked", err)
	}
	s.Close()
	before, after, err := Compact(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if after >= before || fi.Size() != after {
		t.Errorf("Compact: %d bytes before, %d after, file %d; want it smaller", before, after, fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted state mode %04o, want 0600", fi.Mode().Perm())
	}
	t.Logf("%d files moved: %d bytes before compaction, %d after", n, before, after)
	// The file ends at its last page, with its free list recorded, and a
	// writer that opens and closes it without writing leaves it so.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m, ps, r := chooseMeta(b)
	if r != "" || int64(m.pgid)*int64(ps) != after || m.freelist == noFreelist {
		t.Errorf("compacted file: %d bytes for %d pages of %d, free list page %d (%s); want it cut at its last page, its free list recorded", after, m.pgid, ps, m.freelist, r)
	}
	s, err = Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, err := os.Stat(p); err != nil || fi.Size() != after {
		t.Errorf("after an open and close with no write, the compacted state is %v bytes (%v), was %d", fi.Size(), err, after)
	}
	s, err = Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Counts()
	if err != nil || got["inbox"] != counts["inbox"] || got["inbox"].Uploaded != n {
		t.Errorf("counts after compaction = %+v, %v; want %+v", got, err, counts)
	}
	if problems, err := s.Check(); err != nil || len(problems) > 0 {
		t.Errorf("Check after compaction: %v %q", err, problems)
	}
	// Still usable: directory numbers go on from where they were.
	c := cand("a new one", "/srv/new/dir/x.pdf")
	c.Identity = &Identity{Ino: 1}
	if res, err := s.Claim([]Candidate{c}); err != nil || res[0] != ClaimNew {
		t.Errorf("claim after compaction = %v, %v", res, err)
	}
	if _, ok, err := s.LookupFile(src, "/srv/new/dir/x.pdf"); err != nil || !ok {
		t.Errorf("LookupFile after compaction: %v, %v", ok, err)
	}
}

// A compaction killed before its rename leaves a temporary copy beside the
// state: a reader leaves it, the next writer's open removes it, and
// nothing else in the directory is touched.
func TestCompactLeftoverRemoved(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	left := filepath.Join(dir, "."+FileName+".compact-123456")
	other := filepath.Join(dir, "cvfeed.db.damaged-20261201T101500Z")
	for _, f := range []string{left, other} {
		if err := os.WriteFile(f, []byte("partial copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := os.Stat(left); err != nil {
		t.Fatalf("a reader removed the compaction's leftover: %v", err)
	}
	w, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the compaction's leftover is still there after a writer's open: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the open removed %s: %v", other, err)
	}
}

// TestCompactOpenStore: a store compacts while it is in use. A read that
// began before goes on in the old file; a claim made during the
// compaction waits and is then recorded in the compacted file; the lock
// never lapses (another open is refused while the compacted file is
// already in place); the file shrinks; a compaction that fails leaves the
// store working on its old file.
func TestCompactOpenStore(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 3000
	if err := backfillLike(s, n, true); err != nil {
		t.Fatal(err)
	}
	oldFile, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}

	// A read transaction that lasts until released.
	reading, release := make(chan struct{}), make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- s.view(func(tx *bolt.Tx) error {
			close(reading)
			<-release
			return nil
		})
	}()
	<-reading
	type sizes struct {
		before, after int64
		err           error
	}
	compacted := make(chan sizes, 1)
	go func() {
		b, a, err := s.Compact()
		compacted <- sizes{b, a, err}
	}()
	// The compaction renames its copy over the state, then waits for the
	// read to end before it swaps.
	deadline := time.Now().Add(20 * time.Second)
	for {
		fi, err := os.Stat(p)
		if err == nil && !os.SameFile(fi, oldFile) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the compacted copy is not in place after 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if o, err := Open(p, &Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		if err == nil {
			o.Close()
		}
		t.Errorf("Open of the compacted file before the swap = %v, want ErrLocked", err)
	}
	c := cand("claimed during the compaction", "/srv/during/x.pdf")
	c.Identity = &Identity{Ino: 7}
	claimed := make(chan error, 1)
	go func() {
		res, err := s.Claim([]Candidate{c})
		if err == nil && res[0] != ClaimNew {
			err = fmt.Errorf("claim result %v, want ClaimNew", res[0])
		}
		claimed <- err
	}()
	select {
	case err := <-compacted:
		t.Fatalf("the compaction ended while a read was still open: %v", err.err)
	default:
	}
	close(release)
	if err := <-readDone; err != nil {
		t.Errorf("the read open during the compaction: %v", err)
	}
	got := <-compacted
	if got.err != nil {
		t.Fatal(got.err)
	}
	if err := <-claimed; err != nil {
		t.Fatalf("claim during the compaction: %v", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.after >= got.before || got.before != oldFile.Size() {
		t.Errorf("Compact = %d bytes before, %d after (the file was %d); want it smaller", got.before, got.after, oldFile.Size())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*compact-*")); len(left) > 0 {
		t.Errorf("left beside the state: %q", left)
	}
	t.Logf("%d files moved: %d bytes before compaction, %d after, %d after a claim", n, got.before, got.after, fi.Size())

	// A failed compaction (the state's directory went away): an error,
	// and the store goes on with its file.
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Compact(); err == nil {
		t.Error("Compact with the state's directory gone = nil, want an error")
	}
	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}
	c2 := cand("claimed after a failed compaction", "/srv/after/y.pdf")
	c2.Identity = &Identity{Ino: 8}
	if res, err := s.Claim([]Candidate{c2}); err != nil || res[0] != ClaimNew {
		t.Fatalf("claim after a failed compaction = %v, %v", res, err)
	}

	// What the store recorded is in the file at p.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	counts, err := r.Counts()
	if err != nil || counts["inbox"].Uploaded != n || counts["inbox"].Pending != 2 {
		t.Errorf("counts in the file after compaction = %+v, %v; want %d uploaded, 2 pending", counts["inbox"], err, n)
	}
	for _, path := range []string{"/srv/during/x.pdf", "/srv/after/y.pdf"} {
		if _, ok, err := r.LookupFile(src, path); err != nil || !ok {
			t.Errorf("LookupFile(%s) in the file after compaction: %v, %v", path, ok, err)
		}
	}
	if problems, err := r.Check(); err != nil || len(problems) > 0 {
		t.Errorf("Check after compaction: %v %q", err, problems)
	}
}
