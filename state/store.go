// Package state is cvfeed's durable memory: a bbolt database that records
// every CV found (a claim keyed by source_id and content hash), what
// happened to it, the queue of uploads still to do, and the identities of
// files already hashed, so that a crash, a restart or a flaky API never loses
// a CV and never sends one twice.
//
// Bucket layout (keys are bytes; integers are big-endian):
//
//	meta
//	  "schema"                        → uint32 schema version
//	  "api"                           → the API the uploads go to (apibind.go)
//	  "folderdev" 0x00 sourceID 0x00 path → 1 dev[8] mount root: a folder's file system (folders.go)
//	sources                         a number per Riminder source id (schema 6, layout.go)
//	  sourceID                        → no[2]
//	dirs                              a number per directory, both ways (schema 6)
//	  'd' dir (up to its last '/')    → no[4]
//	  'n' no[4]                       → dir
//	items                             the claims (schema 6; "claims" before)
//	  srcno[2] sha256[32]             → item (binary, see record.go)
//	queue                             pending items not handed to a worker
//	  sourceID (sub-bucket)
//	    due unix-nanos[8] sha256[32]  → empty
//	leased                            items handed to a worker: maybe sent
//	  sourceID 0x00 sha256[32]        → lease unix-nanos[8]
//	idents                            folder file identities (schema 6; "files" before)
//	  srcno[2] dirno[4] name          → identity (dev, ino, size, mtime, sha256)
//	missing                           identities of files gone from their folder (schema 6, retain.go)
//	  idents key                      → since unix-millis[8]
//	dups                              duplicates found, per source and UTC day (schema 4)
//	  source name 0x00 YYYYMMDD       → uint64 (day 00000000: counted before schema 4)
//	actions                           after-actions still to do (schema 2)
//	  sourceID 0x00 sha256[32] path   → source name [0x00 'U': waits for an upload only]
//	cursors                           how far each mail folder was read (schema 3)
//	  account 0x00 mailbox            → uidvalidity[4] last uid[4]
//	messages                          messages waiting for their after-action (schema 3)
//	  account 0x00 mailbox 0x00 uidvalidity[4] uid[4] → (len[1] sourceID sha256[32])*
//	mailnotes                         single messages: no BINARY, quarantined, retried (schema 5, quarantine.go)
//	  account 0x00 mailbox 0x00 uidvalidity[4] uid[4] → flags[1] sourceID
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
//
// A damaged file (cut short by a power failure, overwritten, not a state at
// all) is an error naming it and "cvfeed state reset", never a crash: Open
// validates the file before bbolt maps it (validate.go), and every
// transaction runs under guard (guard.go), which turns bbolt's panics and
// faults into a *DamagedError.
package state

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this package reads and writes.
// Version 2 added the actions bucket, version 3 the cursors and messages
// buckets of mailbox sources, version 4 counts duplicates per day,
// version 5 added the mailnotes bucket, version 6 numbers sources and
// directories and shrinks the records (layout.go, migrate.go), version 7
// numbers source names in items (record format 4); Open upgrades an older
// database. A version 6 file is read as it is (its items are format 3):
// a read-only Open does not need a writer to upgrade it first.
const SchemaVersion = 7

// allocSize is how much the state file grows at a time (bbolt's
// DB.AllocSize).
const allocSize = 1 << 20

// readableSchema is the oldest version read without an upgrade.
const readableSchema = 6

// FileName is the database file name inside the state directory.
const FileName = "cvfeed.db"

var (
	bucketMeta      = []byte("meta")
	bucketQueue     = []byte("queue")
	bucketLeased    = []byte("leased")
	bucketDups      = []byte("dups")
	bucketActions   = []byte("actions")
	bucketCursors   = []byte("cursors")
	bucketMessages  = []byte("messages")
	bucketMailNotes = []byte("mailnotes")
	keySchema       = []byte("schema")

	allBuckets = [][]byte{bucketMeta, bucketItems, bucketQueue, bucketLeased, bucketIdents, bucketDups, bucketActions, bucketCursors, bucketMessages, bucketMailNotes, bucketSources, bucketDirs, bucketMissing}
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("state database is in use by another cvfeed process")

// ErrEmpty is returned by a read-only Open of a file of zero bytes that no
// process holds: a state whose creation never got further (bbolt writes
// its first pages once it holds the lock), so there is nothing in it.
var ErrEmpty = errors.New("state file is empty: no cvfeed has written it yet")

// Options tunes Open. The zero value is usable.
type Options struct {
	// ReadOnly opens the database for reading only (a shared lock).
	ReadOnly bool
	// LockTimeout is how long Open waits for the file lock; default 1s.
	LockTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger gets what a writer's Open fixed or could not fix (a state_dir
	// or file that group or others may read); nil: nothing is logged.
	Logger *slog.Logger
}

// Store is an open state database. Its methods are safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
	now      func() time.Time
	// notify is signalled (without blocking) when pending work is added.
	notify chan struct{}
	// The trimmer of the mapping's resident pages (resident.go).
	trimStop, trimDone chan struct{}
	// dirty is set by every write transaction: Close records the free
	// list only then (freelist.go).
	dirty atomic.Bool
	// A compaction replaces db (compact.go): mu is held shared by every
	// transaction and exclusively to replace db; wmu is held by every
	// write transaction and by a compaction while it copies.
	mu     sync.RWMutex
	wmu    sync.Mutex
	closed bool
	// opts is how the store was opened: a compaction opens its copy so.
	opts Options
}

