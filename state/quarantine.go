package state

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Notes about single messages live in the mailnotes bucket (schema 5):
//
//	mailnotes
//	  account 0x00 mailbox 0x00 uidvalidity[4] uid[4] → flags[1] sourceID
//
// noteNoBinary: a BINARY fetch of the message failed (the server could
// not decode it, or dropped the connection in its literal): it is read
// with BODY.PEEK from then on, also after a crash. noteQuarantined: the
// message is a failed item (Item.Message), the cursor past it.
// noteRetry: that item was queued again by RetryFailed (the item itself
// is removed): the mailbox source reads the message again.
const (
	noteNoBinary    = 1
	noteQuarantined = 2
	noteRetry       = 4
)

// Quarantine is why a message is given up: recorded with the message's
// MailClaim, it becomes a failed item listed by cvfeed failed, and the
// folder's cursor moves past it.
type Quarantine struct {
	// SourceID is the mailbox's source_id (the item's key).
	SourceID string
	// Source is the mailbox's name.
	Source  string
	Subject string
	Reason  string
}

// QuarantineKey is the key of the failed item of a quarantined message:
// the SHA-256 of the message's identity, so it never meets a file's.
func QuarantineKey(sourceID string, id MessageID) Key {
	return Key{SourceID: sourceID, SHA256: sha256.Sum256([]byte("cvfeed quarantined message\x00" + string(messageKey(id))))}
}

func getNote(tx *bolt.Tx, id MessageID) (flags byte, sourceID string) {
	v := tx.Bucket(bucketMailNotes).Get(messageKey(id))
	if len(v) == 0 {
		return 0, ""
	}
	return v[0], string(v[1:])
}

func putNote(tx *bolt.Tx, id MessageID, flags byte, sourceID string) error {
	b := tx.Bucket(bucketMailNotes)
	if flags == 0 {
		return b.Delete(messageKey(id))
	}
	return b.Put(messageKey(id), append([]byte{flags}, sourceID...))
}

// NoBinary reports whether a message is to be read without BINARY.
func (s *Store) NoBinary(id MessageID) (bool, error) {
	var f byte
	err := s.view(func(tx *bolt.Tx) error { f, _ = getNote(tx, id); return nil })
	if err != nil {
		return false, fmt.Errorf("read the notes of message %s: %w", id, err)
	}
	return f&noteNoBinary != 0, nil
}

// SetNoBinary records that a message is to be read without BINARY.
func (s *Store) SetNoBinary(id MessageID) error {
	err := s.update(func(tx *bolt.Tx) error {
		f, src := getNote(tx, id)
		return putNote(tx, id, f|noteNoBinary, src)
	})
	if err != nil {
		return fmt.Errorf("note message %s: %w", id, err)
	}
	return nil
}

// RetriedMessages returns the quarantined messages of an account that
// cvfeed retry queued again, to be read again.
func (s *Store) RetriedMessages(account string) ([]MessageID, error) {
	var out []MessageID
	prefix := append([]byte(account), 0)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMailNotes).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) == 0 || v[0]&noteRetry == 0 {
				continue
			}
			id, err := parseMessageKey(k)
			if err != nil {
				return err
			}
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the retried messages of %s: %w", account, err)
	}
	return out, nil
}

// ForgetMessage drops what is noted of a message that is gone (its
// folder's UIDVALIDITY changed): a retry of it has nothing to read.
func (s *Store) ForgetMessage(id MessageID) error {
	err := s.update(func(tx *bolt.Tx) error { return putNote(tx, id, 0, "") })
	if err != nil {
		return fmt.Errorf("forget message %s: %w", id, err)
	}
	return nil
}

// quarantineTx records m as a failed item, or, for a message read
// without quarantine, clears its quarantine notes.
func (s *Store) quarantineTx(tx *bolt.Tx, m MailClaim, now time.Time) error {
	f, src := getNote(tx, m.MessageID)
	if m.Quarantine == nil {
		if f&(noteQuarantined|noteRetry) == 0 {
			return nil
		}
		if err := newCodec(tx).deleteItem(QuarantineKey(src, m.MessageID)); err != nil {
			return err
		}
		return putNote(tx, m.MessageID, f&^(noteQuarantined|noteRetry), src)
	}
	q := m.Quarantine
	k := QuarantineKey(q.SourceID, m.MessageID)
	it, ok, err := getItem(tx, k)
	if err != nil {
		return err
	}
	if !ok {
		it = Item{Key: k, Created: now}
	}
	subject := q.Subject
	if subject == "" {
		subject = "(no subject)"
	}
	it.Source, it.Status, it.Message = q.Source, Failed, true
	it.Attempts++
	it.Origin = m.MessageID.String()
	it.FileName = subject
	it.LastError = fmt.Sprintf("message quarantined (subject %q): %s", subject, q.Reason)
	it.Updated = now
	if err := putItem(tx, &it); err != nil {
		return err
	}
	return putNote(tx, m.MessageID, (f|noteQuarantined)&^noteRetry, q.SourceID)
}

// retryMessageTx queues a quarantined message again: its item goes, and
// the mailbox source reads the message at its next pass.
func retryMessageTx(tx *bolt.Tx, it Item) error {
	c := tx.Bucket(bucketMailNotes).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) == 0 || v[0]&noteQuarantined == 0 || string(v[1:]) != it.SourceID {
			continue
		}
		id, err := parseMessageKey(k)
		if err != nil {
			return err
		}
		if QuarantineKey(it.SourceID, id) != it.Key {
			continue
		}
		if err := newCodec(tx).deleteItem(it.Key); err != nil {
			return err
		}
		return putNote(tx, id, (v[0]|noteRetry)&^noteQuarantined, it.SourceID)
	}
	return fmt.Errorf("item %s: a quarantined message no longer noted", it.Key)
}
