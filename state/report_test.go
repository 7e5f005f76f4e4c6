package state

import (
	"testing"
	"time"
)

func TestMarkParsedAndReport(t *testing.T) {
	c := newClock() // 2026-11-30 09:00 UTC
	s := openTest(t, c)
	s.Claim([]Candidate{cand("a", "/a"), cand("b", "/b"), cand("c", "/c")})
	c.add(24 * time.Hour) // 12-01
	s.Claim([]Candidate{cand("a", "/a-copy"), cand("d", "/d")})
	items, _, _ := s.Lease(10, nil)
	var rs []Result
	for _, it := range items {
		o := Done
		if it.SHA256 == sum("c") {
			o = Fail
		}
		if it.SHA256 == sum("d") {
			o = Release
		}
		rs = append(rs, Result{Key: it.Key, Outcome: o, Attempted: true})
	}
	s.Complete(rs)
	c.add(24 * time.Hour) // 12-02: the webhooks arrive
	ka := Key{SourceID: src, SHA256: sum("a")}
	if ok, err := s.MarkParsed([]string{"0000000000000000000000000000000000000001", src}, ka.Hex(), "prof-a", true); !ok || err != nil {
		t.Fatalf("MarkParsed(a) = %v, %v", ok, err)
	}
	kb := Key{SourceID: src, SHA256: sum("b")}
	s.MarkParsed([]string{src}, kb.Hex(), "", false)
	if ok, _ := s.MarkParsed([]string{src}, "not-ours", "", true); ok {
		t.Error("a foreign reference was found")
	}
	it, _, _ := s.Get(ka)
	if it.Parse != Parsed || it.ProfileID != "prof-a" || it.Status != Uploaded {
		t.Errorf("item a = parse %v id %q status %v", it.Parse, it.ProfileID, it.Status)
	}
	counts, _ := s.Counts()
	if got := counts["inbox"]; got.Parsed != 1 || got.ParseError != 1 || got.Uploaded != 2 || got.Duplicate != 1 {
		t.Errorf("counts = %+v", got)
	}
	rows, err := s.Report(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []ReportRow{
		{Source: "inbox", Day: "2026-11-30", Seen: 3},
		{Source: "inbox", Day: "2026-12-01", Seen: 2, Uploaded: 2, Duplicates: 1, Failed: 1},
		{Source: "inbox", Day: "2026-12-02", Parsed: 1, ParseErrors: 1},
	}
	if len(rows) != len(want) {
		t.Fatalf("Report = %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	rows, _ = s.Report(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	if len(rows) != 1 || rows[0].Day != "2026-12-02" {
		t.Errorf("Report(since 12-02) = %+v", rows)
	}
}
