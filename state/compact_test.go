package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
