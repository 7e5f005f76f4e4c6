package uploader

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/sandbox"
	"github.com/cvfeed/cvfeed/state"
)

func TestReceptionTime(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		in     time.Time
		want   time.Time
		logged bool
	}{
		{"unset", time.Time{}, time.Time{}, false},
		{"an ordinary date", time.Unix(1700000000, 0), time.Unix(1700000000, 0), false},
		{"1901", time.Date(1901, 12, 13, 20, 45, 52, 0, time.UTC), time.Time{}, true},
		{"the epoch", time.Unix(0, 0), time.Time{}, true},
		{"just after the epoch", time.Unix(1, 0), time.Unix(1, 0), false},
		{"a clock a little ahead", now.Add(time.Minute), now, false},
		{"2100", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), now, true},
	} {
		got, why := receptionTime(tt.in, now)
		if !got.Equal(tt.want) || (why != "") != tt.logged {
			t.Errorf("%s: receptionTime(%v) = %v, %q; want %v, logged %v", tt.name, tt.in, got, why, tt.want, tt.logged)
		}
	}
}

// TestPoolDatesFromTheFile: a folder file is sent with its mtime as it is
// when sent, within what the API accepts (1901 is left out, 2100 becomes
// now, with a log line naming the file), so a touch and a retry mend a bad
// date; a mailbox's spool file keeps the date recorded from its message.
func TestPoolDatesFromTheFile(t *testing.T) {
	sb, base := startSandbox(t, sandbox.Options{})
	var logs bytes.Buffer
	c, err := NewClient(ClientOptions{BaseURL: base, Key: "k", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spool := filepath.Join(dir, "state", "spool")
	st, err := state.Open(filepath.Join(dir, "state", state.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stale := time.Date(1901, 12, 13, 20, 45, 52, 0, time.UTC) // as scanned
	message := time.Unix(1530607434, 0)                       // the mail's Date
	touched := time.Unix(1750000000, 0)
	files := []struct {
		name     string
		mtime    time.Time
		received time.Time // recorded at the scan
		want     *int64    // timestamp_reception stored by the API
	}{
		{"old.pdf", stale, stale, nil},
		{"future.pdf", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), nil}, // checked below
		{"touched.pdf", touched, stale, ptr(touched.Unix())},
		{"spool/part.pdf", time.Unix(1760000000, 0), message, ptr(message.Unix())},
	}
	var cands []state.Candidate
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if strings.HasPrefix(f.name, "spool/") {
			p = filepath.Join(spool, filepath.Base(f.name))
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		content := "CV " + f.name
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
		cands = append(cands, state.Candidate{Source: "inbox", SourceID: testSource, SHA256: sha256.Sum256([]byte(content)),
			Path: p, FileName: filepath.Base(p), Size: int64(len(content)), Received: f.received})
	}
	if _, err := st.Claim(cands); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := NewPool(PoolConfig{Workers: 2, SpoolDir: spool}, st, c)
	if err := runUntilDone(t, p, st, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	got := map[string]*int64{}
	for _, pr := range sb.Profiles() {
		got[pr.FileName] = pr.TimestampReception
	}
	if len(got) != len(files) {
		t.Fatalf("the sandbox holds %d profiles, want %d: %v", len(got), len(files), got)
	}
	for _, f := range files {
		ts, name := got[filepath.Base(f.name)], filepath.Base(f.name)
		switch {
		case name == "future.pdf":
			if ts == nil || *ts < start.Unix() || *ts > time.Now().Unix() {
				t.Errorf("%s: timestamp_reception = %v, want now", name, show(ts))
			}
		case (ts == nil) != (f.want == nil) || ts != nil && *ts != *f.want:
			t.Errorf("%s: timestamp_reception = %v, want %v", name, show(ts), show(f.want))
		}
	}
	for _, want := range []string{"old.pdf", "future.pdf"} {
		n := 0
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d log lines name %s, want 1:\n%s", n, want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "touched.pdf") || strings.Contains(logs.String(), "part.pdf") {
		t.Errorf("a log line for a good date:\n%s", logs.String())
	}
}

func ptr(n int64) *int64 { return &n }

func show(p *int64) any {
	if p == nil {
		return "null"
	}
	return *p
}
