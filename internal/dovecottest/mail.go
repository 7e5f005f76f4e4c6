package dovecottest

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

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
