package pipeline

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

// queueTest is a one-shot pipeline over a real state holding n pending
// items, with waitQueue's limits set to ahead and stall.
func queueTest(t *testing.T, n, ahead int, stall time.Duration) (*Pipeline, context.CancelFunc) {
	t.Helper()
	s, err := state.Open(filepath.Join(t.TempDir(), state.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cands := make([]state.Candidate, n)
	for i := range cands {
		p := fmt.Sprintf("/in/cv-%d.pdf", i)
		cands[i] = state.Candidate{Source: "inbox", SourceID: "src", SHA256: sha256.Sum256([]byte(p)), Path: p, FileName: filepath.Base(p), Size: 1}
	}
	if _, err := s.Claim(cands); err != nil {
		t.Fatal(err)
	}
	p := &Pipeline{mode: OneShot, store: s, queue: queueLimits{ahead: ahead, stall: stall}}
	p.sources.start(context.Background(), func(ctx context.Context) { <-ctx.Done() })
	return p, p.sources.cancel
}

// upload completes k leased items, as the pool does.
func upload(t *testing.T, s *state.Store, k int) {
	t.Helper()
	items, _, err := s.Lease(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]state.Result, len(items))
	for i, it := range items {
		rs[i] = state.Result{Key: it.Key, Outcome: state.Done, Attempted: true, FileID: "f"}
	}
	if err := s.Complete(rs); err != nil {
		t.Fatal(err)
	}
}

// A one-shot scan waits while more than the limit is pending, and walks on
// once half of it is done.
func TestWaitQueueHoldsScanAhead(t *testing.T) {
	p, stop := queueTest(t, 100, 64, time.Minute)
	defer stop()
	returned := make(chan struct{})
	go func() { p.waitQueue(16); close(returned) }()
	select {
	case <-returned:
		t.Fatal("waitQueue returned with 100 pending over a limit of 64")
	case <-time.After(200 * time.Millisecond):
	}
	upload(t, p.store, 40) // 60 pending: below 64, but not yet half of it
	select {
	case <-returned:
		t.Fatal("waitQueue returned with 60 pending, before half of the limit was done")
	case <-time.After(200 * time.Millisecond):
	}
	upload(t, p.store, 30) // 30 pending
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("waitQueue still waits with 30 pending, limit 64")
	}
	// Below a quarter of the limit claimed since the last count, no count.
	done := make(chan struct{})
	go func() { p.waitQueue(1); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waitQueue waited with 30 pending")
	}
}

// The wait ends when the pass is stopped, and when nothing is done for the
// stall time; the daemon never waits.
func TestWaitQueueNeverHoldsForEver(t *testing.T) {
	p, stop := queueTest(t, 100, 64, time.Hour)
	returned := make(chan struct{})
	go func() { p.waitQueue(16); close(returned) }()
	time.Sleep(100 * time.Millisecond)
	stop()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("waitQueue still waits after the pass was stopped")
	}

	p, stop = queueTest(t, 100, 64, 300*time.Millisecond)
	defer stop()
	start := time.Now()
	p.waitQueue(16)
	if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("with nothing done, waitQueue returned after %v, want the stall time (300ms)", took)
	}

	p.mode = Daemon
	start = time.Now()
	p.waitQueue(1000)
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("the daemon waited %v", took)
	}
}
