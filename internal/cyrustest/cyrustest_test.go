package cyrustest

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestStart: a Cyrus starts, its user logs in, finds an INBOX, and a
// message appended there is read back.
func TestStart(t *testing.T) {
	s := StartWith(t, Options{Users: map[string]string{"jobs": "pw-1"}})
	uid, err := s.Append("jobs", "INBOX", []byte("Subject: hello\r\n\r\nbody\r\n"), nil)
	if err != nil {
		t.Fatalf("Append: %v\n%s", err, s.Log())
	}
	c, err := s.Client("jobs")
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil || data.NumMessages != 1 {
		t.Fatalf("SELECT INBOX: %+v, %v; want 1 message", data, err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "hello" {
		t.Fatalf("FETCH UID %d: %v, %v", uid, msgs, err)
	}
	if _, err := s.Append("jobs", "Processed", []byte("Subject: x\r\n\r\ny\r\n"), nil); err != nil {
		t.Errorf("Append to a new folder: %v", err)
	}
	s.Stop()
	if _, err := s.Client("jobs"); err == nil {
		t.Error("Client after Stop: no error")
	}
}
