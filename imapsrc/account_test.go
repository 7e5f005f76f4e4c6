package imapsrc

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

func TestIdlePicksUpNewMail(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	srv.append(t, "INBOX", message("old@example.com", "old", "old.pdf", pdf(3000)))
	cfg := mailboxConfig(srv.addr)
	cfg.PollInterval = time.Hour // only IDLE can be quick
	a := NewAccount(cfg, st, options(t, dir, nil))
	runAccount(t, a)
	// First run: the cursor is set at the end, old mail is not read.
	waitFor(t, 5*time.Second, "the cursor", func() bool {
		_, ok, _ := st.MailCursor("jobs", "INBOX")
		return ok
	})
	time.Sleep(100 * time.Millisecond) // let it enter IDLE
	srv.append(t, "INBOX", message("ann@example.com", "CV", "ann.pdf", pdf(20000)))
	waitFor(t, 5*time.Second, "the new CV claimed", func() bool { n, _ := st.counts(); return n == 1 })
	if n, _ := st.counts(); n != 1 {
		t.Fatalf("claimed %d new items, want 1 (old mail is not read by Run)", n)
	}
	st.mu.Lock()
	c := st.claims[0]
	st.mu.Unlock()
	if c.FileName != "ann.pdf" || c.Size != 20000 || !strings.HasSuffix(c.Origin, "/2/2") || c.Source != "jobs" {
		t.Errorf("claim = %+v, want ann.pdf, 20000 bytes, origin .../2/2", c)
	}
	if b, err := os.ReadFile(c.Path); err != nil || len(b) != 20000 {
		t.Errorf("spool file %s: %d bytes, %v", c.Path, len(b), err)
	}
	cur, _, _ := st.MailCursor("jobs", "INBOX")
	if cur.LastUID != 2 {
		t.Errorf("cursor = %+v, want last UID 2", cur)
	}
}

