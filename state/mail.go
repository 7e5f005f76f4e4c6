package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// MailCursor is how far a mailbox folder was read: every message with a
// UID up to LastUID, under UIDVALIDITY UIDValidity, is recorded.
type MailCursor struct {
	UIDValidity uint32
	LastUID     uint32
}

// MessageID names a message for as long as its folder's UIDVALIDITY holds.
type MessageID struct {
	Account, Mailbox string
	UIDValidity, UID uint32
}

// String returns "account/mailbox/uidvalidity/uid".
func (m MessageID) String() string {
	return m.Account + "/" + m.Mailbox + "/" + strconv.FormatUint(uint64(m.UIDValidity), 10) + "/" + strconv.FormatUint(uint64(m.UID), 10)
}

func cursorKey(account, mailbox string) []byte {
	b := make([]byte, 0, len(account)+1+len(mailbox))
	b = append(b, account...)
	b = append(b, 0)
	return append(b, mailbox...)
}

func messageKey(m MessageID) []byte {
	b := cursorKey(m.Account, m.Mailbox)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, m.UIDValidity)
	return binary.BigEndian.AppendUint32(b, m.UID)
}

func parseMessageKey(k []byte) (MessageID, error) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k) < i+1+1+8 {
		return MessageID{}, fmt.Errorf("malformed message key %q", k)
	}
	rest := k[i+1:]
	j := len(rest) - 9
	if j < 0 || rest[j] != 0 {
		return MessageID{}, fmt.Errorf("malformed message key %q", k)
	}
	return MessageID{
		Account: string(k[:i]), Mailbox: string(rest[:j]),
		UIDValidity: binary.BigEndian.Uint32(rest[j+1:]), UID: binary.BigEndian.Uint32(rest[j+5:]),
	}, nil
}

// MailCursor returns how far a folder was read.
func (s *Store) MailCursor(account, mailbox string) (MailCursor, bool, error) {
	var (
		c  MailCursor
		ok bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCursors).Get(cursorKey(account, mailbox))
		if len(v) == 8 {
			c = MailCursor{UIDValidity: binary.BigEndian.Uint32(v), LastUID: binary.BigEndian.Uint32(v[4:])}
			ok = true
		}
		return nil
	})
	return c, ok, err
}

