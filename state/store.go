// Package state is cvfeed's durable memory: a bbolt database that records
// every CV found (a claim keyed by source_id and content hash), what
// happened to it, the queue of uploads still to do, and the identities of
// files already hashed, so that a crash, a restart or a flaky API never loses
// a CV and never sends one twice.
//
// Bucket layout (keys are bytes; integers are big-endian):
//
//	meta
//	  "schema"                        → uint32 schema version (1)
//	  "folderdev" 0x00 sourceID 0x00 path → 1 dev[8] mount root: a folder's file system (folders.go)
//	claims
//	  sourceID 0x00 sha256[32]        → item (JSON, see record.go)
//	queue                             pending items not handed to a worker
//	  sourceID (sub-bucket)
//	    due unix-nanos[8] sha256[32]  → empty
//	leased                            items handed to a worker: maybe sent
//	  sourceID 0x00 sha256[32]        → lease unix-nanos[8]
//	files                             folder file identities
//	  fnv64(sourceID)[8] abs path     → identity (dev, ino, size, mtime, sha256)
//	dups                              duplicates found, per source and UTC day (schema 4)
//	  source name 0x00 YYYYMMDD       → uint64 (day 00000000: counted before schema 4)
//	actions                           after-actions still to do (schema 2)
//	  sourceID 0x00 sha256[32] path   → source name
//	cursors                           how far each mail folder was read (schema 3)
//	  account 0x00 mailbox            → uidvalidity[4] last uid[4]
//	messages                          messages waiting for their after-action (schema 3)
//	  account 0x00 mailbox 0x00 uidvalidity[4] uid[4] → (len[1] sourceID sha256[32])*
//
// An item is in exactly one of: the queue (pending, waiting for its due
// time), leased (pending, handed to a worker), or neither (uploaded or
// failed). Every change of that place happens in one transaction with the
// change of the item, so a crash at any instant leaves a consistent store:
// on the next start Recover moves leased items back to the queue, marked
// maybe-sent, so that the uploader confirms them before sending again.
//
// There is no fsync per file: callers hand over batches (Claim, Lease and
// Complete take slices), and each batch is one bbolt transaction.
package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this package reads and writes.
// Version 2 added the actions bucket, version 3 the cursors and messages
// buckets of mailbox sources, version 4 counts duplicates per day; Open
// upgrades an older database.
const SchemaVersion = 4

// FileName is the database file name inside the state directory.
const FileName = "cvfeed.db"

var (
	bucketMeta     = []byte("meta")
	bucketClaims   = []byte("claims")
	bucketQueue    = []byte("queue")
	bucketLeased   = []byte("leased")
	bucketFiles    = []byte("files")
	bucketDups     = []byte("dups")
	bucketActions  = []byte("actions")
	bucketCursors  = []byte("cursors")
	bucketMessages = []byte("messages")
	keySchema      = []byte("schema")

	allBuckets = [][]byte{bucketMeta, bucketClaims, bucketQueue, bucketLeased, bucketFiles, bucketDups, bucketActions, bucketCursors, bucketMessages}
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("state database is in use by another cvfeed process")

// Options tunes Open. The zero value is usable.
type Options struct {
	// ReadOnly opens the database for reading only (a shared lock).
	ReadOnly bool
	// LockTimeout is how long Open waits for the file lock; default 1s.
	LockTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store is an open state database. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	now  func() time.Time
	// notify is signalled (without blocking) when pending work is added.
	notify chan struct{}
}

// Open opens (creating if needed, mode 0600) the database at path.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if !o.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open state %s: %w", path, err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        o.LockTimeout,
		ReadOnly:       o.ReadOnly,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open state %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open state %s: %w (is it a cvfeed state file?)", path, err)
	}
	s := &Store{db: db, path: path, now: o.Now, notify: make(chan struct{}, 1)}
	if err := s.init(o.ReadOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return s, nil
}

// init creates the buckets and the schema key in one transaction, or checks
// the schema of an existing database.
func (s *Store) init(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("not a cvfeed state database (no meta bucket)")
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return errors.New("not a cvfeed state database (no schema version)")
		}
		got := be32(v)
		if got < SchemaVersion && !readOnly {
			if err := migrate(tx, got); err != nil {
				return fmt.Errorf("upgrade schema %d to %d: %w", got, SchemaVersion, err)
			}
			got = SchemaVersion
		}
		switch {
		case got > SchemaVersion:
			return fmt.Errorf("schema version %d, this cvfeed reads version %d: it is older than the cvfeed that wrote it", got, SchemaVersion)
		case got < SchemaVersion:
			return fmt.Errorf("schema version %d, this cvfeed reads version %d: run cvfeed backfill or run once to upgrade it", got, SchemaVersion)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("bucket %s is missing", b)
			}
		}
		return nil
	}
	if readOnly {
		return s.db.View(check)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A new database, or a foreign bbolt file: only an empty
			// file is initialised.
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return errors.New("not a cvfeed state database (foreign buckets)")
			}
			for _, b := range allBuckets {
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(keySchema, put32(SchemaVersion))
		}
		return check(tx)
	})
}

// migrate upgrades the layout from version from to SchemaVersion, in the
// transaction that opens the database.
func migrate(tx *bolt.Tx, from uint32) error {
	if from < 1 {
		return fmt.Errorf("unknown schema version %d", from)
	}
	for _, b := range [][]byte{bucketActions, bucketCursors, bucketMessages} {
		// Versions 2 and 3 only added buckets.
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if from < 4 {
		// Duplicates were counted per source only: keep them, on no day.
		dups := tx.Bucket(bucketDups)
		var old [][2][]byte
		if err := dups.ForEach(func(k, v []byte) error {
			if bytes.IndexByte(k, 0) < 0 {
				old = append(old, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		}); err != nil {
			return err
		}
		for _, kv := range old {
			if err := dups.Delete(kv[0]); err != nil {
				return err
			}
			nk := append(append(kv[0], 0), noDay...)
			if err := dups.Put(nk, kv[1]); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchema, put32(SchemaVersion))
}

// Path returns the database file path.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", s.path, err)
	}
	return nil
}

// Notify returns a channel that receives a value when pending work was
// added (new claims, retries queued again). It never blocks writers.
func (s *Store) Notify() <-chan struct{} { return s.notify }

func (s *Store) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Size returns the size of the database file in bytes.
func (s *Store) Size() (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}
