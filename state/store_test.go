package state

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable clock for tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)} }
func sum(s string) [32]byte          { return sha256.Sum256([]byte(s)) }
func openTest(t *testing.T, c *clock) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), FileName), &Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const src = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

func cand(content, path string) Candidate {
	return Candidate{Source: "inbox", SourceID: src, SHA256: sum(content), Path: path, FileName: filepath.Base(path), Size: int64(len(content))}
}

func TestOpenCreatesPrivateFileWithSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var")
	p := filepath.Join(dir, FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("state file mode = %o, want 600", m)
	}
	di, _ := os.Stat(dir)
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("state dir mode = %o, want 700", m)
	}
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); be32(v) != SchemaVersion {
			t.Errorf("schema = %v, want %d", v, SchemaVersion)
		}
		return nil
	})
}

func TestOpenRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	// A foreign bbolt file.
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
	db.Close()
	// A file that is not bbolt at all.
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not a database\n", 1000)), 0o600)
	// A truncated cvfeed state.
	good := filepath.Join(dir, "good.db")
	s, err := Open(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "trunc.db")
	os.WriteFile(trunc, data[:100], 0o600)
	// A newer schema.
	newer := filepath.Join(dir, "newer.db")
	s, _ = Open(newer, nil)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, put32(SchemaVersion+1)) })
	s.Close()

	for _, tc := range []struct{ path, want string }{
		{foreign, "not a cvfeed state"},
		{junk, "no valid bbolt meta page"},
		{trunc, "no valid bbolt meta page"},
		{newer, fmt.Sprintf("schema version %d, this cvfeed reads version %d: it is older", SchemaVersion+1, SchemaVersion)},
	} {
		s, err := Open(tc.path, &Options{LockTimeout: 100 * time.Millisecond})
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) = nil error, want %q", filepath.Base(tc.path), tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("Open(%s) = %v, want it to name the file and say %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(p, &Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	_, err = Open(p, &Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only Open while locked = %v, want ErrLocked", err)
	}
}

func TestClaimNewDuplicateKnown(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	id := &Identity{Dev: 1, Ino: 10, Size: 3, MTime: 100}
	a := cand("aaa", "/cv/a.pdf")
	a.Identity = id
	copyOfA := cand("aaa", "/cv/copy-of-a.pdf")
	copyOfA.Identity = &Identity{Dev: 1, Ino: 11, Size: 3, MTime: 100}
	b := cand("bbb", "/cv/b.pdf")
	res, err := s.Claim([]Candidate{a, copyOfA, b})
	if err != nil {
		t.Fatal(err)
	}
	if want := []ClaimResult{ClaimNew, ClaimDuplicate, ClaimNew}; fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("Claim = %v, want %v", res, want)
	}
	// The same path touched (new mtime), same content: known, no new dup.
	touched := a
	touched.Identity = &Identity{Dev: 1, Ino: 10, Size: 3, MTime: 200}
	res, err = s.Claim([]Candidate{touched})
	if err != nil || res[0] != ClaimKnown {
		t.Errorf("Claim(touched) = %v, %v; want ClaimKnown", res, err)
	}
	rec, ok, err := s.LookupFile(src, "/cv/a.pdf")
	if err != nil || !ok || rec.MTime != 200 || rec.SHA256 != sum("aaa") {
		t.Errorf("LookupFile = %+v, %v, %v; want the touched identity", rec, ok, err)
	}
	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := counts["inbox"], (Counts{Pending: 2, Duplicate: 1}); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
	// Another source: the same content is a new item there.
	other := a
	other.SourceID, other.Source = "0000000000000000000000000000000000000001", "other"
	res, _ = s.Claim([]Candidate{other})
	if res[0] != ClaimNew {
		t.Errorf("same content for another source = %v, want ClaimNew", res[0])
	}
}

