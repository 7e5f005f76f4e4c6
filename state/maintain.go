package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxProblems bounds what Check lists: a damaged file may have thousands.
const maxProblems = 50

// Check runs bbolt's consistency check (tx.Check: every page reachable
// once, free pages not in use, keys in order) and cvfeed's own: the schema
// version and every bucket present, every item and file record readable,
// every pending item in exactly one place (queued or leased) and every
// other item in neither, every queue, lease and after-action entry naming
// an item. It returns the problems found (none: the state is sound), at
// most 50 and a count of the rest.
func (s *Store) Check() ([]string, error) {
	var problems []string
	more := 0
	add := func(format string, args ...any) {
		if len(problems) < maxProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else {
			more++
		}
	}
	err := s.checkTx(func(tx *bolt.Tx) error {
		// Open validated the pages; tx.Check reads them on a goroutine
		// of its own, and reports its panics as errors.
		for err := range tx.Check() {
			add("bbolt: %v", err)
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			add("the meta bucket is missing")
			return nil
		}
		if v := meta.Get(keySchema); len(v) != 4 || be32(v) != SchemaVersion {
			add("schema version %x, want %d", v, SchemaVersion)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				add("bucket %s is missing", b)
			}
		}
		items, queue, leased, files, actions := tx.Bucket(bucketItems), tx.Bucket(bucketQueue), tx.Bucket(bucketLeased), tx.Bucket(bucketIdents), tx.Bucket(bucketActions)
		if items == nil || queue == nil || leased == nil || files == nil || actions == nil || tx.Bucket(bucketSources) == nil || tx.Bucket(bucketDirs) == nil {
			return nil
		}
		cd := newCodec(tx)
		if err := cd.loadSources(); err != nil {
			add("%v", err)
			return nil
		}
		// places counts, per pending item (by Key.bytes), the queue and
		// lease entries.
		places := map[string]int{}
		if err := cd.forEachItem(func(it Item, kv [2][]byte, err error) error {
			switch {
			case err != nil:
				add("item %x: %v", kv[0], err)
			case it.Status == Pending:
				places[string(it.Key.bytes())] += 0
			case it.Status != Uploaded && it.Status != Failed:
				add("item %s: status %v", it.Key, it.Status)
			}
			return nil
		}); err != nil {
			return err
		}
		known := func(k Key) bool {
			ok, err := cd.hasItem(k)
			return err == nil && ok
		}
		place := func(where string, kb []byte) {
			k, err := parseKey(kb)
			if err != nil {
				add("%s entry %q: %v", where, kb, err)
				return
			}
			if _, pending := places[string(kb)]; pending {
				places[string(kb)]++
				return
			}
			if !known(k) {
				add("%s entry %s names no item", where, k)
			} else {
				add("item %s is %s but not pending", k, where)
			}
		}
		if err := queue.ForEachBucket(func(src []byte) error {
			return queue.Bucket(src).ForEach(func(k, _ []byte) error {
				if len(k) != 8+32 {
					add("queue entry %q of source %s is malformed", k, src)
					return nil
				}
				kb := append(append(bytes.Clone(src), 0), k[8:]...)
				place("queued", kb)
				return nil
			})
		}); err != nil {
			return err
		}
		if err := leased.ForEach(func(k, _ []byte) error { place("leased", k); return nil }); err != nil {
			return err
		}
		for kb, n := range places {
			if n != 1 {
				k, _ := parseKey([]byte(kb))
				add("pending item %s is queued or leased %d times, want once", k, n)
			}
		}
		if err := files.ForEach(func(k, v []byte) error {
			_, path, perr := cd.parseFileKey(k)
			if perr != nil {
				add("file record %x: %v", k, perr)
			} else if _, err := decodeFile(v); err != nil {
				add("file record %q: %v", path, err)
			}
			return nil
		}); err != nil {
			return err
		}
		return actions.ForEach(func(k, _ []byte) error {
			key, path, err := parseActionKey(k)
			if err != nil {
				add("after-action %q: %v", k, err)
			} else if !known(key) {
				add("after-action for %s names no item", path)
			}
			return nil
		})
	})
	if err != nil {
		return problems, fmt.Errorf("check state %s: %w", s.path, err)
	}
	if more > 0 {
		problems = append(problems, fmt.Sprintf("... and %d more", more))
	}
	return problems, nil
}

// checkTx runs fn for Check: in a read transaction when this process only
// reads, else in a write transaction rolled back, since tx.Check reads the
// free list that writers change (bbolt: "not safe to execute other writer
// transactions at the same time" as a read-only check).
func (s *Store) checkTx(fn func(*bolt.Tx) error) error {
	if s.readOnly {
		return s.view(fn)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.guard(func() error {
		tx, err := s.db.Begin(true)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		return fn(tx)
	})
}

// Backup writes a consistent copy of the state to dst (mode 0600): a read
// transaction's snapshot written to a temporary file beside dst, synced,
// opened and validated, then renamed over dst. Writers go on meanwhile. It
// returns the copy's size.
func (s *Store) Backup(dst string) (n int64, err error) {
	fail := func(err error) (int64, error) { return 0, fmt.Errorf("back up state %s to %s: %w", s.path, dst, err) }
	dir := filepath.Dir(dst)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(tmp)
		return err
	}); err != nil {
		if errors.Is(err, ErrDamaged) {
			return 0, err
		}
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	// The copy is read back as any state is opened: a damaged page copied
	// is found now, not on the day the backup is needed.
	c, err := Open(tmp.Name(), &Options{ReadOnly: true})
	if err != nil {
		var de *DamagedError
		if errors.As(err, &de) {
			return 0, s.damaged("%s", de.Reason)
		}
		return fail(fmt.Errorf("the copy does not open: %w", err))
	}
	c.Close()
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	return n, nil
}

// Reset keeps the state file at path aside, renamed path.damaged-<UTC time>
// (mode 0600), and creates a new, empty state in its place, returning the
// name it was kept under. It refuses (ErrLocked) while another process
// holds the state: the file is renamed under its lock.
func Reset(path string, now time.Time, opts *Options) (aside string, err error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reset state %s: %w", path, err)
	}
	defer f.Close()
	if err := lockFile(f, syscall.LOCK_EX, o.LockTimeout); err != nil {
		return "", fmt.Errorf("reset state %s: %w", path, err)
	}
	base := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	aside = base
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
			break
		} else if err != nil {
			return "", fmt.Errorf("reset state %s: %w", path, err)
		}
		if i > 100 {
			return "", fmt.Errorf("reset state %s: %s and 99 more names are taken", path, base)
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("reset state %s: %w", path, err)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("reset state %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return aside, fmt.Errorf("reset state %s: %w", path, err)
	}
	s, err := Open(path, &o)
	if err != nil {
		return aside, err
	}
	return aside, s.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
