// Package imaptest holds what the throwaway IMAP servers of the tests
// (dovecottest, cyrustest) share: a pool of logged-in clients, one per
// user, and appending a message to a mailbox.
package imaptest

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Pool keeps one logged-in client per user of a server. The zero value is
// ready; Close ends it. It is safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	clients map[string]*imapclient.Client
	closed  bool
}

// Client returns the logged-in client of user at addr (plain IMAP on
// loopback), dialling and logging in with password when there is none or
// it was logged out.
func (p *Pool) Client(addr, user, password string) (*imapclient.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("imaptest: server stopped")
	}
	if c := p.clients[user]; c != nil && c.State() != imap.ConnStateLogout {
		return c, nil
	}
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", user, err)
	}
	if p.clients == nil {
		p.clients = map[string]*imapclient.Client{}
	}
	p.clients[user] = c
	return c, nil
}

// Close closes every client; Client fails from then on.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.Close()
	}
	p.clients, p.closed = nil, true
}

// Append stores raw in mailbox (created when missing) with the given
// flags, through c, and returns its UID.
func Append(c *imapclient.Client, mailbox string, raw []byte, flags []imap.Flag) (imap.UID, error) {
	if !strings.EqualFold(mailbox, "INBOX") {
		err := c.Create(mailbox, nil).Wait()
		var ie *imap.Error
		// Servers say "already exists" with the response code, or (older
		// Dovecot) only in the text.
		if err != nil && !(errors.As(err, &ie) && (ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(ie.Text, "exists"))) {
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
