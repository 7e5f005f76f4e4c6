package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention (issue 12): what the state may forget, so that it does not
// grow for ever.
//
//   - The identity of a file cvfeed moved or deleted is dropped when the
//     action is recorded (ActionDone).
//   - The identity of a file gone from its folder is dropped once it has
//     been missing for a while (ForgetMissing): the missing bucket notes
//     since when (idents key → unix millis[8]). A folder that is down must
//     not be swept: the caller only sweeps a folder it found healthy.
//   - An uploaded item may be forgotten some time after its upload
//     (ForgetUploaded). That stays exactly-once: a file claimed again is
//     sent with the same profile_reference, the API refuses it, and the
//     uploader confirms the profile the API holds.

var bucketMissing = []byte("missing")

// sweepChunk bounds the keys one transaction of a sweep reads or changes.
const sweepChunk = 4096

// ForgetStats says what a sweep did.
type ForgetStats struct {
	// Checked counts the identities or items looked at.
	Checked int
	// Missing counts identities newly noted missing (ForgetMissing).
	Missing int
	// Forgotten counts what was dropped.
	Forgotten int
}

// ForgetMissing sweeps the identities of sourceID's files: present tells
// whether a file is still in its folder (say true when unsure: an error
// other than "does not exist"). A file present again loses its missing
// mark; a file missing is marked with the time of this sweep, and dropped
// once it was missing for after or longer. Call it after a complete walk of
// a folder that is up, never for a folder that is down (watcher/health.go).
// Each chunk of identities is one read and one write transaction; present
// is called outside of them.
func (s *Store) ForgetMissing(sourceID string, present func(path string) bool, after time.Duration) (ForgetStats, error) {
	return s.ForgetMissingListed(sourceID, nil, present, after)
}

// ForgetMissingListed is ForgetMissing that skips the directories listed
// says the walk listed whole (ListedDir was true: every file state
// remembers there is there). Their files are neither read one by one nor
// counted as checked, and those with a missing mark lose it. dir ends
// with '/'; listed may be nil.
func (s *Store) ForgetMissingListed(sourceID string, listed func(dir string) bool, present func(path string) bool, after time.Duration) (ForgetStats, error) {
	st, err := s.forgetMissing(sourceID, listed, present, after)
	if err != nil || listed == nil {
		return st, err
	}
	if err := s.unmarkListed(sourceID, listed); err != nil {
		return st, fmt.Errorf("sweep missing files of %s: %w", sourceID, err)
	}
	return st, nil
}

