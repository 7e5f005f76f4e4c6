package cyrustest

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cvfeed/cvfeed/internal/imaptest"
)

// Client returns a logged-in client of user, shared by the helpers; it is
// closed by Stop. Tests use it to look at or change the mailboxes.
func (s *Server) Client(name string) (*imapclient.Client, error) {
	return s.pool.Client(s.Addr, name, s.Users[name])
}

// Append stores raw in a mailbox of user (created when missing) with the
// given flags, and returns its UID.
func (s *Server) Append(name, mailbox string, raw []byte, flags []imap.Flag) (imap.UID, error) {
	c, err := s.Client(name)
	if err != nil {
		return 0, err
	}
	return imaptest.Append(c, mailbox, raw, flags)
}