func TestLeaseCompleteTransitions(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	s.Claim([]Candidate{cand("1", "/1"), cand("2", "/2"), cand("3", "/3"), cand("4", "/4")})
	items, next, err := s.Lease(10, nil)
	if err != nil || len(items) != 4 || !next.IsZero() {
		t.Fatalf("Lease = %d items, next %v, %v; want 4, zero", len(items), next, err)
	}
	if again, _, _ := s.Lease(10, nil); len(again) != 0 {
		t.Fatalf("second Lease = %d items, want 0: leased items must not be handed out twice", len(again))
	}
	k := func(content string) Key { return Key{SourceID: src, SHA256: sum(content)} }
	err = s.Complete([]Result{
		{Key: k("1"), Outcome: Done, Attempted: true, FileID: "f1"},
		{Key: k("2"), Outcome: Retry, Attempted: true, Err: "503", Next: c.t.Add(time.Minute)},
		{Key: k("3"), Outcome: Fail, Attempted: true, Err: "400 bad file"},
		{Key: k("4"), Outcome: Release},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(content string, st Status, attempts int, lastErr string) {
		t.Helper()
		it, ok, err := s.Get(k(content))
		if err != nil || !ok {
			t.Fatalf("Get(%s) = %v, %v", content, ok, err)
		}
		if it.Status != st || it.Attempts != attempts || it.LastError != lastErr {
			t.Errorf("item %s = %v/%d/%q, want %v/%d/%q", content, it.Status, it.Attempts, it.LastError, st, attempts, lastErr)
		}
	}
	check("1", Uploaded, 1, "")
	check("2", Pending, 1, "503")
	check("3", Failed, 1, "400 bad file")
	check("4", Pending, 0, "")
	for _, tc := range []struct {
		names []string
		want  int
	}{{[]string{"inbox"}, 1}, {[]string{"other", "inbox"}, 1}, {[]string{"other"}, 0}, {nil, 0}} {
		if n, err := s.FailedCount(tc.names); err != nil || n != tc.want {
			t.Errorf("FailedCount(%q) = %d, %v; want %d", tc.names, n, err, tc.want)
		}
	}
	// Only the released item is due now; the retry comes after a minute.
	items, next, _ = s.Lease(10, nil)
	if len(items) != 1 || items[0].SHA256 != sum("4") || !next.Equal(c.t.Add(time.Minute)) {
		t.Fatalf("Lease = %d items, next %v; want item 4 and next in a minute", len(items), next)
	}
	c.add(time.Minute)
	items, _, _ = s.Lease(10, nil)
	if len(items) != 1 || items[0].SHA256 != sum("2") {
		t.Fatalf("Lease after a minute = %v, want item 2", items)
	}
	if n, _ := s.Pending(nil); n != 2 {
		t.Errorf("Pending = %d, want 2 (both leased)", n)
	}
	// Retry of failed items.
	n, err := s.RetryFailed(nil)
	if err != nil || n != 1 {
		t.Fatalf("RetryFailed = %d, %v; want 1", n, err)
	}
	check("3", Pending, 0, "400 bad file")
	counts, _ := s.Counts()
	if got, want := counts["inbox"], (Counts{Pending: 3, Uploaded: 1}); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
}

func TestRecoverMarksMaybeSent(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	s, err := Open(p, &Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	s.Claim([]Candidate{cand("1", "/1"), cand("2", "/2")})
	items, _, _ := s.Lease(1, nil)
	if len(items) != 1 || items[0].MaybeSent {
		t.Fatalf("Lease = %+v", items)
	}
	s.Close() // the process dies with item 1 in flight

	s, err = Open(p, &Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Recover(); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	items, _, _ = s.Lease(10, nil)
	if len(items) != 2 {
		t.Fatalf("Lease after Recover = %d items, want 2", len(items))
	}
	maybe := 0
	for _, it := range items {
		if it.MaybeSent {
			maybe++
			if it.SHA256 != sum(fmt.Sprint(1)) {
				t.Errorf("item %s marked maybe-sent, want only item 1", it.Key)
			}
		}
	}
	if maybe != 1 {
		t.Errorf("%d items maybe-sent, want 1", maybe)
	}
}

func TestLeaseAcceptAndOrder(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	o := cand("other", "/o")
	o.SourceID, o.Source = "0000000000000000000000000000000000000002", "other"
	s.Claim([]Candidate{o})
	for i := range 5 {
		c.add(time.Second)
		s.Claim([]Candidate{cand(fmt.Sprint(i), fmt.Sprint("/", i))})
	}
	items, _, err := s.Lease(3, func(id string) bool { return id == src })
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("Lease = %d items, want 3", len(items))
	}
	for i, it := range items {
		if it.SourceID != src || it.SHA256 != sum(fmt.Sprint(i)) {
			t.Errorf("item %d = %s, want the %d-th oldest of %s", i, it.Key, i, src)
		}
	}
	if n, _ := s.Pending(func(id string) bool { return id != src }); n != 1 {
		t.Errorf("Pending(other) = %d, want 1", n)
	}
}

func TestParseKeyRoundTrip(t *testing.T) {
	k := Key{SourceID: src, SHA256: sum("x")}
	got, err := ParseKey(k.String())
	if err != nil || got != k {
		t.Errorf("ParseKey(%q) = %v, %v", k.String(), got, err)
	}
	for _, bad := range []string{"", "abc", src + "/zz", "/" + k.Hex()} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) = nil error", bad)
		}
	}
}

