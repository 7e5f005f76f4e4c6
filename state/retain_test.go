package state

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestForgetMissing: a file gone from its folder is forgotten only once it
// was missing for forget_missing; one back in time keeps its identity.
func TestForgetMissing(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	var cands []Candidate
	for i, name := range []string{"a", "b", "c"} {
		cd := cand("content "+name, "/srv/hr/"+name+".pdf")
		cd.Identity = &Identity{Dev: 1, Ino: uint64(10 + i), Size: 9, MTime: 5}
		cands = append(cands, cd)
	}
	if _, err := s.Claim(cands); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	present := func(p string) bool { return !gone[p] }
	known := func(p string) bool {
		_, ok, err := s.LookupFile(src, p)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	sweep := func(wantMissing, wantForgotten int) {
		t.Helper()
		st, err := s.ForgetMissing(src, present, 72*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if st.Checked == 0 || st.Missing != wantMissing || st.Forgotten != wantForgotten {
			t.Errorf("ForgetMissing = %+v, want %d newly missing, %d forgotten", st, wantMissing, wantForgotten)
		}
	}
	gone["/srv/hr/b.pdf"] = true
	sweep(1, 0)
	c.add(71 * time.Hour)
	sweep(0, 0)
	if !known("/srv/hr/b.pdf") {
		t.Fatal("b.pdf forgotten after 71 hours missing, want 72")
	}
	// Back (the share was remounted): its missing mark goes.
	gone["/srv/hr/b.pdf"] = false
	sweep(0, 0)
	gone["/srv/hr/b.pdf"] = true
	c.add(2 * time.Hour)
	sweep(1, 0) // missing since now, not since 73 hours ago
	c.add(72 * time.Hour)
	sweep(0, 1)
	if known("/srv/hr/b.pdf") {
		t.Error("b.pdf still remembered after 72 hours missing")
	}
	if !known("/srv/hr/a.pdf") || !known("/srv/hr/c.pdf") {
		t.Error("a file present was forgotten")
	}
	if problems, err := s.Check(); err != nil || len(problems) > 0 {
		t.Errorf("Check: %v %q", err, problems)
	}
	// The content's item stays: the same file back is a known content.
	res, err := s.Claim(cands[1:2])
	if err != nil || res[0] != ClaimDuplicate {
		t.Errorf("claim of b.pdf back = %v, %v; want a duplicate (its content was taken)", res, err)
	}
	if st, err := s.ForgetMissing("no-such-source", present, time.Hour); err != nil || st.Checked != 0 {
		t.Errorf("ForgetMissing of an unknown source = %+v, %v", st, err)
	}
}

// TestForgetUploaded: uploaded items older than keep_uploaded go, unless
// an after-action waits on them; pending and failed items stay.
func TestForgetUploaded(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	var cands []Candidate
	for i := range 4 {
		cd := cand(fmt.Sprint("cv ", i), fmt.Sprintf("/srv/hr/%d.pdf", i))
		cd.Identity = &Identity{Ino: uint64(i + 1), Size: 4}
		cd.Action = i == 1
		cands = append(cands, cd)
	}
	if _, err := s.Claim(cands); err != nil {
		t.Fatal(err)
	}
	items, _, err := s.Lease(10, nil)
	if err != nil || len(items) != 4 {
		t.Fatalf("Lease = %d items, %v", len(items), err)
	}
	var rs []Result
	for _, it := range items {
		switch it.Path {
		case "/srv/hr/2.pdf":
			rs = append(rs, Result{Key: it.Key, Outcome: Fail, Err: "bad"})
		case "/srv/hr/3.pdf":
			rs = append(rs, Result{Key: it.Key, Outcome: Retry, Next: c.t.Add(time.Hour)})
		default:
			rs = append(rs, Result{Key: it.Key, Outcome: Done, Attempted: true, FileID: "f"})
		}
	}
	if err := s.Complete(rs); err != nil {
		t.Fatal(err)
	}
	c.add(24 * time.Hour)
	st, err := s.ForgetUploaded(c.t.Add(-25 * time.Hour))
	if err != nil || st.Forgotten != 0 {
		t.Fatalf("ForgetUploaded before any upload = %+v, %v; want nothing forgotten", st, err)
	}
	// A sweep whose context ended stops before it forgets anything.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if st, err := s.ForgetUploadedContext(ctx, c.t.Add(-time.Hour)); !errors.Is(err, context.Canceled) || st.Forgotten != 0 {
		t.Fatalf("ForgetUploadedContext with its context ended = %+v, %v; want nothing forgotten, context.Canceled", st, err)
	}
	st, err = s.ForgetUploaded(c.t.Add(-time.Hour))
	if err != nil || st.Forgotten != 1 {
		t.Fatalf("ForgetUploaded = %+v, %v; want 1 forgotten", st, err)
	}
	for i, want := range []bool{false, true, true, true} {
		if _, ok, err := s.Get(Key{SourceID: src, SHA256: cands[i].SHA256}); err != nil || ok != want {
			t.Errorf("item of %d.pdf kept = %v, %v; want %v", i, ok, err, want)
		}
	}
	// The identity stays, so the unchanged file is not read again; the
	// content claimed again is new to the state, and the uploader's
	// reference check confirms what the API holds.
	if _, ok, _ := s.LookupFile(src, "/srv/hr/0.pdf"); !ok {
		t.Error("the identity of a forgotten item was dropped")
	}
	if res, err := s.Claim([]Candidate{cand("cv 0", "/srv/hr/copy.pdf")}); err != nil || res[0] != ClaimNew {
		t.Errorf("claim of forgotten content = %v, %v; want new", res, err)
	}
	if problems, err := s.Check(); err != nil || len(problems) > 0 {
		t.Errorf("Check: %v %q", err, problems)
	}
}

// ListedDir: a directory whose every remembered file is among the names
// listed; any remembered file not listed makes it false.
func TestListedDir(t *testing.T) {
	s := openTest(t, newClock())
	var cands []Candidate
	for _, p := range []string{"/srv/cvs/d1/anna.pdf", "/srv/cvs/d1/bob.pdf", "/srv/cvs/d2/carl.pdf"} {
		c := cand("cv "+p, p)
		c.Identity = &Identity{Ino: uint64(len(cands) + 1)}
		cands = append(cands, c)
	}
	if _, err := s.Claim(cands); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		source, dir string
		names       []string
		want        bool
	}{
		{src, "/srv/cvs/d1", []string{"bob.pdf", "new.pdf", "anna.pdf"}, true},
		{src, "/srv/cvs/d1/", []string{"anna.pdf", "bob.pdf"}, true},
		{src, "/srv/cvs/d1", []string{"anna.pdf", "carl.pdf"}, false},
		{src, "/srv/cvs/d1", nil, false},
		{src, "/srv/cvs/d2", []string{"carl.pdf"}, true},
		{src, "/srv/cvs/d3", nil, true},
		{src, "/srv/cvs", []string{}, true},
		{"another-source", "/srv/cvs/d1", nil, true},
	} {
		got, err := s.ListedDir(tc.source, tc.dir, tc.names)
		if err != nil || got != tc.want {
			t.Errorf("ListedDir(%s, %s, %q) = %v, %v; want %v", tc.source, tc.dir, tc.names, got, err, tc.want)
		}
	}
}

