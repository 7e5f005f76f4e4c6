package state

import (
	"testing"
)

func mailPart(content, origin string) Candidate {
	return Candidate{Source: "jobs", SourceID: src, SHA256: sum(content), Path: "/spool/" + content, Origin: origin, FileName: content + ".pdf", Size: int64(len(content))}
}

func TestMailCursorsAndMessages(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	if _, ok, _ := s.MailCursor("jobs", "INBOX"); ok {
		t.Fatal("a cursor before any mail")
	}
	m1 := MessageID{Account: "jobs", Mailbox: "INBOX", UIDValidity: 7, UID: 10}
	m2 := MessageID{Account: "jobs", Mailbox: "INBOX", UIDValidity: 7, UID: 12}
	m3 := MessageID{Account: "jobs", Mailbox: "INBOX", UIDValidity: 7, UID: 11} // no CV
	res, err := s.ClaimMail([]MailClaim{
		{MessageID: m1, Parts: []Candidate{mailPart("a", m1.String()+"/2"), mailPart("b", m1.String()+"/3")}, Track: true},
		{MessageID: m2, Parts: []Candidate{mailPart("a", m2.String()+"/2")}, Track: true}, // the same CV again
		{MessageID: m3, Track: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || len(res[0]) != 2 || res[0][0] != ClaimNew || res[1][0] != ClaimDuplicate || len(res[2]) != 0 {
		t.Fatalf("ClaimMail = %v", res)
	}
	if cur, ok, _ := s.MailCursor("jobs", "INBOX"); !ok || cur != (MailCursor{UIDValidity: 7, LastUID: 12}) {
		t.Errorf("cursor = %+v, %v; want 7/12", cur, ok)
	}
	// Only the message with no CV is due.
	due, err := s.DueMessages("jobs")
	if err != nil || len(due) != 1 || due[0].MessageID != m3 || !due[0].Uploaded {
		t.Fatalf("DueMessages = %+v, %v; want m3", due, err)
	}
	s.MessageDone(m3)
	items, _, _ := s.Lease(10, nil)
	var rs []Result
	for _, it := range items {
		o := Done
		if it.SHA256 == sum("b") {
			o = Fail
		}
		rs = append(rs, Result{Key: it.Key, Outcome: o, Attempted: true})
	}
	s.Complete(rs)
	due, _ = s.DueMessages("jobs")
	if len(due) != 2 {
		t.Fatalf("DueMessages after uploads = %+v", due)
	}
	for _, m := range due {
		switch m.MessageID {
		case m1:
			if m.Uploaded || !m.Failed || len(m.Parts) != 2 {
				t.Errorf("m1 = %+v, want failed (part b failed)", m)
			}
		case m2:
			if !m.Uploaded || m.Failed {
				t.Errorf("m2 = %+v, want uploaded (its part is a duplicate of an uploaded CV)", m)
			}
		}
	}
	// A cursor never moves back; a new UIDVALIDITY drops the old messages.
	s.ClaimMail([]MailClaim{{MessageID: MessageID{Account: "jobs", Mailbox: "INBOX", UIDValidity: 7, UID: 5}}})
	if cur, _, _ := s.MailCursor("jobs", "INBOX"); cur.LastUID != 12 {
		t.Errorf("cursor moved back to %d", cur.LastUID)
	}
	if err := s.SetMailCursor("jobs", "INBOX", MailCursor{UIDValidity: 8}); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueMessages("jobs"); len(due) != 0 {
		t.Errorf("messages of the old UIDVALIDITY still tracked: %+v", due)
	}
	// Another account's messages are not listed.
	s.ClaimMail([]MailClaim{{MessageID: MessageID{Account: "jobs2", Mailbox: "INBOX", UIDValidity: 1, UID: 1}, Track: true}})
	if due, _ := s.DueMessages("jobs"); len(due) != 0 {
		t.Errorf("DueMessages(jobs) lists another account's: %+v", due)
	}
}

func TestMessageKeyRoundTrip(t *testing.T) {
	for _, m := range []MessageID{
		{Account: "a", Mailbox: "INBOX", UIDValidity: 1, UID: 2},
		{Account: "jobs", Mailbox: "Archives/2024 Candidatures", UIDValidity: 4294967295, UID: 4294967295},
		{Account: "x", Mailbox: "", UIDValidity: 0, UID: 0},
	} {
		got, err := parseMessageKey(messageKey(m))
		if err != nil || got != m {
			t.Errorf("parseMessageKey(messageKey(%v)) = %v, %v", m, got, err)
		}
	}
}
