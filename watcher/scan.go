package watcher

import (
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/fileio"
	"github.com/cvfeed/cvfeed/state"
)

// Store is what a scan needs of the state database.
type Store interface {
	LookupFile(sourceID, path string) (state.FileRecord, bool, error)
	Claim([]state.Candidate) ([]state.ClaimResult, error)
}

// Stats counts what a scan did. Read it with Snapshot while a scan runs.
type Stats struct {
	Seen       atomic.Int64 // regular files looked at
	Unchanged  atomic.Int64 // known with the same identity: not read
	New        atomic.Int64 // new items queued for upload
	Duplicates atomic.Int64 // content already an item of the source
	Known      atomic.Int64 // re-hashed, same content as before
	Skipped    atomic.Int64 // by name, pattern, size
	Errors     atomic.Int64 // unreadable files and folders, loops
	Changing   atomic.Int64 // changed while being hashed: left for later
	Bytes      atomic.Int64 // bytes hashed
}

// Counts is a plain copy of Stats.
type Counts struct {
	Seen, Unchanged, New, Duplicates, Known, Skipped, Errors, Changing, Bytes int64
}

// Snapshot returns the current counts.
func (s *Stats) Snapshot() Counts {
	return Counts{
		Seen: s.Seen.Load(), Unchanged: s.Unchanged.Load(), New: s.New.Load(),
		Duplicates: s.Duplicates.Load(), Known: s.Known.Load(), Skipped: s.Skipped.Load(),
		Errors: s.Errors.Load(), Changing: s.Changing.Load(), Bytes: s.Bytes.Load(),
	}
}

// Scanner walks folders once and claims every CV file in state.
type Scanner struct {
	store   Store
	log     *slog.Logger
	hashers int
	stats   *Stats
	// batch and flush bound a claim transaction: the number of files and
	// the time the first waits.
	batch int
	flush time.Duration
	// open opens a file to hash; tests count and fail opens.
	open func(string) (*os.File, error)
}

// ScannerOptions configures NewScanner.
type ScannerOptions struct {
	Logger *slog.Logger
	// Hashers is the number of files read at once (default 2×CPUs, ≤ 8).
	Hashers int
	// Stats receives the counts (default: a new Stats).
	Stats *Stats
	// Open replaces os.Open for reading files (tests).
	Open func(string) (*os.File, error)
}

// NewScanner returns a scanner. It does no I/O.
func NewScanner(store Store, o ScannerOptions) *Scanner {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Hashers <= 0 {
		o.Hashers = min(2*runtime.GOMAXPROCS(0), 8)
	}
	if o.Stats == nil {
		o.Stats = new(Stats)
	}
	if o.Open == nil {
		o.Open = fileio.Open
	}
	return &Scanner{store: store, log: o.Logger, hashers: o.Hashers, stats: o.Stats, batch: 256, flush: 50 * time.Millisecond, open: o.Open}
}

// Stats returns the scanner's counters.
func (s *Scanner) Stats() *Stats { return s.stats }

// file is a regular file found by the walk.
type file struct {
	folder *config.Folder
	abs    string
	rel    string
	info   fs.FileInfo
}

// Scan walks every folder once. A folder that cannot be read is logged and
// counted, and the others go on; the error is only for state failures and
// cancellation.
func (s *Scanner) Scan(ctx context.Context, folders []config.Folder) error {
	g, ctx := errgroup.WithContext(ctx)
	files := make(chan file, 256)
	cands := make(chan state.Candidate, 256)
	g.Go(func() error {
		defer close(files)
		for i := range folders {
			if err := s.walkFolder(ctx, &folders[i], files); err != nil {
				return err
			}
		}
		return nil
	})
	var hashers sync.WaitGroup
	for range s.hashers {
		hashers.Go(func() {
			buf := make([]byte, 128<<10)
			for f := range files {
				if ctx.Err() != nil {
					continue
				}
				if c, ok := s.examine(f, buf); ok {
					select {
					case cands <- c:
					case <-ctx.Done():
					}
				}
			}
		})
	}
	g.Go(func() error {
		hashers.Wait()
		close(cands)
		return nil
	})
	g.Go(func() error { return s.claim(ctx, cands) })
	return g.Wait()
}