// TestStateSizePerFile checks the design target: under 1 KiB per file.
func TestStateSizePerFile(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	const n = 5000
	batch := make([]Candidate, 0, 250)
	for i := range n {
		cd := cand(fmt.Sprint("content ", i), fmt.Sprintf("/srv/hr/cvs/2024/Data Scientist/Candidate Name %05d - CV.pdf", i))
		cd.Identity = &Identity{Dev: 2049, Ino: uint64(1e6 + i), Size: 123456, MTime: c.t.UnixNano()}
		batch = append(batch, cd)
		if len(batch) == cap(batch) {
			if _, err := s.Claim(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// Upload them all, as a backfill would.
	for {
		items, _, err := s.Lease(256, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		rs := make([]Result, len(items))
		for i, it := range items {
			rs[i] = Result{Key: it.Key, Outcome: Done, Attempted: true, FileID: fmt.Sprintf("%040x", i)}
		}
		if err := s.Complete(rs); err != nil {
			t.Fatal(err)
		}
	}
	size, _ := s.Size()
	per := size / n
	dumpStats(t, s)
	t.Logf("state: %d bytes for %d files = %d bytes per file", size, n, per)
	if per >= 1024 {
		t.Errorf("state uses %d bytes per file, want < 1024", per)
	}
}

// dumpStats logs the space each bucket takes.
func dumpStats(t *testing.T, s *Store) {
	s.db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			st := tx.Bucket(b).Stats()
			t.Logf("bucket %s: %d keys, %d leaf pages (%d bytes, %d in use)", b, st.KeyN, st.LeafPageN+st.LeafOverflowN, st.LeafAlloc, st.LeafInuse)
		}
		t.Logf("free pages: %d of %d bytes", s.db.Stats().FreePageN, s.db.Info().PageSize)
		return nil
	})
}

func TestLookupFiles(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	var cands []Candidate
	for i := range 50 {
		cd := cand(fmt.Sprint("c", i), fmt.Sprintf("/d/%02d.pdf", i))
		cd.Identity = &Identity{Ino: uint64(i), Size: 2, MTime: int64(i)}
		cands = append(cands, cd)
	}
	if _, err := s.Claim(cands); err != nil {
		t.Fatal(err)
	}
	// Unsorted, with unknown paths and another source's path.
	paths := []string{"/d/49.pdf", "/d/nope.pdf", "/d/00.pdf", "/d/07.pdf", "/e/00.pdf", "/d/48.pdf", "/d/0.pdf"}
	got := map[int]uint64{}
	if err := s.LookupFiles(src, paths, func(i int, r FileRecord) { got[i] = r.Ino }); err != nil {
		t.Fatal(err)
	}
	want := map[int]uint64{0: 49, 2: 0, 3: 7, 5: 48}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("LookupFiles found %v, want %v", got, want)
	}
	got = map[int]uint64{}
	s.LookupFiles("0000000000000000000000000000000000000009", paths, func(i int, r FileRecord) { got[i] = r.Ino })
	if len(got) != 0 {
		t.Errorf("another source's lookup found %v", got)
	}
}
