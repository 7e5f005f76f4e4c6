package pipeline

import (
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

func TestCleanSpool(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, state.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spool := spoolDir(dir)
	os.MkdirAll(spool, 0o700)
	old := time.Now().Add(-2 * time.Hour)
	write := func(name string, mtime time.Time) string {
		p := filepath.Join(spool, name)
		os.WriteFile(p, []byte(name), 0o600)
		os.Chtimes(p, mtime, mtime)
		return p
	}
	uploaded := write("uploaded", old)
	pending := write("pending", old)
	failed := write("failed", old)
	fresh := write("fresh", time.Now()) // spooled, claim not recorded yet
	orphan := write("orphan", old)
	var cands []state.Candidate
	for _, p := range []string{uploaded, pending, failed} {
		cands = append(cands, state.Candidate{Source: "jobs", SourceID: e2eSource, SHA256: sha256.Sum256([]byte(p)), Path: p, Size: 1})
	}
	st.Claim(cands)
	items, _, _ := st.Lease(10, nil)
	var rs []state.Result
	for _, it := range items {
		switch it.Path {
		case uploaded:
			rs = append(rs, state.Result{Key: it.Key, Outcome: state.Done})
		case failed:
			rs = append(rs, state.Result{Key: it.Key, Outcome: state.Fail})
		default:
			rs = append(rs, state.Result{Key: it.Key, Outcome: state.Release})
		}
	}
	st.Complete(rs)
	cleanSpool(st, spool, time.Now(), slog.New(slog.DiscardHandler))
	for p, want := range map[string]bool{uploaded: false, pending: true, failed: true, fresh: true, orphan: false} {
		if got := exists(p); got != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), got, want)
		}
	}
}
