package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cvfeed/cvfeed/internal/cyrustest"
)

// mailServer is a real IMAP server a mail end-to-end test runs against:
// Dovecot (internal/dovecottest) or Cyrus (internal/cyrustest), with the
// user "cvfeed" whose password is mailPassword.
type mailServer struct {
	Name   string
	Addr   string
	Append func(user, mailbox string, raw []byte, flags []imap.Flag) (imap.UID, error)
	Client func(user string) (*imapclient.Client, error)
	Log    func() string
	// IdleNotifies is false where IDLE reports new mail too late for a
	// test to wait on (Cyrus's idled: about a minute): rely on the poll.
	IdleNotifies bool
}

func dovecotServer(t *testing.T) *mailServer {
	dv := startDovecot(t)
	return &mailServer{Name: "dovecot", Addr: dv.Addr, Append: dv.Append, Client: dv.Client, Log: dv.Log, IdleNotifies: true}
}

func cyrusServer(t *testing.T) *mailServer {
	cy := cyrustest.StartWith(t, cyrustest.Options{Users: map[string]string{"cvfeed": mailPassword}})
	return &mailServer{Name: "cyrus", Addr: cy.Addr, Append: cy.Append, Client: cy.Client, Log: cy.Log}
}

// forEachServer runs test once against a Dovecot and once against a Cyrus.
func forEachServer(t *testing.T, test func(t *testing.T, srv *mailServer)) {
	for _, sv := range []struct {
		name  string
		start func(*testing.T) *mailServer
	}{{"dovecot", dovecotServer}, {"cyrus", cyrusServer}} {
		t.Run(sv.name, func(t *testing.T) { test(t, sv.start(t)) })
	}
}

// TestBackfillMailboxMove: after_upload = "move" on Dovecot and on Cyrus:
// each message whose CV the API confirmed is moved to move_to, the message
// without a CV stays in INBOX, and each CV is uploaded once.
func TestBackfillMailboxMove(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *mailServer) {
		sb := startSandbox(t)
		dir := t.TempDir()
		want := map[string]string{}
		for i := 1; i <= 5; i++ {
			raw, sha := cvMessage(i, 2000)
			want[fmt.Sprintf("cv-%d.pdf", i)] = sha
			if _, err := srv.Append("cvfeed", "INBOX", raw, nil); err != nil {
				t.Fatal(err)
			}
		}
		noCV := "From: a@example.com\r\nTo: jobs@example.com\r\nSubject: a question\r\nMessage-ID: <q@example.com>\r\n\r\nWhen is the interview?\r\n"
		if _, err := srv.Append("cvfeed", "INBOX", []byte(noCV), nil); err != nil {
			t.Fatal(err)
		}
		// The target folder exists (created by the helper), as HR's would.
		if _, err := srv.Append("cvfeed", "Processed", []byte(noCV), nil); err != nil {
			t.Fatal(err)
		}
		cfg := mailConfig(t, dir, sb.url, srv.Addr, `after_upload = "move"
move_to = "Processed"`)
		r := runCvfeed(t, []string{"JOBS_IMAP_PASSWORD=" + mailPassword}, "backfill", "-config", cfg, "-no-progress")
		if r.code != 0 {
			t.Fatalf("backfill exit %d\n%s", r.code, tail(r.stderr, 30))
		}
		exactlyOnce(t, sb.profiles(t), want)
		c, err := srv.Client("cvfeed")
		if err != nil {
			t.Fatal(err)
		}
		subjects := func(mailbox string) []string {
			if _, err := c.Select(mailbox, nil).Wait(); err != nil {
				t.Fatalf("select %s: %v", mailbox, err)
			}
			msgs, err := c.Fetch(allMessages(), &imap.FetchOptions{Envelope: true}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range msgs {
				out = append(out, m.Envelope.Subject)
			}
			slices.Sort(out)
			return out
		}
		if got := subjects("INBOX"); !slices.Equal(got, []string{"a question"}) {
			t.Errorf("INBOX holds %q, want only the mail without a CV", got)
		}
		wantMoved := []string{"Application 1", "Application 2", "Application 3", "Application 4", "Application 5", "a question"}
		if got := subjects("Processed"); !slices.Equal(got, wantMoved) {
			t.Errorf("Processed holds %q, want %q", got, wantMoved)
		}
	})
}
