package watcher

import "sync"

// Skipped is a file not taken, and why.
type Skipped struct {
	Path   string
	Reason Skip
}

// skipLog makes the log of skipped files an audit trail without flooding
// it: one INFO line per file and reason, not one per rescan, and the first
// few kept for a summary (cvfeed backfill names them).
type skipLog struct {
	mu    sync.Mutex
	seen  map[string]Skip
	first []Skipped
}

const (
	// skipFirst is how many skipped files a summary names.
	skipFirst = 5
	// skipRemember bounds the memory of files already logged: past it,
	// the memory starts anew (and a file may be logged once more).
	skipRemember = 100_000
)

// add reports whether the skip of abs for why is new (to be logged).
func (l *skipLog) add(abs string, why Skip) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil || len(l.seen) >= skipRemember {
		l.seen = map[string]Skip{}
	}
	if l.seen[abs] == why {
		return false
	}
	l.seen[abs] = why
	if len(l.first) < skipFirst {
		l.first = append(l.first, Skipped{Path: abs, Reason: why})
	}
	return true
}

func (l *skipLog) firstFew() []Skipped {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Skipped(nil), l.first...)
}

// FirstSkipped returns the first few files the scan skipped, with why.
func (s *Scanner) FirstSkipped() []Skipped { return s.h.skips.firstFew() }