// claim writes candidates in batches: one transaction per batch.
func (s *Scanner) claim(ctx context.Context, cands <-chan state.Candidate) error {
	batch := make([]state.Candidate, 0, s.batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := s.store.Claim(batch)
		if err != nil {
			return err
		}
		for i, r := range res {
			c := &batch[i]
			switch r {
			case state.ClaimNew:
				s.stats.New.Add(1)
				s.log.Debug("new CV queued", "source", c.Source, "file", c.Path)
			case state.ClaimDuplicate:
				s.stats.Duplicates.Add(1)
				s.log.Info("duplicate: same content as a CV already taken, not sent again", "source", c.Source, "file", c.Path)
			case state.ClaimKnown:
				s.stats.Known.Add(1)
			}
		}
		batch = batch[:0]
		return nil
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case c, ok := <-cands:
			if !ok {
				return flush()
			}
			if len(batch) == 0 {
				timer.Reset(s.flush)
			}
			batch = append(batch, c)
			if len(batch) >= s.batch {
				timer.Stop()
				if err := flush(); err != nil {
					return err
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			// What was hashed is still worth keeping.
			_ = flush()
			return ctx.Err()
		}
	}
}

// examine skips a file whose identity is known, else reads it once,
// checks it did not change meanwhile, and makes its candidate.
func (s *Scanner) examine(f file, buf []byte) (state.Candidate, bool) {
	id := identityOf(f.info)
	if rec, ok, err := s.store.LookupFile(f.folder.SourceID, f.abs); err == nil && ok && rec.Identity == id {
		s.stats.Unchanged.Add(1)
		return state.Candidate{}, false
	}
	fh, err := s.open(f.abs)
	if err != nil {
		s.unreadable(f, err)
		return state.Candidate{}, false
	}
	defer fh.Close()
	before, err := fh.Stat()
	if err != nil {
		s.unreadable(f, err)
		return state.Candidate{}, false
	}
	h := sha256.New()
	// Hide (*os.File).WriteTo, which would ignore buf and allocate a
	// new one for every file.
	n, err := io.CopyBuffer(h, struct{ io.Reader }{fh}, buf)
	if err != nil {
		s.unreadable(f, err)
		return state.Candidate{}, false
	}
	s.stats.Bytes.Add(n)
	after, err := fh.Stat()
	if err != nil {
		s.unreadable(f, err)
		return state.Candidate{}, false
	}
	if n != before.Size() || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		s.stats.Changing.Add(1)
		s.log.Warn("file changed while it was read; it will be taken once it is stable", "source", f.folder.Name, "file", f.abs)
		return state.Candidate{}, false
	}
	if n == 0 {
		s.skip(f, SkipEmpty)
		return state.Candidate{}, false
	}
	id = identityOf(before)
	c := state.Candidate{
		Source: f.folder.Name, SourceID: f.folder.SourceID, Path: f.abs, FileName: filepath.Base(f.abs),
		Size: n, Received: before.ModTime(), Identity: &id,
	}
	h.Sum(c.SHA256[:0])
	return c, true
}

func (s *Scanner) unreadable(f file, err error) {
	s.stats.Errors.Add(1)
	s.log.Error("cannot read file; skipped", "source", f.folder.Name, "file", f.abs, "err", err)
}

func (s *Scanner) skip(f file, why Skip) {
	s.stats.Skipped.Add(1)
	s.log.Debug("skipped", "source", f.folder.Name, "file", f.abs, "reason", string(why))
}

// identityOf is what makes a file "the same" for a rescan.
func identityOf(fi fs.FileInfo) state.Identity {
	id := state.Identity{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(st.Dev), st.Ino
	}
	return id
}