func (s *Store) forgetMissing(sourceID string, listed func(dir string) bool, present func(path string) bool, after time.Duration) (ForgetStats, error) {
	var st ForgetStats
	skip := map[uint32]bool{} // directory number → listed whole
	now := s.now()
	type entry struct {
		key  []byte
		path string
		mark bool // has a missing mark
	}
	var from []byte
	for {
		var chunk []entry
		err := s.view(func(tx *bolt.Tx) error {
			cd := newCodec(tx)
			prefix, ok, err := cd.sourcePrefix(sourceID)
			if err != nil || !ok {
				return err
			}
			missing := tx.Bucket(bucketMissing)
			c := tx.Bucket(bucketIdents).Cursor()
			k, _ := c.Seek(prefix)
			if from != nil {
				k, _ = c.Seek(from)
				if k != nil && bytes.Equal(k, from) {
					k, _ = c.Next()
				}
			}
			var read int
			for k != nil && bytes.HasPrefix(k, prefix) && len(chunk) < sweepChunk {
				trimScan(tx, &read)
				if listed != nil && len(k) >= 6 {
					d := binary.BigEndian.Uint32(k[2:6])
					sk, seen := skip[d]
					if !seen {
						if dir, err := cd.dirOf(d); err == nil {
							sk = listed(dir)
						}
						skip[d] = sk
					}
					if sk {
						// The directory's files are there: on to the
						// next directory's.
						if d == 0xFFFFFFFF {
							break
						}
						k, _ = c.Seek(binary.BigEndian.AppendUint32(bytes.Clone(prefix), d+1))
						continue
					}
				}
				if _, path, err := cd.parseFileKey(k); err == nil { // else Check reports it
					chunk = append(chunk, entry{key: bytes.Clone(k), path: path, mark: missing.Get(k) != nil})
				}
				k, _ = c.Next()
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("sweep missing files of %s: %w", sourceID, err)
		}
		if len(chunk) == 0 {
			return st, nil
		}
		from = chunk[len(chunk)-1].key
		st.Checked += len(chunk)
		gone := make([]bool, len(chunk))
		change := false
		for i, e := range chunk {
			gone[i] = !present(e.path)
			change = change || gone[i] || e.mark
		}
		if !change {
			// Every file there, none marked: nothing to write (a
			// commit per chunk of a million files was seconds).
			continue
		}
		err = s.update(func(tx *bolt.Tx) error {
			idents, missing := tx.Bucket(bucketIdents), tx.Bucket(bucketMissing)
			for i, e := range chunk {
				switch {
				case !gone[i] && e.mark:
					if err := missing.Delete(e.key); err != nil {
						return err
					}
				case gone[i] && !e.mark:
					if idents.Get(e.key) == nil {
						continue // dropped meanwhile
					}
					if err := missing.Put(e.key, put64(uint64(now.UnixMilli()))); err != nil {
						return err
					}
					st.Missing++
				case gone[i]:
					since := time.UnixMilli(int64(be64(missing.Get(e.key))))
					if now.Sub(since) < after {
						continue
					}
					if err := idents.Delete(e.key); err != nil {
						return err
					}
					if err := missing.Delete(e.key); err != nil {
						return err
					}
					st.Forgotten++
				}
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("sweep missing files of %s: %w", sourceID, err)
		}
	}
}

// ForgetUploaded drops the items uploaded before before, except those an
// after-action or a mail message still waits on. Their identities stay:
// an unchanged file is not read again; one that changed, or whose identity
// went, is claimed anew and confirmed by the API's reference answer.
func (s *Store) ForgetUploaded(before time.Time) (ForgetStats, error) {
	return s.ForgetUploadedContext(context.Background(), before)
}

// ForgetUploadedContext is ForgetUploaded that stops between two chunks
// once ctx ends, with what it did so far and ctx's error: each chunk is
// its own transaction, so what it forgot stays forgotten.
func (s *Store) ForgetUploadedContext(ctx context.Context, before time.Time) (ForgetStats, error) {
	var st ForgetStats
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("forget uploaded items: %w", err)
		}
		var (
			drop []Key
			last []byte
		)
		err := s.view(func(tx *bolt.Tx) error {
			cd := newCodec(tx)
			actions := tx.Bucket(bucketActions).Cursor()
			waiting := map[Key]bool{}
			if err := tx.Bucket(bucketMessages).ForEach(func(_, v []byte) error {
				for len(v) > 0 {
					n := int(v[0])
					if len(v) < 1+n+32 {
						break
					}
					k := Key{SourceID: string(v[1 : 1+n])}
					copy(k.SHA256[:], v[1+n:1+n+32])
					waiting[k] = true
					v = v[1+n+32:]
				}
				return nil
			}); err != nil {
				return err
			}
			c := tx.Bucket(bucketItems).Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
				if k != nil && bytes.Equal(k, from) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil && n < sweepChunk; k, v = c.Next() {
				n++
				st.Checked++
				last = bytes.Clone(k)
				key, err := cd.parseItemKey(k)
				if err != nil {
					continue
				}
				it, err := cd.decodeItem(key, v)
				if err != nil || it.Status != Uploaded || it.UploadedAt.IsZero() || !it.UploadedAt.Before(before) || waiting[key] {
					continue
				}
				prefix := key.bytes()
				if ak, _ := actions.Seek(prefix); ak != nil && bytes.HasPrefix(ak, prefix) {
					continue
				}
				drop = append(drop, key)
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("forget uploaded items: %w", err)
		}
		if last == nil {
			return st, nil
		}
		from = last
		if len(drop) == 0 {
			continue
		}
		err = s.update(func(tx *bolt.Tx) error {
			cd := newCodec(tx)
			for _, k := range drop {
				// Read again: it may have changed since the read, or
				// a duplicate may have brought an action.
				it, ok, err := cd.getItem(k)
				if err != nil || !ok || it.Status != Uploaded {
					continue
				}
				prefix := k.bytes()
				if ak, _ := tx.Bucket(bucketActions).Cursor().Seek(prefix); ak != nil && bytes.HasPrefix(ak, prefix) {
					continue
				}
				if err := cd.deleteItem(k); err != nil {
					return err
				}
				st.Forgotten++
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("forget uploaded items: %w", err)
		}
	}
}

// ListedDir tells whether every file state remembers in directory dir
// (an absolute path) of sourceID is among names, the files a walk just
// listed there: then none of them is gone, and a sweep of missing files
// (ForgetMissing) need not look for them one by one. It reads the
// directory's identities in key order, as they lie next to each other.
// A directory state knows no file of is listed too (true).
func (s *Store) ListedDir(sourceID, dir string, names []string) (bool, error) {
	if !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	all := true
	err := s.view(func(tx *bolt.Tx) error {
		prefix, ok, err := newCodec(tx).fileKey(sourceID, dir, false)
		if err != nil || !ok {
			return err
		}
		c := tx.Bucket(bucketIdents).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if _, found := slices.BinarySearch(sorted, string(k[len(prefix):])); !found {
				all = false
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read the files of %s: %w", dir, err)
	}
	return all, nil
}

// unmarkListed removes the missing marks of sourceID's files in the
// directories listed says were listed whole (ForgetMissingListed).
func (s *Store) unmarkListed(sourceID string, listed func(dir string) bool) error {
	var keys [][]byte
	err := s.view(func(tx *bolt.Tx) error {
		cd := newCodec(tx)
		prefix, ok, err := cd.sourcePrefix(sourceID)
		if err != nil || !ok {
			return err
		}
		c := tx.Bucket(bucketMissing).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) < 6 {
				continue
			}
			if dir, err := cd.dirOf(binary.BigEndian.Uint32(k[2:6])); err == nil && listed(dir) {
				keys = append(keys, bytes.Clone(k))
			}
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		missing := tx.Bucket(bucketMissing)
		for _, k := range keys {
			if err := missing.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// sourcePrefix is the key prefix of sourceID's identities (and missing
// marks); ok is false when the source has no number: it has none.
func (c *codec) sourcePrefix(sourceID string) ([]byte, bool, error) {
	n, ok, err := c.source(sourceID, false)
	if err != nil || !ok {
		return nil, ok, err
	}
	return binary.BigEndian.AppendUint16(nil, n), true, nil
}
