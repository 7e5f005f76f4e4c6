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
// writing (its lock, its checks, its migration), copies every bucket with
// bbolt's Compact into a temporary file beside it (mode 0600; pages filled,
// free pages left out), syncs it, reads it back as any state is opened,
// and renames it over path while still holding the old file's lock. It
// returns the sizes before and after. It is offline: ErrLocked while
// another process holds the state (through the daemon's control socket is
// for later).
func Compact(path string, opts *Options) (before, after int64, err error) {
	fail := func(err error) (int64, int64, error) {
		return 0, 0, fmt.Errorf("compact state %s: %w", path, err)
	}
	if _, err := os.Stat(path); err != nil {
		return fail(err)
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
	fi, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	before = fi.Size()
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".compact-*")
	if err != nil {
		return fail(err)
	}
	name := tmp.Name()
	keep := false
	defer func() {
		if !keep {
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fail(err)
	}
	tmp.Close()
	dst, err := bolt.Open(name, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fail(err)
	}
	// Grow the copy by 1 MiB at a time, not bbolt's 16: the file ends
	// close to what it holds.
	dst.AllocSize = 1 << 20
	if err := s.guard(func() error { return bolt.Compact(dst, s.db, compactTxSize) }); err != nil {
		dst.Close()
		if errors.Is(err, ErrDamaged) {
			return 0, 0, err
		}
		return fail(err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return fail(err)
	}
	if err := dst.Close(); err != nil {
		return fail(err)
	}
	// Read the copy back as a state is opened: its pages, its schema.
	c, err := Open(name, &Options{ReadOnly: true})
	if err != nil {
		return fail(fmt.Errorf("the compacted copy does not open: %w", err))
	}
	c.Close()
	fi, err = os.Stat(name)
	if err != nil {
		return fail(err)
	}
	after = fi.Size()
	// Renamed under the old file's lock: a process that opened the old
	// file meanwhile and waits for its lock sees, once it has it, that
	// path is another file now, and opens that (see openChecked).
	if err := os.Rename(name, path); err != nil {
		return fail(err)
	}
	keep = true
	if err := syncDir(dir); err != nil {
		return before, after, fmt.Errorf("compact state %s: %w", path, err)
	}
	return before, after, nil
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
