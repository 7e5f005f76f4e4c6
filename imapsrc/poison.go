package imapsrc

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cvfeed/cvfeed/state"
)

// One message must never stop a folder. A message whose reading fails is
// counted (Account.failures, per message, in memory): the first failure
// reads it again on a new connection, the second reads it whole
// (BODY.PEEK[] and mailpart.ParseMessage), and at quarantineAfter it is
// given up: recorded as a failed item (state.Quarantine) with its
// account, folder, UID, subject and the reason, and the cursor moves past
// it. cvfeed failed lists it; cvfeed retry queues it again, and the next
// pass over its folder reads it again (readRetried).
//
// A BINARY fetch that fails is not counted at all: the server could not
// decode the part (a NO such as [UNKNOWN-CTE], or Dovecot closing the
// connection in the literal on base64 that ends inside a quantum). The
// message is noted in state never to use BINARY again, the part is read
// with BODY.PEEK and decoded here (leniently), and a connection lost that
// way is reopened at once: a retryNowError.
const quarantineAfter = 3

// retryNowError is a connection dropped for a reason already dealt with
// (a BINARY fetch the server could not serve): reconnect at once, no
// backoff, nothing counted against the mailbox.
type retryNowError struct{ err error }

func (e *retryNowError) Error() string { return e.err.Error() }
func (e *retryNowError) Unwrap() error { return e.err }

// countFailure counts a failed read of id and returns the count.
func (a *Account) countFailure(id state.MessageID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures[id]++
	return a.failures[id]
}

// messageFault reports whether err, from reading one message on cn, is
// that message's doing (the server refused or broke on it, or its
// structure could not be parsed, which closes the connection), not a
// local one such as a full disk.
func messageFault(cn *conn, err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) || cn.c.State() == imap.ConnStateLogout
}

// quarantine gives a message up: it is recorded with the batch as a
// failed item, and the cursor moves past it.
func (a *Account) quarantine(b *batch, cn *conn, id state.MessageID, m *meta, cause error) error {
	subject := "(unknown: the server could not read even its header)"
	if m != nil && m.env != nil {
		subject = m.env.Subject
	}
	reason := cause.Error()
	if cn.c.State() == imap.ConnStateLogout {
		reason = "the server closed the connection while sending it (" + reason + ")"
	}
	a.stats.Quarantined.Add(1)
	a.log.Error("giving up on a message after repeated failures: quarantined, the folder goes on (cvfeed failed lists it, cvfeed retry reads it again)",
		"message", id.String(), "subject", subject, "failures", a.failureCount(id), "err", cause)
	return b.add(state.MailClaim{MessageID: id, Quarantine: &state.Quarantine{
		SourceID: a.cfg.SourceID, Source: a.cfg.Name, Subject: subject, Reason: reason,
	}})
}

// readRetried reads again the messages of folder that cvfeed retry
// queued; those of an older UIDVALIDITY are gone and forgotten.
func (a *Account) readRetried(ctx context.Context, cn *conn, folder string, uv uint32, b *batch) error {
	ids, err := a.store.RetriedMessages(a.cfg.Name)
	if err != nil {
		return err
	}
	var uids []imap.UID
	for _, id := range ids {
		switch {
		case id.Mailbox != folder:
		case id.UIDValidity != uv:
			a.log.Info("a retried message is gone: its folder's UIDVALIDITY changed (the folder is read again)", "message", id.String())
			if err := a.store.ForgetMessage(id); err != nil {
				return err
			}
		default:
			uids = append(uids, imap.UID(id.UID))
		}
	}
	if len(uids) == 0 {
		return nil
	}
	a.log.Info("reading retried messages again", "folder", folder, "messages", len(uids))
	return a.readUIDs(ctx, cn, folder, uv, uids, nil, time.Time{}, b)
}

func isRetryNow(err error) bool {
	var rn *retryNowError
	return errors.As(err, &rn)
}