// ForgetMissingListed: the files of a directory listed whole are not asked
// about and lose a missing mark; the others are swept as by ForgetMissing.
func TestForgetMissingListed(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	var cands []Candidate
	for i, p := range []string{"/srv/hr/d1/a.pdf", "/srv/hr/d1/b.pdf", "/srv/hr/d2/c.pdf", "/srv/hr/d3/d.pdf"} {
		cd := cand("content "+p, p)
		cd.Identity = &Identity{Dev: 1, Ino: uint64(10 + i), Size: 9, MTime: 5}
		cands = append(cands, cd)
	}
	if _, err := s.Claim(cands); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{"/srv/hr/d1/b.pdf": true, "/srv/hr/d3/d.pdf": true}
	asked := map[string]bool{}
	present := func(p string) bool { asked[p] = true; return !gone[p] }
	// d1 not listed whole (b is gone): b is noted missing, as is d in d3.
	st, err := s.ForgetMissingListed(src, func(dir string) bool { return dir == "/srv/hr/d2/" }, present, time.Hour)
	if err != nil || st.Missing != 2 || st.Checked != 3 {
		t.Fatalf("first sweep = %+v, %v; want 3 checked, 2 newly missing", st, err)
	}
	if asked["/srv/hr/d2/c.pdf"] || !asked["/srv/hr/d1/a.pdf"] {
		t.Errorf("present asked of %v: want every file but those of the listed d2", asked)
	}
	// b is back and d1 listed whole now: b's mark goes without asking.
	delete(gone, "/srv/hr/d1/b.pdf")
	clear(asked)
	c.add(2 * time.Hour)
	st, err = s.ForgetMissingListed(src, func(dir string) bool { return dir != "/srv/hr/d3/" }, present, time.Hour)
	if err != nil || st.Forgotten != 1 || len(asked) != 1 || !asked["/srv/hr/d3/d.pdf"] {
		t.Fatalf("second sweep = %+v, %v, asked %v; want d.pdf alone asked and forgotten", st, err, asked)
	}
	c.add(2 * time.Hour)
	gone["/srv/hr/d1/b.pdf"] = true
	st, err = s.ForgetMissing(src, present, time.Hour)
	if err != nil || st.Missing != 1 || st.Forgotten != 0 {
		t.Errorf("third sweep = %+v, %v; want b.pdf newly missing (its old mark gone), none forgotten", st, err)
	}
}
