package state

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mappedRSS returns the resident bytes of this process's mappings of path,
// from /proc/self/smaps.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rss int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			rss += kb << 10
		}
	}
	return rss
}

// A read of every item leaves the state's pages resident; a trim drops them,
// and what is read afterwards is the same.
func TestTrimDropsResidentPages(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.stopTrim() // this test trims by hand
	if err := backfillLike(s, 20000, false); err != nil {
		t.Fatal(err)
	}
	size, err := s.Size()
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(); err != nil {
		t.Fatal(err)
	}
	full := mappedRSS(t, p)
	if full < size/2 {
		t.Fatalf("after reading the whole %d-byte state, %d bytes of its mapping are resident: the test measures nothing", size, full)
	}
	s.trimResident()
	if got := mappedRSS(t, p); got > 64<<10 {
		t.Errorf("after a trim, %d bytes of the mapping are resident, want (almost) none", got)
	}
	after, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if after["inbox"] != before["inbox"] || after["inbox"].Uploaded != 20000 {
		t.Errorf("counts after the trim = %+v, before %+v (want 20000 uploaded)", after, before)
	}
}

// A clean Close records bbolt's free list in the file, so that the next
// writer does not walk the whole file to rebuild it; the first commit after
// that goes back to not syncing it, and a state closed without it (a
// process killed) opens as before.
func TestCleanCloseRecordsFreeList(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	freelist := func() uint64 {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m, _, r := chooseMeta(b)
		if r != "" {
			t.Fatal(r)
		}
		return m.freelist
	}
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := backfillLike(s, 3000, false); err != nil {
		t.Fatal(err)
	}
	if fl := freelist(); fl != noFreelist {
		t.Fatalf("while writing, the meta page names free-list page %d: the free list is synced at every commit", fl)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fl := freelist(); fl == noFreelist {
		t.Fatal("after a clean Close the meta page names no free list: the next Open walks the whole file")
	}
	s, err = Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim([]Candidate{cand("one more", "/in/more.pdf")}); err != nil {
		t.Fatal(err)
	}
	if fl := freelist(); fl != noFreelist {
		t.Errorf("after a commit, the meta page still names free-list page %d", fl)
	}
	// Killed: bbolt closed without the last commit.
	s.stopTrim()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if problems, err := s.Check(); err != nil || len(problems) > 0 {
		t.Fatalf("state check after a kill: %v %v", problems, err)
	}
	c, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if c["inbox"].Uploaded != 3000 || c["inbox"].Pending != 1 {
		t.Errorf("counts = %+v, want 3000 uploaded and 1 pending", c["inbox"])
	}
}
