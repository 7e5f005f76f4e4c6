package state

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// compactTxSize bounds a transaction of the copy (bbolt's Compact commits
// when it has written this much), so memory stays bounded.
const compactTxSize = 32 << 20

// Compact rewrites the state file at path to reclaim the pages a bbolt file
// never gives back (a bbolt file never shrinks): it opens the state for
// writing (its lock, its checks, its migration) and compacts it as
// Store.Compact does. It returns the sizes before and after. It is the
// offline path: ErrLocked while another process holds the state (the
// daemon compacts through its control socket, control.Compact).
func Compact(path string, opts *Options) (before, after int64, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, 0, fmt.Errorf("compact state %s: %w", path, err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	o.ReadOnly = false
	s, err := Open(path, &o)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	return s.Compact()
}

// Compact rewrites the open state in place, while the process goes on:
//
//  1. It takes the write path exclusively (every write transaction waits
//     for it, see Store.update; read transactions go on), so nothing
//     changes while it copies and nothing recorded is lost: a write
//     arriving meanwhile waits, and is made in the compacted file.
//  2. It copies every bucket with bbolt's Compact into
//     ".cvfeed.db.compact-*" beside the state (mode 0600; pages filled,
//     free pages left out) and syncs it.
//  3. It opens the copy as any state is opened for writing (validated,
//     its schema checked, locked exclusively), renames it over the path
//     and syncs the directory, then swaps the open database: once the
//     running read transactions are over, the old one is closed and every
//     transaction after uses the new one.
//
// The lock never lapses: the copy is locked before the rename, the old file
// unlocked only after it. A process that opened the old file meanwhile and
// waits for its lock sees, once it has it, that the path is another file,
// and opens that (see openChecked), where it waits again.
//
// On an error before the rename, the state stays as it was (the copy is
// removed) and the Store goes on with it. It returns the file's sizes
// before and after.
func (s *Store) Compact() (before, after int64, err error) {
	fail := func(err error) (int64, int64, error) {
		if errors.Is(err, ErrDamaged) {
			return 0, 0, err
		}
		return 0, 0, fmt.Errorf("compact state %s: %w", s.path, err)
	}
	if s.readOnly {
		return fail(errors.New("the state is open read-only"))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// s.db is only ever replaced with wmu held: reading it here needs no
	// more.
	if s.closed {
		return fail(errors.New("the state is closed"))
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return fail(err)
	}
	before = fi.Size()
	name, err := s.compactCopy()
	if err != nil {
		return fail(err)
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(name)
		}
	}()
	// Open the copy as a state is opened: its pages, its schema, and its
	// lock, held from now on.
	o := s.opts
	o.ReadOnly = false
	c, err := Open(name, &o)
	if err != nil {
		return fail(fmt.Errorf("the compacted copy does not open: %w", err))
	}
	// Only c's database is taken: s's trimmer trims it from now on.
	c.stopTrim()
	if err := os.Rename(name, s.path); err != nil {
		c.db.Close()
		return fail(err)
	}
	keep = true
	dirErr := syncDir(filepath.Dir(s.path))
	s.mu.Lock()
	old := s.db
	s.db = c.db
	// Nothing written to the copy yet: its free list, recorded by the
	// copy, holds (Close need not write it again).
	s.dirty.Store(false)
	s.mu.Unlock()
	if err := old.Close(); err != nil {
		s.opts.Logger.Warn("closing the state as it was before the compaction", "path", s.path, "err", err)
	}
	if fi, err = os.Stat(s.path); err != nil {
		return fail(err)
	}
	after = fi.Size()
	if dirErr != nil {
		// The compacted state is in use; only the rename may not be
		// durable yet.
		return before, after, fmt.Errorf("compact state %s: %w", s.path, dirErr)
	}
	return before, after, nil
}

// compactCopy writes a compacted copy of s.db beside the state, synced and
// closed, and returns its name. The caller holds s.wmu: nothing changes
// while it copies.
func (s *Store) compactCopy() (name string, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(s.path), "."+filepath.Base(s.path)+".compact-*")
	if err != nil {
		return "", err
	}
	name = tmp.Name()
	defer func() {
		if err != nil {
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	tmp.Close()
	// The copy records its free list (empty: it is written in order), so
	// that the writer who opens it next reads it instead of walking every
	// page to rebuild it (freelist.go).
	dst, err := bolt.Open(name, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return "", err
	}
	dst.AllocSize = allocSize
	if err := s.guard(func() error { return bolt.Compact(dst, s.db, compactTxSize) }); err != nil {
		dst.Close()
		return "", err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return "", err
	}
	var used int64
	if err := dst.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		dst.Close()
		return "", err
	}
	if err := dst.Close(); err != nil {
		return "", err
	}
	// bbolt grew the file a step (AllocSize) past its last page: cut it
	// there, so the compacted state is what it holds. A later commit
	// grows it again as it needs.
	if fi, err := os.Stat(name); err == nil && fi.Size() > used {
		if err := os.Truncate(name, used); err != nil {
			return "", err
		}
		if err := syncFile(name); err != nil {
			return "", err
		}
	}
	return name, nil
}

// removeCompactLeftovers removes the temporary copies that a compaction
// killed before its rename left beside the state (".cvfeed.db.compact-*",
// as large as the state). Called with the writer's lock held: no
// compaction runs then, since Compact holds that lock too.
func removeCompactLeftovers(path string, log *slog.Logger) {
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".compact-*"))
	for _, p := range left {
		if err := os.Remove(p); err != nil {
			log.Warn("cannot remove what an interrupted state compact left", "file", p, "err", err)
			continue
		}
		log.Info("removed what an interrupted state compact left", "file", p)
	}
}