func TestPollSafetyNet(t *testing.T) {
	// A server without IDLE: polling finds the mail.
	srv := newMemServer(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	cfg := mailboxConfig(srv.addr)
	cfg.PollInterval = 100 * time.Millisecond
	runAccount(t, NewAccount(cfg, st, options(t, dir, nil)))
	waitFor(t, 5*time.Second, "the cursor", func() bool { _, ok, _ := st.MailCursor("jobs", "INBOX"); return ok })
	srv.append(t, "INBOX", message("ann@example.com", "CV", "ann.pdf", pdf(5000)))
	waitFor(t, 5*time.Second, "the CV claimed by a poll", func() bool { n, _ := st.counts(); return n == 1 })
}

func TestBackfillResumesFromCursor(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	for i := range 3 {
		srv.append(t, "INBOX", message("a@example.com", "CV", "cv.pdf", pdf(4000+i)))
	}
	cfg := mailboxConfig(srv.addr)
	o := options(t, dir, nil)
	o.Stats = new(Stats)
	if err := NewAccount(cfg, st, o).Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, d := st.counts(); n != 3 || d != 0 {
		t.Fatalf("first backfill: %d new, %d duplicates; want 3, 0", n, d)
	}
	// A restart: nothing is fetched again, only the new message.
	srv.append(t, "INBOX", message("b@example.com", "CV", "cv.pdf", pdf(9000)))
	before := o.Stats.PartBytes.Load()
	if err := NewAccount(cfg, st, o).Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, d := st.counts(); n != 4 || d != 0 {
		t.Fatalf("after restart: %d new, %d duplicates; want 4, 0", n, d)
	}
	if got := o.Stats.PartBytes.Load() - before; got != 9000 {
		t.Errorf("second backfill spooled %d bytes, want only the new 9000", got)
	}
}

func TestUIDValidityChange(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	cvA, cvB := pdf(4000), pdf(5000)
	srv.append(t, "INBOX", message("a@example.com", "CV", "a.pdf", cvA))
	cfg := mailboxConfig(srv.addr)
	cfg.AfterUpload = config.MailSeen
	logs := &logBuf{}
	a := NewAccount(cfg, st, options(t, dir, logs))
	if err := a.Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	old, _, _ := st.MailCursor("jobs", "INBOX")
	// The folder is recreated: new UIDVALIDITY, same CV plus a new one.
	if err := srv.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := srv.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv.append(t, "INBOX", message("a@example.com", "CV", "a.pdf", cvA))
	srv.append(t, "INBOX", message("b@example.com", "CV", "b.pdf", cvB))
	if err := a.Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	fresh, dup := st.counts()
	if fresh != 2 || dup != 1 {
		t.Errorf("claims: %d new, %d duplicates; want 2 new (a, b) and a's second copy a duplicate", fresh, dup)
	}
	cur, _, _ := st.MailCursor("jobs", "INBOX")
	if cur.UIDValidity == old.UIDValidity || cur.LastUID != 2 {
		t.Errorf("cursor %+v after the change (old %+v), want the new UIDVALIDITY, last UID 2", cur, old)
	}
	if !strings.Contains(logs.String(), "UIDVALIDITY changed") {
		t.Errorf("no log line about the UIDVALIDITY change:\n%s", logs)
	}
	// The message tracked under the old UIDVALIDITY is gone.
	due, _ := st.DueMessages("jobs")
	for _, m := range due {
		if m.UIDValidity == old.UIDValidity {
			t.Errorf("message %s of the old UIDVALIDITY still tracked", m.MessageID)
		}
	}
}

func TestCutMidFetch(t *testing.T) {
	srv := newMemServer(t, nil)
	const n = 4
	for i := range n {
		srv.append(t, "INBOX", message("a@example.com", "CV", "cv.pdf", pdf(60000+i)))
	}
	// Cut in the metadata, in the first part, in a later message.
	for _, cutAt := range []int64{1500, 40000, 150000} {
		dir := t.TempDir()
		st := &recStore{Store: openStore(t, dir)}
		p := &proxy{target: srv.addr}
		p.cutAfter.Store(cutAt)
		o := options(t, dir, nil)
		o.Dial = p.dial
		// The proxy cuts the first connection; Backfill reconnects.
		if err := NewAccount(mailboxConfig(srv.addr), st, o).Backfill(context.Background()); err != nil {
			t.Fatalf("cut after %d bytes: %v", cutAt, err)
		}
		if p.dials.Load() < 2 {
			t.Errorf("cut after %d bytes: %d connections, want a reconnection", cutAt, p.dials.Load())
		}
		if fresh, dup := st.counts(); fresh != n || dup != 0 {
			t.Errorf("cut after %d bytes: %d new, %d duplicates; want %d, 0: each message claimed once", cutAt, fresh, dup, n)
		}
		if cur, _, _ := st.MailCursor("jobs", "INBOX"); cur.LastUID != n {
			t.Errorf("cut after %d bytes: cursor %+v, want last UID %d", cutAt, cur, n)
		}
	}
}

func TestCutMidIdle(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	p := &proxy{target: srv.addr}
	cfg := mailboxConfig(srv.addr)
	cfg.PollInterval = time.Hour
	o := options(t, dir, nil)
	o.Dial = p.dial
	o.Stats = new(Stats)
	runAccount(t, NewAccount(cfg, st, o))
	waitFor(t, 5*time.Second, "the cursor", func() bool { _, ok, _ := st.MailCursor("jobs", "INBOX"); return ok })
	time.Sleep(100 * time.Millisecond)
	p.cut()
	// Mail arriving while the connection is down is read after it.
	srv.append(t, "INBOX", message("a@example.com", "CV", "a.pdf", pdf(7000)))
	waitFor(t, 5*time.Second, "the reconnection", func() bool { return p.dials.Load() >= 2 })
	waitFor(t, 5*time.Second, "the CV claimed", func() bool { n, _ := st.counts(); return n == 1 })
	if o.Stats.Reconnects.Load() < 1 {
		t.Errorf("Stats.Reconnects = %d, want >= 1", o.Stats.Reconnects.Load())
	}
	// And IDLE works on the new connection.
	time.Sleep(100 * time.Millisecond)
	srv.append(t, "INBOX", message("b@example.com", "CV", "b.pdf", pdf(8000)))
	waitFor(t, 5*time.Second, "the second CV claimed", func() bool { n, _ := st.counts(); return n == 2 })
}

func TestLoginRejected(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	p := &proxy{target: srv.addr}
	cfg := mailboxConfig(srv.addr)
	cfg.Password = "wrong"
	o := options(t, dir, nil)
	o.Dial = p.dial
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := NewAccount(cfg, openStore(t, dir), o).Run(ctx)
	var le *LoginError
	if !errors.As(err, &le) || le.Account != "jobs" {
		t.Fatalf("Run = %v, want a *LoginError of jobs", err)
	}
	if ctx.Err() != nil || p.dials.Load() != 1 {
		t.Errorf("Run tried %d connections (ctx %v), want 1 and an immediate return", p.dials.Load(), ctx.Err())
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q shows the password", err)
	}
}

func TestMissingFolder(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	srv.append(t, "INBOX", message("a@example.com", "CV", "a.pdf", pdf(3000)))
	cfg := mailboxConfig(srv.addr)
	cfg.Folders = []string{"Nope", "INBOX"}
	logs := &logBuf{}
	err := NewAccount(cfg, st, options(t, dir, logs)).Backfill(context.Background())
	if err == nil || !strings.Contains(err.Error(), `"Nope"`) || !strings.Contains(err.Error(), "jobs") {
		t.Errorf("Backfill = %v, want an error naming the account and the folder", err)
	}
	if n, _ := st.counts(); n != 1 {
		t.Errorf("claimed %d, want INBOX read anyway", n)
	}
	// Run logs it and goes on; the folder is read once it exists.
	cfg.PollInterval = 100 * time.Millisecond
	runAccount(t, NewAccount(cfg, st, options(t, dir, logs)))
	waitFor(t, 5*time.Second, "the error logged", func() bool { return strings.Contains(logs.String(), "cannot read folder") })
	if err := srv.user.Create("Nope", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the cursor of the new folder", func() bool { _, ok, _ := st.MailCursor("jobs", "Nope"); return ok })
}

func TestFilters(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	old := message("ann@example.com", "CV Ann", "ann.pdf", pdf(3000))
	if _, err := srv.user.Append("INBOX", strings.NewReader(string(old)), &imap.AppendOptions{Time: time.Now().AddDate(0, 0, -30)}); err != nil {
		t.Fatal(err)
	}
	srv.append(t, "INBOX", message("Bob <bob@jobs.example.org>", "Application: CV/Bob", "bob.pdf", pdf(3100)))
	srv.append(t, "INBOX", message("spam@example.net", "Application", "x.pdf", pdf(3200)))
	srv.append(t, "INBOX", message("carl@jobs.example.org", "Newsletter", "c.pdf", pdf(3300)))
	cfg := mailboxConfig(srv.addr)
	cfg.SinceAge = 7 * 24 * time.Hour
	cfg.From = []string{"*@JOBS.example.org", "ann@*"}
	cfg.Subject = []string{"application:*", "cv *"}
	cfg.AfterUpload = config.MailSeen
	o := options(t, dir, nil)
	o.Stats = new(Stats)
	if err := NewAccount(cfg, st, o).Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	var names []string
	for _, c := range st.claims {
		names = append(names, c.FileName)
	}
	st.mu.Unlock()
	if strings.Join(names, ",") != "bob.pdf" {
		t.Errorf("claimed %q, want only bob.pdf (ann: too old, spam: sender, carl: subject)", names)
	}
	if f := o.Stats.Filtered.Load(); f != 3 {
		t.Errorf("Stats.Filtered = %d, want 3", f)
	}
	cur, _, _ := st.MailCursor("jobs", "INBOX")
	if cur.LastUID != 4 {
		t.Errorf("cursor %+v, want past every message (last UID 4)", cur)
	}
	due, _ := st.DueMessages("jobs")
	if len(due) != 0 {
		t.Errorf("%d messages due for an action before the upload, want 0 (filtered ones are not tracked)", len(due))
	}
}

func TestNotCVNotFetched(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	big := make([]byte, 2<<20) // zeros: not a CV by its bytes
	copy(big, "PK\x03\x04")
	srv.append(t, "INBOX", message("a@example.com", "CV", "cv.pdf", pdf(50000), "photos.zip", big))
	o := options(t, dir, nil)
	o.Stats = new(Stats)
	if err := NewAccount(mailboxConfig(srv.addr), st, o).Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.counts(); n != 1 {
		t.Fatalf("claimed %d, want the PDF only", n)
	}
	if read := o.Stats.BytesRead.Load(); read > 200<<10 {
		t.Errorf("read %d bytes from IMAP, want well under the 2.7 MB of the zip", read)
	}
	if o.Stats.Skipped.Load() != 1 {
		t.Errorf("Stats.Skipped = %d, want 1 (the zip)", o.Stats.Skipped.Load())
	}
}

var _ = state.ClaimNew
