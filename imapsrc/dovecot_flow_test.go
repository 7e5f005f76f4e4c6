package imapsrc

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/dovecottest"
	"github.com/cvfeed/cvfeed/state"
)

// uids returns the UIDs in a folder of the Dovecot user (nil: no folder).
func dovecotUIDs(t *testing.T, s *dovecottest.Server, folder string) []imap.UID {
	t.Helper()
	c, err := s.Client("cvfeed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return data.AllUIDs()
}

// TestDovecotCutsAndActions runs against Dovecot: a connection cut in the
// middle of a part, then the move and delete actions, a UIDVALIDITY
// change, and a connection cut during IDLE.
func TestDovecotCutsAndActions(t *testing.T) {
	s := dovecottest.Start(t)
	cvs := [][]byte{pdf(80000), pdf(80001), pdf(80002)}
	for _, cv := range cvs {
		if _, err := s.Append("cvfeed", "Jobs", message("a@example.com", "CV", "cv.pdf", cv), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append("cvfeed", "Done", message("x@example.com", "x"), nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	cfg := dovecotConfig(s)
	cfg.Folders, cfg.AfterUpload, cfg.MoveTo = []string{"Jobs"}, config.MailMove, "Done"
	p := &proxy{target: s.Addr}
	p.cutAfter.Store(60000) // inside the first CV
	o := options(t, dir, nil)
	o.Dial = p.dial
	a := NewAccount(cfg, st, o)
	ctx := context.Background()
	if err := a.Backfill(ctx); err != nil {
		t.Fatal(err)
	}
	if fresh, dup := st.counts(); fresh != 3 || dup != 0 || p.dials.Load() < 2 {
		t.Fatalf("after a cut: %d new, %d duplicates, %d connections; want 3, 0, a reconnection", fresh, dup, p.dials.Load())
	}
	// Move: only after the upload.
	if err := a.ActionsNow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dovecotUIDs(t, s, "Jobs"); len(got) != 3 {
		t.Fatalf("Jobs holds %v before the uploads, want 3 messages", got)
	}
	settle(t, st.Store, state.Done)
	if err := a.ActionsNow(ctx); err != nil {
		t.Fatal(err)
	}
	if jobs, done := dovecotUIDs(t, s, "Jobs"), dovecotUIDs(t, s, "Done"); len(jobs) != 0 || len(done) != 4 {
		t.Fatalf("after move: Jobs %v, Done %v; want 0 and 4 messages", jobs, done)
	}

	// UIDVALIDITY: the folder is recreated with one old CV and one new.
	c, err := s.Client("cvfeed")
	if err != nil {
		t.Fatal(err)
	}
	c.Unselect().Wait()
	if err := c.Delete("Jobs").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append("cvfeed", "Jobs", message("a@example.com", "CV", "cv.pdf", cvs[0]), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append("cvfeed", "Jobs", message("b@example.com", "CV", "new.pdf", pdf(90000)), nil); err != nil {
		t.Fatal(err)
	}
	cfg.AfterUpload = config.MailDelete
	a = NewAccount(cfg, st, options(t, dir, nil))
	if err := a.Backfill(ctx); err != nil {
		t.Fatal(err)
	}
	if fresh, dup := st.counts(); fresh != 4 || dup != 1 {
		t.Fatalf("after the UIDVALIDITY change: %d new items, %d duplicates; want 4 (one more) and the old CV a duplicate", fresh, dup)
	}
	settle(t, st.Store, state.Done)
	if err := a.ActionsNow(ctx); err != nil {
		t.Fatal(err)
	}
	if jobs := dovecotUIDs(t, s, "Jobs"); len(jobs) != 0 {
		t.Fatalf("after delete: Jobs %v, want empty", jobs)
	}

	// A cut during IDLE: the mail that came meanwhile is read after it.
	cfg.PollInterval = time.Hour
	o.Dial = p.dial
	runAccount(t, NewAccount(cfg, st, o))
	time.Sleep(300 * time.Millisecond)
	p.cut()
	if _, err := s.Append("cvfeed", "Jobs", message("c@example.com", "CV", "c.pdf", pdf(70000)), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the CV after the cut", func() bool { n, _ := st.counts(); return n == 5 })
	time.Sleep(300 * time.Millisecond)
	if _, err := s.Append("cvfeed", "Jobs", message("d@example.com", "CV", "d.pdf", pdf(71000)), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the CV through IDLE after the cut", func() bool { n, _ := st.counts(); return n == 6 })
}
