package watcher

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// Stats counts what a scan or a watch did. Read it with Snapshot while it
// runs.
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
	Settling   atomic.Int64 // (watch) files waiting to be complete, now
}

// Counts is a plain copy of Stats.
type Counts struct {
	Seen, Unchanged, New, Duplicates, Known, Skipped, Errors, Changing, Bytes, Settling int64
}

// Snapshot returns the current counts.
func (s *Stats) Snapshot() Counts {
	return Counts{
		Seen: s.Seen.Load(), Unchanged: s.Unchanged.Load(), New: s.New.Load(),
		Duplicates: s.Duplicates.Load(), Known: s.Known.Load(), Skipped: s.Skipped.Load(),
		Errors: s.Errors.Load(), Changing: s.Changing.Load(), Bytes: s.Bytes.Load(),
		Settling: s.Settling.Load(),
	}
}

// Scanner walks folders once and claims every CV file in state.
type Scanner struct {
	h       *handover
	log     *slog.Logger
	hashers int
	health  scanHealth // the folders found down (health.go)
}

// ScannerOptions configures NewScanner.
type ScannerOptions struct {
	Logger *slog.Logger
	// Hashers is the number of files read at once (default 2×CPUs, ≤ 8).
	Hashers int
	// Stats receives the counts (default: a new Stats).
	Stats *Stats
	// Open replaces the open of files to hash, which is otherwise
	// confined to the file's folder (tests).
	Open func(string) (*os.File, error)
}

// NewScanner returns a scanner. It does no I/O.
func NewScanner(store Store, o ScannerOptions) *Scanner {
	if o.Hashers <= 0 {
		o.Hashers = defaultHashers()
	}
	h := newHandover(store, o.Logger, o.Stats, o.Open)
	return &Scanner{h: h, log: h.log, hashers: o.Hashers}
}

func defaultHashers() int { return min(2*runtime.GOMAXPROCS(0), 8) }

func newHandover(store Store, log *slog.Logger, stats *Stats, open func(string) (*os.File, error)) *handover {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if stats == nil {
		stats = new(Stats)
	}
	return &handover{store: store, log: log, stats: stats, open: open, batch: 256, flush: 50 * time.Millisecond}
}

// Stats returns the scanner's counters.
func (s *Scanner) Stats() *Stats { return s.h.stats }

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
				if c, res := s.h.examine(f, buf); res == hashed {
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
	g.Go(func() error { return s.h.claim(ctx, cands) })
	return g.Wait()
}

// walkFolder sends every candidate regular file of a folder.
func (s *Scanner) walkFolder(ctx context.Context, f *config.Folder, out chan<- file) error {
	if !s.folderUp(f) {
		return nil // down: logged and counted
	}
	st := s.h.stats
	w := newWalker(f, s.log, st)
	// Two directories at once: over an unchanged tree the walk's stats
	// and state reads are all the work (a million files: 4.3 s walked one
	// at a time, 2.3 s two or more). More, and the identities of that many
	// directories, written side by side, leave their pages less full.
	w.workers = 2
	w.skipped = func(abs string, why Skip) {
		st.Seen.Add(1)
		s.h.skip(file{folder: f, abs: abs}, why)
	}
	w.files = func(batch []found) error {
		st.Seen.Add(int64(len(batch)))
		keep := batch[:0]
		for _, fb := range batch {
			if why := w.filter.size(fb.size()); why != SkipNone {
				s.h.skip(file{folder: f, abs: fb.abs}, why)
				continue
			}
			keep = append(keep, fb)
		}
		// The identities of a directory's files are looked up in one
		// read transaction here, not one per file by the hashers.
		for _, fb := range s.h.unknown(f, keep) {
			fl := file{folder: f, abs: fb.abs, rel: fb.rel(), info: fb.info(), looked: true}
			select {
			case out <- fl:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	w.listed = newListedDirs(s.h.store, f, s.log)
	if err := w.walkRoot(ctx); err != nil {
		return err
	}
	if w.complete {
		forgetMissing(ctx, s.h.store, f, s.log, w.listed)
	}
	return nil
}
