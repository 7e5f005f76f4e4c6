package state

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Candidate is a file a source found and hashed.
type Candidate struct {
	// Source is the source name, SourceID the Riminder source.
	Source   string
	SourceID string
	SHA256   [32]byte
	// Path is the file to upload; Origin describes it for people (empty:
	// Path).
	Path     string
	Origin   string
	FileName string
	Size     int64
	Received time.Time
	// Identity, when set (folder sources), is remembered under
	// (SourceID, Path) so that an unchanged file is not hashed again.
	Identity *Identity
	// Action records an after-action for this file (move, delete, mark
	// a message), due once its item is uploaded or failed; see Actions.
	Action bool
}

// ClaimResult says what Claim did with a candidate.
type ClaimResult uint8

// Claim results.
const (
	// ClaimNew: a new item, queued for upload.
	ClaimNew ClaimResult = iota + 1
	// ClaimDuplicate: the content is already an item of this source;
	// nothing will be sent.
	ClaimDuplicate
	// ClaimKnown: the same path with the same content was claimed before
	// (its identity changed, e.g. touched); nothing to do.
	ClaimKnown
)

// LookupFile returns the remembered identity and hash of a folder file.
func (s *Store) LookupFile(sourceID, path string) (FileRecord, bool, error) {
	var (
		r     FileRecord
		found bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		r, found, err = newCodec(tx).getFile(sourceID, path)
		return err
	})
	if err != nil {
		return FileRecord{}, false, fmt.Errorf("look up %s: %w", path, err)
	}
	return r, found, nil
}

// LookupFiles looks up the identities of many files of one source in one
// read transaction (a rescan asks for a whole directory at once); found is
// called with the index in paths of each file known.
func (s *Store) LookupFiles(sourceID string, paths []string, found func(i int, r FileRecord)) error {
	if len(paths) == 0 {
		return nil
	}
	err := s.view(func(tx *bolt.Tx) error {
		cd := newCodec(tx)
		keys := make([][]byte, len(paths))
		order := make([]int, 0, len(paths))
		for i, p := range paths {
			k, ok, err := cd.fileKey(sourceID, p, false)
			if err != nil {
				return err
			}
			if ok {
				keys[i] = k
				order = append(order, i)
			}
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
		c := tx.Bucket(bucketIdents).Cursor()
		var k, v []byte
		for n, i := range order {
			key := keys[i]
			if n == 0 {
				k, v = c.Seek(key)
			}
			// Keys of one directory are neighbours: step forward a
			// little before seeking again.
			for steps := 0; k != nil && bytes.Compare(k, key) < 0; steps++ {
				if steps == 8 {
					k, v = c.Seek(key)
					break
				}
				k, v = c.Next()
			}
			if k != nil && bytes.Equal(k, key) {
				if r, err := decodeFile(v); err == nil {
					found(i, r)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("look up %d files: %w", len(paths), err)
	}
	return nil
}

// Claim records a batch of candidates in one transaction. A candidate whose
// content is new for its source becomes a pending item, queued now; one
// whose content is already an item is a duplicate and is counted for its
// source. Results are in the order of cands.
func (s *Store) Claim(cands []Candidate) ([]ClaimResult, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	var (
		res   []ClaimResult
		added bool
	)
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		res, added, err = s.claimTx(tx, cands)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim %d files: %w", len(cands), err)
	}
	if added {
		s.signal()
	}
	return res, nil
}

// claimTx is Claim inside a transaction; added says a new item was queued.
func (s *Store) claimTx(tx *bolt.Tx, cands []Candidate) ([]ClaimResult, bool, error) {
	now := s.now()
	res := make([]ClaimResult, len(cands))
	added := false
	cd := newCodec(tx)
	files := tx.Bucket(bucketIdents)
	// Walks add a directory's files in key order: fill pages before
	// splitting them.
	files.FillPercent = identFill
	dups := tx.Bucket(bucketDups)
	missing := tx.Bucket(bucketMissing)
	for i := range cands {
		c := &cands[i]
		key := Key{SourceID: c.SourceID, SHA256: c.SHA256}
		exists, err := cd.hasItem(key)
		if err != nil {
			return nil, false, err
		}
		if c.Identity != nil {
			fk, _, err := cd.fileKey(c.SourceID, c.Path, true)
			if err != nil {
				return nil, false, err
			}
			sameContent := false
			if old := files.Get(fk); old != nil {
				if r, err := decodeFile(old); err == nil && r.SHA256 == c.SHA256 {
					sameContent = true
				}
			}
			if err := files.Put(fk, encodeFile(FileRecord{Identity: *c.Identity, SHA256: c.SHA256})); err != nil {
				return nil, false, err
			}
			if err := missing.Delete(fk); err != nil { // it is there
				return nil, false, err
			}
			if sameContent && exists {
				res[i] = ClaimKnown
				continue
			}
		}
		if c.Action {
			if err := tx.Bucket(bucketActions).Put(actionKey(key, c.Path), actionValue(c.Source, false)); err != nil {
				return nil, false, err
			}
		}
		if exists {
			dk := dupKey(c.Source, now)
			if err := dups.Put(dk, put64(be64(dups.Get(dk))+1)); err != nil {
				return nil, false, err
			}
			res[i] = ClaimDuplicate
			continue
		}
		it := Item{
			Key: key, Source: c.Source, Status: Pending, NextAttempt: now,
			Path: c.Path, Origin: c.Origin, FileName: c.FileName, Size: c.Size,
			Received: c.Received, Created: now, Updated: now,
		}
		if err := cd.putItem(&it); err != nil {
			return nil, false, err
		}
		if err := enqueue(tx, key, now); err != nil {
			return nil, false, err
		}
		res[i] = ClaimNew
		added = true
	}
	return res, added, nil
}

// ForgetFile drops the remembered identity of a folder file, so that the
// next scan hashes it again.
func (s *Store) ForgetFile(sourceID, path string) error {
	return s.update(func(tx *bolt.Tx) error {
		return newCodec(tx).deleteFile(sourceID, path)
	})
}

func enqueue(tx *bolt.Tx, k Key, due time.Time) error {
	b, err := tx.Bucket(bucketQueue).CreateBucketIfNotExists([]byte(k.SourceID))
	if err != nil {
		return err
	}
	return b.Put(queueKey(due, k.SHA256), nil)
}

func dequeue(tx *bolt.Tx, k Key, due time.Time) error {
	b := tx.Bucket(bucketQueue).Bucket([]byte(k.SourceID))
	if b == nil {
		return nil
	}
	return b.Delete(queueKey(due, k.SHA256))
}

// dupKey counts duplicates per source and UTC day, for reports.
func dupKey(source string, t time.Time) []byte {
	b := make([]byte, 0, len(source)+1+8)
	b = append(b, source...)
	b = append(b, 0)
	return t.UTC().AppendFormat(b, "20060102")
}

// parseDupKey returns the source and the day ("" when unknown: counted
// before days were kept).
func parseDupKey(k []byte) (source, day string) {
	src, d, ok := bytes.Cut(k, []byte{0})
	if !ok || string(d) == noDay {
		return string(src), ""
	}
	return string(src), string(d)
}

// noDay is the day of duplicates counted before schema 4.
const noDay = "00000000"
