package cyrustest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Client returns a logged-in client of user, shared by the helpers; it is
// closed by Stop. Tests use it to look at or change the mailboxes.
func (s *Server) Client(name string) (*imapclient.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients == nil {
		return nil, errors.New("cyrustest: server stopped")
	}
	if c := s.clients[name]; c != nil && c.State() != imap.ConnStateLogout {
		return c, nil
	}
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(name, s.Users[name]).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	s.clients[name] = c
	return c, nil
}

// Append stores raw in a mailbox of user (created when missing) with the
// given flags, and returns its UID.
func (s *Server) Append(name, mailbox string, raw []byte, flags []imap.Flag) (imap.UID, error) {
	c, err := s.Client(name)
	if err != nil {
		return 0, err
	}
	if !strings.EqualFold(mailbox, "INBOX") {
		err := c.Create(mailbox, nil).Wait()
		var ie *imap.Error
		if err != nil && !(errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists) {
			return 0, fmt.Errorf("create %s: %w", mailbox, err)
		}
	}
	cmd := c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return 0, err
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", mailbox, err)
	}
	return data.UID, nil
}
