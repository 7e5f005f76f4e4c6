package state

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Action is an after-action waiting for its item: the file at Path (or
// the message it names) was found by Source, and once the item is
// uploaded or failed, the source acts on it (move or delete a file, mark
// or move a message). A duplicate has an action too: a copy is done when
// its content is uploaded.
type Action struct {
	Key
	// Path is the file (or the origin of the message) to act on.
	Path   string
	Source string
	// Item is the item's state when the action was read.
	Item Item
}

// Due reports whether the item is settled: uploaded or failed.
func (a Action) Due() bool { return a.Item.Status == Uploaded || a.Item.Status == Failed }

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
			out = append(out, Action{Key: k, Path: string(ak[len(prefix):]), Source: string(v), Item: it})
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
			if a := (Action{Key: k, Path: path, Source: string(v), Item: it}); ok && a.Due() {
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

// ActionDone removes a done action. When the file was moved (newPath not
// empty) and it is the one the item uploads, the item follows it, so that
// a retry of a failed item reads it from its new place. The file identity
// of the old path is forgotten: a new file there is a new candidate.
func (s *Store) ActionDone(a Action, newPath string) error {
	err := s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketActions).Delete(actionKey(a.Key, a.Path)); err != nil {
			return err
		}
		cd := newCodec(tx)
		if err := cd.deleteFile(a.SourceID, a.Path); err != nil {
			return err
		}
		if newPath == "" {
			return nil
		}
		it, ok, err := cd.getItem(a.Key)
		if err != nil || !ok || it.Path != a.Path {
			return err
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
