package control

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cvfeed/cvfeed/state"
)

const src = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

// TestServeAndClient: while a process holds the state and serves the
// socket, OpenReader reaches it; counts, failed items (at the path they
// are now) and a retry go through; the socket is removed at the stop.
func TestServeAndClient(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, state.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum := sha256.Sum256([]byte("cv"))
	k := state.Key{SourceID: src, SHA256: sum}
	if _, err := st.Claim([]state.Candidate{{Source: "inbox", SourceID: src, SHA256: sum, Path: "/srv/cvs/a.pdf", FileName: "a.pdf", Size: 2}}); err != nil {
		t.Fatal(err)
	}
	items, _, _ := st.Lease(10, nil)
	if err := st.Complete([]state.Result{{Key: items[0].Key, Outcome: state.Fail, Attempted: true, Err: "422 bad"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.ActionDone(state.Action{Key: k, Path: "/srv/cvs/a.pdf", Source: "inbox"}, "/srv/failed/a.pdf"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, dir, Local{Store: st}, slog.New(slog.DiscardHandler)) }()

	// The state is held: OpenReader finds the lock taken and asks the
	// socket (waiting, as it does for a daemon that is starting).
	r, err := OpenReader(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, remote := r.(*Client); !remote {
		t.Fatalf("OpenReader = %T, want the running process's client", r)
	}
	counts, err := r.Counts()
	if err != nil || counts["inbox"].Failed != 1 {
		t.Errorf("Counts = %+v, %v; want 1 failed in inbox", counts, err)
	}
	failed, err := r.Failed()
	if err != nil || len(failed) != 1 || failed[0].File != "/srv/failed/a.pdf" || failed[0].Error != "422 bad" || failed[0].ID != k.String() {
		t.Errorf("Failed = %+v, %v; want a.pdf where it is now, /srv/failed", failed, err)
	}
	if n, err := r.RetryFailed(nil); n != 1 || err != nil {
		t.Errorf("RetryFailed = %d, %v; want 1", n, err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if _, err := os.Stat(SocketPath(dir)); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}
