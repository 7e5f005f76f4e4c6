package watcher

import "sync"

// reports remembers the problems already logged, so that a poll every few
// seconds does not log the same unreadable directory each time. A problem
// no longer met by a whole walk is forgotten, and logged again if it comes
// back. A nil *reports remembers nothing: every problem is logged.
type reports struct {
	mu   sync.Mutex
	seen map[string]report
	gen  uint64
}

type report struct {
	what string
	gen  uint64
}

func newReports() *reports { return &reports{seen: map[string]report{}} }

// begin starts a walk of the whole folder, which meets again every
// problem still there.
func (r *reports) begin() {
	if r != nil {
		r.mu.Lock()
		r.gen++
		r.mu.Unlock()
	}
}

// prune forgets, after a walk of the whole folder, the problems it did not
// meet.
func (r *reports) prune() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, rep := range r.seen {
		if rep.gen != r.gen {
			delete(r.seen, p)
		}
	}
}

// fresh reports whether a problem should be logged, and remembers it.
func (r *reports) fresh(p, msg string, err error) bool {
	if r == nil {
		return true
	}
	what := msg
	if err != nil {
		what += ": " + err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.seen[p]
	r.seen[p] = report{what: what, gen: r.gen}
	return !ok || old.what != what
}

// ok forgets a problem with p: it went away.
func (r *reports) ok(p string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if len(r.seen) > 0 {
		delete(r.seen, p)
	}
	r.mu.Unlock()
}