// Open opens (creating if needed, mode 0600, in a directory of mode 0700)
// the database at path. Before bbolt maps the file, Open takes the lock
// bbolt will hold and validates the file (see checkFile): a damaged,
// truncated or foreign file is a *DamagedError (errors.Is ErrDamaged),
// never a crash. A file another process holds is ErrLocked, whatever its
// size; a read-only Open of a zero-length file is ErrEmpty.
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
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !o.ReadOnly {
		dir := filepath.Dir(path)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open state %s: %w", path, err)
		}
		makePrivate(dir, 0o700, "state_dir", log)
	}
	o.Logger = log
	s := &Store{path: path, readOnly: o.ReadOnly, now: o.Now, notify: make(chan struct{}, 1), opts: o}
	var (
		db     *bolt.DB
		opened *os.File
	)
	err := s.guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:        o.LockTimeout,
			ReadOnly:       o.ReadOnly,
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := s.openChecked(name, flag, perm, &o)
				opened = f
				return f, err
			},
		})
		return err
	})
	if err != nil {
		if db == nil && opened != nil && errors.Is(err, ErrDamaged) {
			// bbolt panicked inside Open (its free-list scan): the
			// file stays mapped, but the lock goes with the descriptor.
			opened.Close()
		}
		switch {
		case errors.Is(err, ErrDamaged):
			return nil, err
		case errors.Is(err, bolterrors.ErrTimeout):
			return nil, fmt.Errorf("open state %s: %w", path, ErrLocked)
		case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
			return nil, s.damaged("bbolt refuses it: %v", err)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s.db = db
	// The file grows 1 MiB at a time, not bbolt's 16: a state is what it
	// holds, within a MiB (at the cost of a file sync per MiB written).
	db.AllocSize = allocSize
	if !o.ReadOnly {
		makePrivate(path, 0o600, "state file", log)
		removeCompactLeftovers(path, log)
	}
	if err := s.init(o.ReadOnly); err != nil {
		db.Close()
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s.startTrim()
	return s, nil
}

// openChecked is bbolt's OpenFile: it opens the file, takes the lock bbolt
// is about to take (bbolt's own flock on the same descriptor then succeeds
// at once), and validates the file while no writer can change it.
func (s *Store) openChecked(name string, flag int, perm os.FileMode, o *Options) (*os.File, error) {
	how := syscall.LOCK_SH
	if !o.ReadOnly {
		how = syscall.LOCK_EX
	}
	var (
		f   *os.File
		fi  os.FileInfo
		err error
	)
	// A state compacted (or reset) while this process waited for the lock
	// was renamed over: the file locked is then no longer the one at
	// name, and the one at name is opened instead.
	for try := 0; ; try++ {
		if f, err = os.OpenFile(name, flag, perm); err != nil {
			return nil, err
		}
		if err := lockFile(f, how, o.LockTimeout); err != nil {
			f.Close()
			return nil, err
		}
		if fi, err = f.Stat(); err != nil {
			f.Close()
			return nil, err
		}
		now, serr := os.Stat(name)
		if serr != nil || os.SameFile(fi, now) || try == 3 {
			break
		}
		f.Close()
	}
	if fi.Size() == 0 {
		if o.ReadOnly {
			f.Close()
			return nil, ErrEmpty
		}
		return f, nil // new: bbolt writes its first pages
	}
	reason, err := checkFile(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	if reason != "" {
		f.Close()
		return nil, s.damaged("%s", reason)
	}
	return f, nil
}

// lockFile takes a flock (how: LOCK_SH or LOCK_EX) on f, trying for up to
// timeout as bbolt does; ErrLocked when another process keeps it.
func lockFile(f *os.File, how int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return fmt.Errorf("lock: %w", err)
		case time.Now().After(deadline):
			return ErrLocked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makePrivate gives path mode want when group or others may use it and this
// process owns it; otherwise it says so once.
func makePrivate(path string, want fs.FileMode, what string, log *slog.Logger) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Geteuid() {
		if err := os.Chmod(path, want); err == nil {
			log.Info(fmt.Sprintf("%s was open to group or others: made it private", what), "path", path, "was", fmt.Sprintf("%04o", perm), "now", fmt.Sprintf("%04o", want))
			return
		}
	}
	log.Warn(fmt.Sprintf("%s is open to group or others and cvfeed cannot change it (not its owner): make it %04o", what, want), "path", path, "mode", fmt.Sprintf("%04o", perm))
}

// init creates the buckets and the schema key in one transaction, or checks
// the schema of an existing database.
func (s *Store) init(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return s.damaged("not a cvfeed state: a bbolt database without cvfeed's meta bucket")
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return s.damaged("not a cvfeed state: no schema version")
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
		case got < readableSchema:
			return fmt.Errorf("schema version %d, this cvfeed reads version %d: run cvfeed backfill or run once to upgrade it", got, SchemaVersion)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return s.damaged("bucket %s is missing", b)
			}
		}
		return nil
	}
	if readOnly {
		return s.view(check)
	}
	// A state of this version is checked without a write: a commit would
	// drop the free list recorded by the last Close (freelist.go).
	current := false
	if err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(keySchema); len(v) != 4 || be32(v) != SchemaVersion {
			return nil
		}
		current = true
		return check(tx)
	}); err != nil || current {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A new database, or a foreign bbolt file: only an empty
			// file is initialised.
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return s.damaged("not a cvfeed state: a bbolt database with buckets of another program")
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
	for _, b := range [][]byte{bucketActions, bucketCursors, bucketMessages, bucketMailNotes} {
		// Versions 2, 3 and 5 only added buckets.
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
	if from < 6 {
		if err := migrate6(tx); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchema, put32(SchemaVersion))
}

// Path returns the database file path.
func (s *Store) Path() string { return s.path }

// Close closes the database, once a compaction running is over.
func (s *Store) Close() error {
	// The trimmer's transactions take s.mu: it stops first.
	s.stopTrim()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.readOnly && s.dirty.Load() {
		s.syncFreelist()
	}
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
	err := s.view(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}
