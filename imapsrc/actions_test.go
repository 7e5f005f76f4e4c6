package imapsrc

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// inspect logs in to the server and returns the flags of the messages
// of a folder by UID (nil map: the folder does not exist).
func inspect(t *testing.T, addr, folder string) map[imap.UID][]imap.Flag {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("cvfeed", "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil
	}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[imap.UID][]imap.Flag{}
	for _, m := range msgs {
		out[m.UID] = m.Flags
	}
	return out
}

func TestAfterActions(t *testing.T) {
	for _, action := range []string{config.MailSeen, config.MailFlag, config.MailMove, config.MailDelete} {
		t.Run(action, func(t *testing.T) {
			srv := newMemServer(t, nil)
			if err := srv.user.Create("Done", nil); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			st := openStore(t, dir)
			srv.append(t, "INBOX", message("a@example.com", "CV", "a.pdf", pdf(3000)))
			srv.append(t, "INBOX", message("b@example.com", "CV", "b.pdf", pdf(3001)))
			srv.append(t, "INBOX", message("c@example.com", "hello")) // no CV
			cfg := mailboxConfig(srv.addr)
			cfg.AfterUpload, cfg.MoveTo, cfg.NoCVAction = action, "Done", config.MailFlag
			a := NewAccount(cfg, st, options(t, dir, nil))
			ctx := context.Background()
			if err := a.Backfill(ctx); err != nil {
				t.Fatal(err)
			}
			// Nothing uploaded yet: only the message without CV is acted on.
			if err := a.ActionsNow(ctx); err != nil {
				t.Fatal(err)
			}
			flags := inspect(t, srv.addr, "INBOX")
			if len(flags) != 3 || len(flags[1]) != 0 || len(flags[2]) != 0 || !slices.Contains(flags[3], imap.FlagFlagged) {
				t.Fatalf("before the uploads: flags %v, want messages 1 and 2 untouched, 3 \\Flagged (no_cv_action)", flags)
			}
			// Message 1's CV is uploaded, message 2's fails.
			items, _, err := st.Lease(10, nil)
			if err != nil || len(items) != 2 {
				t.Fatalf("Lease = %d items, %v", len(items), err)
			}
			var res []state.Result
			for _, it := range items {
				o := state.Done
				if it.FileName == "b.pdf" {
					o = state.Fail
				}
				res = append(res, state.Result{Key: it.Key, Outcome: o, Attempted: true, Err: "refused"})
			}
			if err := st.Complete(res); err != nil {
				t.Fatal(err)
			}
			if err := a.ActionsNow(ctx); err != nil {
				t.Fatal(err)
			}
			flags = inspect(t, srv.addr, "INBOX")
			done := inspect(t, srv.addr, "Done")
			switch action {
			case config.MailSeen, config.MailFlag:
				want := imap.FlagSeen
				if action == config.MailFlag {
					want = imap.FlagFlagged
				}
				if !slices.Contains(flags[1], want) {
					t.Errorf("message 1 flags %v, want %s", flags[1], want)
				}
			case config.MailMove:
				if _, ok := flags[1]; ok || len(done) != 1 {
					t.Errorf("after move: INBOX %v, Done %v; want message 1 moved", flags, done)
				}
			case config.MailDelete:
				if _, ok := flags[1]; ok || len(done) != 0 {
					t.Errorf("after delete: INBOX %v; want message 1 gone", flags)
				}
			}
			if f, ok := flags[2]; !ok || len(f) != 0 {
				t.Errorf("message 2 (failed part) flags %v, present %v; want it unchanged", f, ok)
			}
			due, _ := st.DueMessages("jobs")
			if len(due) != 1 || due[0].UID != 2 || !due[0].Failed {
				t.Errorf("due messages %+v, want only message 2, failed, still tracked", due)
			}
		})
	}
}

func TestNotifyRunsActions(t *testing.T) {
	srv := newMemServer(t, nil)
	dir := t.TempDir()
	st := openStore(t, dir)
	cfg := mailboxConfig(srv.addr)
	cfg.AfterUpload = config.MailSeen
	cfg.PollInterval = time.Hour
	a := NewAccount(cfg, st, options(t, dir, nil))
	runAccount(t, a)
	waitFor(t, 5*time.Second, "the cursor", func() bool { _, ok, _ := st.MailCursor("jobs", "INBOX"); return ok })
	time.Sleep(100 * time.Millisecond)
	srv.append(t, "INBOX", message("a@example.com", "CV", "a.pdf", pdf(3000)))
	waitFor(t, 5*time.Second, "the claim", func() bool { n, _ := st.Pending(nil); return n == 1 })
	if f := inspect(t, srv.addr, "INBOX")[1]; len(f) != 0 {
		t.Fatalf("flags %v before the upload, want none", f)
	}
	settle(t, st, state.Done)
	a.Notify()
	waitFor(t, 5*time.Second, "\\Seen after Notify", func() bool {
		return slices.Contains(inspect(t, srv.addr, "INBOX")[1], imap.FlagSeen)
	})
}
