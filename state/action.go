package state

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Action is an after-action waiting for its item: the file at Path was
// found by Source, and once the item is uploaded or failed, the source acts
// on it (move or delete a file). A duplicate has an action too: a copy is
// done when its content is uploaded.
//
// A failed item's file, once acted on (moved to failed_dir, or left where
// it is), keeps an action that waits for an upload only (UploadOnly): a
// retry that uploads it moves it on to done_dir (or deletes it, per
// policy). RetryFailed makes such an action wait for either outcome again,
// so that a second failure rewrites its error note.
type Action struct {
	Key
	// Path is the file to act on.
	Path   string
	Source string
	// UploadOnly: the failure was acted on; only an upload is due.
	UploadOnly bool
	// Item is the item's state when the action was read.
	Item Item
}

// Due reports whether the item is settled in a way the action waits for:
// uploaded, or failed (unless UploadOnly).
func (a Action) Due() bool {
	return a.Item.Status == Uploaded || a.Item.Status == Failed && !a.UploadOnly
}

// An action's value is its source's name, followed, for an UploadOnly
// action, by 0x00 'U' (source names hold no NUL).
func actionValue(source string, uploadOnly bool) []byte {
	if uploadOnly {
		return append([]byte(source), 0, 'U')
	}
	return []byte(source)
}

func parseActionValue(v []byte) (source string, uploadOnly bool) {
	if name, flag, ok := bytes.Cut(v, []byte{0}); ok {
		return string(name), string(flag) == "U"
	}
	return string(v), false
}

func actionKey(k Key, path string) []byte {
	kb := k.bytes()
	b := make([]byte, 0, len(kb)+len(path))
	b = append(b, kb...)
	return append(b, path...)
}

// keyLen is the length of an item key for this source id.
func keyLen(sourceID string) int { return len(sourceID) + 1 + 32 }

func parseActionKey(b []byte) (Key, string, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 || len(b) < i+1+32 {
		return Key{}, "", fmt.Errorf("malformed action key %q", b)
	}
	k, err := parseKey(b[:i+1+32])
	if err != nil {
		return Key{}, "", err
	}
	return k, string(b[i+1+32:]), nil
}

// ActionsFor returns the actions waiting on one item.
func (s *Store) ActionsFor(k Key) ([]Action, error) {
	var out []Action
	err := s.view(func(tx *bolt.Tx) error {
		it, ok, err := getItem(tx, k)
		if err != nil || !ok {
			return err
		}
		prefix := k.bytes()
		c := tx.Bucket(bucketActions).Cursor()
		for ak, v := c.Seek(prefix); ak != nil && bytes.HasPrefix(ak, prefix) && len(ak) > keyLen(k.SourceID); ak, v = c.Next() {
			src, only := parseActionValue(v)
			out = append(out, Action{Key: k, Path: string(ak[len(prefix):]), Source: src, UploadOnly: only, Item: it})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read actions of %s: %w", k, err)
	}
	return out, nil
}

// DueActions returns every action whose item is uploaded or failed: the
// work a stop left behind, done at start.
func (s *Store) DueActions() ([]Action, error) {
	var out []Action
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketActions).ForEach(func(ak, v []byte) error {
			k, path, err := parseActionKey(ak)
			if err != nil {
				return err
			}
			it, ok, err := getItem(tx, k)
			if err != nil {
				return err
			}
			src, only := parseActionValue(v)
			if a := (Action{Key: k, Path: path, Source: src, UploadOnly: only, Item: it}); ok && a.Due() {
				out = append(out, a)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read due actions: %w", err)
	}
	return out, nil
}

// ActionDone removes a done action (ActionMoved without an identity).
func (s *Store) ActionDone(a Action, newPath string) error { return s.ActionMoved(a, newPath, nil) }

// ActionMoved records a done action. When the file was moved (newPath not
// empty) and it is the one the item uploads, the item follows it, so that
// a retry of a failed item reads it from its new place; id, if known, is
// the identity of the file there. The file identity of the old path is
// forgotten (a new file there is a new candidate), unless the file stayed
// where it was.
//
// The action of an uploaded item is removed, and the item, if the file
// was its own, is retired (Item.retire): what it said of the file goes.
// That of a failed item waits,
// at the file's new place, for an upload (UploadOnly): a retry that
// succeeds takes the file out of failed_dir.
func (s *Store) ActionMoved(a Action, newPath string, id *Identity) error {
	err := s.update(func(tx *bolt.Tx) error {
		actions := tx.Bucket(bucketActions)
		if err := actions.Delete(actionKey(a.Key, a.Path)); err != nil {
			return err
		}
		cd := newCodec(tx)
		it, ok, err := cd.getItem(a.Key)
		if err != nil {
			return err
		}
		failed := ok && it.Status == Failed
		if newPath != "" || !failed {
			if err := cd.deleteFile(a.SourceID, a.Path); err != nil {
				return err
			}
		}
		if failed {
			at := a.Path
			if newPath != "" {
				at = newPath
			}
			if err := actions.Put(actionKey(a.Key, at), actionValue(a.Source, true)); err != nil {
				return err
			}
		}
		if newPath != "" && id != nil {
			if err := cd.putFile(a.SourceID, newPath, FileRecord{Identity: *id, SHA256: a.SHA256}); err != nil {
				return err
			}
		}
		if ok && it.Status == Uploaded && it.Path == a.Path && !it.Message {
			// Its file is in done_dir or gone: the item is kept for
			// exactly-once only (retire).
			it.retire()
			return cd.putItem(&it)
		}
		if newPath == "" || !ok || it.Path != a.Path {
			return nil
		}
		if it.Origin == "" {
			it.Origin = it.Path // where HR put it, for people and templates
		}
		it.Path = newPath
		return cd.putItem(&it)
	})
	if err != nil {
		return fmt.Errorf("record the action on %s: %w", a.Path, err)
	}
	return nil
}

// waitAnyOutcome makes the UploadOnly actions of k wait for either
// outcome again (a retry).
func waitAnyOutcome(tx *bolt.Tx, k Key) error {
	prefix := k.bytes()
	b := tx.Bucket(bucketActions)
	var keys [][]byte
	var vals [][]byte
	c := b.Cursor()
	for ak, v := c.Seek(prefix); ak != nil && bytes.HasPrefix(ak, prefix) && len(ak) > keyLen(k.SourceID); ak, v = c.Next() {
		if src, only := parseActionValue(v); only {
			keys = append(keys, bytes.Clone(ak))
			vals = append(vals, actionValue(src, false))
		}
	}
	for i := range keys {
		if err := b.Put(keys[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}
