package dovecottest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Client returns a logged-in client of user, shared by the helpers; it is
// closed by Stop. Tests use it to look at or change the mailboxes.
func (s *Server) Client(name string) (*imapclient.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients == nil {
		return nil, errors.New("dovecottest: server stopped")
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
	if err := s.ensure(c, mailbox); err != nil {
		return 0, err
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

func (s *Server) ensure(c *imapclient.Client, mailbox string) error {
	if strings.EqualFold(mailbox, "INBOX") {
		return nil
	}
	err := c.Create(mailbox, nil).Wait()
	var ie *imap.Error
	if err != nil && errors.As(err, &ie) && (ie.Code == imap.ResponseCodeAlreadyExists || bytes.Contains([]byte(ie.Text), []byte("exists"))) {
		return nil
	}
	return err
}

// Deliver writes raw straight into the INBOX Maildir of user (its new/
// directory), as a local delivery agent does: much faster than Append for
// the thousands of messages of a benchmark. Dovecot gives them UIDs when
// it next looks at the folder.
func (s *Server) Deliver(name string, raw []byte) error {
	dir := filepath.Join(s.Dir, "home", name, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
		s.chownMail(filepath.Join(dir, sub))
	}
	s.chownMail(dir)
	s.mu.Lock()
	s.delivered++
	n := s.delivered
	s.mu.Unlock()
	base := fmt.Sprintf("%d.M%dP%d.cvfeedtest", time.Now().Unix(), n, os.Getpid())
	tmp := filepath.Join(dir, "tmp", base)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	s.chownMail(tmp)
	return os.Rename(tmp, filepath.Join(dir, "new", base))
}

// chownMail gives a path to the mail user when running as root.
func (s *Server) chownMail(path string) {
	if os.Geteuid() != 0 {
		return
	}
	if u, err := user.Lookup("nobody"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(path, uid, gid)
	}
}
