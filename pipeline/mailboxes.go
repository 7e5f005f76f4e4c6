package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/imapsrc"
)

// account is a mailbox source. In daemon mode it runs until cancelled
// (cancel, done); in one-shot mode it only backfills.
type account struct {
	cfg    config.Mailbox
	acc    *imapsrc.Account
	cancel context.CancelFunc
	done   chan struct{}
	// ended is set when Run returned by itself (a rejected login): a
	// reload starts it again even if its config did not change.
	ended atomic.Bool
}

func (p *Pipeline) newAccount(m config.Mailbox) *imapsrc.Account {
	return imapsrc.NewAccount(m, p.store, imapsrc.AccountOptions{
		Logger: p.log.With("source", m.Name), SpoolDir: SpoolDir(p.cfg.StateDir), Stats: p.mailStats,
		Tokens: p.store, // a rotated OAuth2 refresh token is kept
	})
}

// setMailboxes starts the mailboxes new to the config, stops the removed
// ones, and restarts the changed ones (and, on reload, those stopped by a
// rejected login: a reload is how an admin says "try again").
func (p *Pipeline) setMailboxes(mailboxes []config.Mailbox, reload bool) {
	want := map[string]config.Mailbox{}
	for _, m := range mailboxes {
		want[m.Name] = m
	}
	p.accMu.Lock()
	defer p.accMu.Unlock()
	for name, a := range p.accounts {
		m, keep := want[name]
		if keep && reflect.DeepEqual(m, a.cfg) && !(reload && a.ended.Load()) {
			delete(want, name)
			continue
		}
		a.cancel()
		<-a.done
		delete(p.accounts, name)
	}
	for _, m := range mailboxes {
		if _, ok := want[m.Name]; !ok {
			continue
		}
		ctx, cancel := context.WithCancel(p.srcCtx)
		a := &account{cfg: m, cancel: cancel, done: make(chan struct{}), acc: p.newAccount(m)}
		p.accounts[m.Name] = a
		p.ops.reportHealth("mailbox "+m.Name, nil)
		p.ops.mailboxUp(m.Name, true)
		go func() {
			defer close(a.done)
			err := a.acc.Run(ctx)
			a.ended.Store(ctx.Err() == nil)
			if ctx.Err() == nil {
				// Stopped by itself: /healthz says so until a reload.
				p.ops.reportHealth("mailbox "+m.Name, fmt.Errorf("stopped: %w", err))
				p.ops.mailboxUp(m.Name, false)
			}
			var le *imapsrc.LoginError
			switch {
			case errors.As(err, &le):
				p.log.Error("mailbox stopped: the server refused the login; fix the credentials and reload (SIGHUP)", "source", m.Name, "err", err)
			case err != nil && ctx.Err() == nil:
				p.log.Error("mailbox stopped; a reload (SIGHUP) starts it again", "source", m.Name, "err", err)
			}
		}()
	}
}

// notifyAccounts tells every mailbox that an item settled: its messages'
// after-actions may be due.
func (p *Pipeline) notifyAccounts() {
	p.accMu.Lock()
	defer p.accMu.Unlock()
	for _, a := range p.accounts {
		a.acc.Notify()
	}
}
