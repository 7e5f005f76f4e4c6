package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
)

// notifyDelay gathers the Notify calls of a burst of uploads into one
// round of after-actions.
const notifyDelay = 250 * time.Millisecond

// idleMax bounds one IDLE: servers may drop a client idle for 30 minutes
// (RFC 2177 asks to re-issue it within 29).
const idleMax = 25 * time.Minute

// session is one connection of Run: log in, catch up, then wait for mail,
// notifications and the poll timer until the connection or ctx ends.
// connected says whether the login succeeded.
func (a *Account) session(ctx context.Context) (connected bool, err error) {
	cn, err := a.connect(ctx)
	if err != nil {
		return false, err
	}
	defer cn.close()
	defer func() { err = cn.explain(err) }()
	stop := context.AfterFunc(ctx, func() { cn.c.Close() })
	defer stop()
	a.log.Info("mailbox connected", "address", a.cfg.Address, "folders", a.cfg.Folders)

	// Mail signalled before this connection is read by the catch-up.
	drain(a.mail)
	if err := a.syncAll(ctx, cn); err != nil {
		return true, err
	}
	if err := a.runActions(ctx, cn); err != nil {
		return true, err
	}
	poll := time.NewTimer(a.cfg.PollInterval)
	defer poll.Stop()
	var actions <-chan time.Time
	for {
		wake, err := a.wait(ctx, cn, poll.C, actions)
		if err != nil {
			return true, err
		}
		switch wake {
		case wakeMail:
			// New mail in the IDLE folder: read that folder.
			if err := a.syncOne(ctx, cn, a.cfg.Folders[0]); err != nil {
				return true, err
			}
		case wakeNotify:
			actions = time.After(notifyDelay)
			continue
		case wakeActions:
			actions = nil
			if err := a.runActions(ctx, cn); err != nil {
				return true, err
			}
		case wakePoll:
			if err := a.syncAll(ctx, cn); err != nil {
				return true, err
			}
			if err := a.runActions(ctx, cn); err != nil {
				return true, err
			}
			poll.Reset(a.cfg.PollInterval)
		}
	}
}

type wakeReason int

const (
	wakeMail wakeReason = iota
	wakeNotify
	wakeActions
	wakePoll
)

// wait waits for something to do, in IDLE on the first folder when the
// server has IDLE. IDLE is always ended before wait returns.
func (a *Account) wait(ctx context.Context, cn *conn, poll, actions <-chan time.Time) (wakeReason, error) {
	var idle interface {
		Close() error
		Wait() error
	}
	if cn.caps.Has(imap.CapIdle) {
		var err error
		if cn.selected != a.cfg.Folders[0] || cn.readOnly != !a.tracks() {
			err = a.selectFolder(cn, a.cfg.Folders[0])
		}
		if err != nil {
			var fe *folderError
			if !errors.As(err, &fe) {
				return 0, err
			}
			// The IDLE folder is missing: polling finds it when it comes.
		} else {
			cn.busy(true)
			cmd, err := cn.c.Idle()
			if err != nil {
				return 0, fmt.Errorf("IDLE: %w", err)
			}
			idle = cmd
			cn.busy(false)
		}
	}
	limit := time.NewTimer(idleMax)
	defer limit.Stop()
	var reason wakeReason
	var closed error
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-cn.c.Closed():
		closed = errors.New("connection closed by the server")
	case <-a.mail:
		reason = wakeMail
	case <-a.notify:
		reason = wakeNotify
	case <-actions:
		reason = wakeActions
	case <-poll:
		reason = wakePoll
	case <-limit.C:
		reason = wakeMail // re-read the IDLE folder, then IDLE again
	}
	if idle != nil {
		cn.busy(true)
		if err := idle.Close(); err != nil && closed == nil {
			closed = fmt.Errorf("end IDLE: %w", err)
		}
		if err := idle.Wait(); err != nil && closed == nil {
			closed = fmt.Errorf("IDLE: %w", err)
		}
	}
	if closed != nil {
		return 0, closed
	}
	return reason, nil
}

// syncAll catches up every folder; a folder that cannot be selected is
// logged and skipped until the next poll.
func (a *Account) syncAll(ctx context.Context, cn *conn) error {
	for _, f := range a.cfg.Folders {
		if err := a.syncOne(ctx, cn, f); err != nil {
			return err
		}
	}
	return nil
}

func (a *Account) syncOne(ctx context.Context, cn *conn, folder string) error {
	err := a.syncFolder(ctx, cn, folder, false)
	var fe *folderError
	if errors.As(err, &fe) {
		a.log.Error("cannot read folder; the other folders go on, retried at the next poll",
			"folder", folder, "err", fe.err)
		return nil
	}
	return err
}

func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}