// SetMailCursor sets how far a folder was read: after messages with no CV
// part, or to start again under a new UIDVALIDITY. Messages tracked under
// another UIDVALIDITY of the folder are dropped: their UIDs mean nothing
// any more (their CVs stay in state, so nothing is uploaded twice).
func (s *Store) SetMailCursor(account, mailbox string, c MailCursor) error {
	err := s.update(func(tx *bolt.Tx) error {
		if err := putCursor(tx, account, mailbox, c); err != nil {
			return err
		}
		prefix := append(cursorKey(account, mailbox), 0)
		msgs := tx.Bucket(bucketMessages)
		var stale [][]byte
		cur := msgs.Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			if len(k) == len(prefix)+8 && binary.BigEndian.Uint32(k[len(prefix):]) != c.UIDValidity {
				stale = append(stale, bytes.Clone(k))
			}
		}
		for _, k := range stale {
			if err := msgs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set the cursor of %s/%s: %w", account, mailbox, err)
	}
	return nil
}

func putCursor(tx *bolt.Tx, account, mailbox string, c MailCursor) error {
	v := binary.BigEndian.AppendUint32(nil, c.UIDValidity)
	v = binary.BigEndian.AppendUint32(v, c.LastUID)
	return tx.Bucket(bucketCursors).Put(cursorKey(account, mailbox), v)
}

// MailClaim is one message read: its CV parts, spooled and hashed.
type MailClaim struct {
	MessageID
	// Parts are the CV parts: Path is the spool file, Origin the message
	// and part ("account/mailbox/uidvalidity/uid/1.2").
	Parts []Candidate
	// Track records the message for an after-action (mark, move, delete),
	// due once every part is uploaded; a message with no part is due at
	// once.
	Track bool
	// Quarantine, when set, gives the message up: it is recorded as a
	// failed item (no parts), and the cursor moves past it.
	Quarantine *Quarantine
}

// ClaimMail records messages in one transaction: the claims of their
// parts, the messages to act on later, and each folder's cursor moved to
// the highest UID given. The cursor never moves past a message whose parts
// are not recorded, so a crash at any point loses no mail.
func (s *Store) ClaimMail(msgs []MailClaim) ([][]ClaimResult, error) {
	var cands []Candidate
	for _, m := range msgs {
		cands = append(cands, m.Parts...)
	}
	out := make([][]ClaimResult, len(msgs))
	now := s.now()
	err := s.update(func(tx *bolt.Tx) error {
		res, added, err := s.claimTx(tx, cands)
		if err != nil {
			return err
		}
		if added {
			defer s.signal()
		}
		cursors := map[string]MailCursor{}
		for i, m := range msgs {
			out[i], res = res[:len(m.Parts)], res[len(m.Parts):]
			ck := string(cursorKey(m.Account, m.Mailbox))
			c, seen := cursors[ck]
			if !seen || c.UIDValidity != m.UIDValidity {
				c = MailCursor{UIDValidity: m.UIDValidity}
			}
			c.LastUID = max(c.LastUID, m.UID)
			cursors[ck] = c
			if err := s.quarantineTx(tx, m, now); err != nil {
				return err
			}
			if !m.Track {
				continue
			}
			v := make([]byte, 0, len(m.Parts)*(1+40+32))
			for _, p := range m.Parts {
				v = append(v, byte(len(p.SourceID)))
				v = append(v, p.SourceID...)
				v = append(v, p.SHA256[:]...)
			}
			if err := tx.Bucket(bucketMessages).Put(messageKey(m.MessageID), v); err != nil {
				return err
			}
		}
		for ck, c := range cursors {
			account, mailbox, _ := bytes.Cut([]byte(ck), []byte{0})
			old := tx.Bucket(bucketCursors).Get([]byte(ck))
			if len(old) == 8 && binary.BigEndian.Uint32(old) == c.UIDValidity && binary.BigEndian.Uint32(old[4:]) > c.LastUID {
				continue // never move a cursor back
			}
			if err := putCursor(tx, string(account), string(mailbox), c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d messages: %w", len(msgs), err)
	}
	return out, nil
}

// Message is a tracked message and where its parts stand.
type Message struct {
	MessageID
	Parts []Key
	// Uploaded: every part is uploaded (true for a message with no part).
	Uploaded bool
	// Failed: some part failed for good; the message is left as it is.
	Failed bool
}

// DueMessages returns the tracked messages of an account whose parts are
// all uploaded, or of which some part failed.
func (s *Store) DueMessages(account string) ([]Message, error) {
	var out []Message
	err := s.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(account), 0)
		c := tx.Bucket(bucketMessages).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			id, err := parseMessageKey(k)
			if err != nil {
				return err
			}
			m := Message{MessageID: id, Uploaded: true}
			for len(v) > 0 {
				n := int(v[0])
				if len(v) < 1+n+32 {
					return errors.New("malformed message record")
				}
				key := Key{SourceID: string(v[1 : 1+n])}
				copy(key.SHA256[:], v[1+n:1+n+32])
				v = v[1+n+32:]
				m.Parts = append(m.Parts, key)
				it, ok, err := getItem(tx, key)
				if err != nil {
					return err
				}
				switch {
				case !ok:
					m.Uploaded = false
				case it.Status == Failed:
					m.Failed, m.Uploaded = true, false
				case it.Status != Uploaded:
					m.Uploaded = false
				}
			}
			if m.Uploaded || m.Failed {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the messages of %s: %w", account, err)
	}
	return out, nil
}

// MessageDone forgets a tracked message once its action is done (or can
// no longer be done).
func (s *Store) MessageDone(id MessageID) error {
	err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMessages).Delete(messageKey(id))
	})
	if err != nil {
		return fmt.Errorf("record the action on %s: %w", id, err)
	}
	return nil
}
