package state

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is matched (errors.Is) by every error that says the state file
// is damaged, truncated or not a cvfeed state: the way out is
// "cvfeed state reset". The error itself is a *DamagedError.
var ErrDamaged = errors.New("state damaged")

// DamagedError says which state file is damaged and how. Its text is the
// one line a command prints: the file, what is wrong, and the way out.
type DamagedError struct {
	// Path is the state file.
	Path string
	// Reason is what is wrong, e.g. "meta page points past the end of the
	// file: ...".
	Reason string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("state %s is damaged (%s): keep it aside and start anew with \"cvfeed state reset\"; nothing will be uploaded twice", e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

func (s *Store) damaged(format string, args ...any) error {
	return &DamagedError{Path: s.path, Reason: fmt.Sprintf(format, args...)}
}

// view runs fn in a read transaction, update in a read-write one. Every
// transaction of this package goes through them: bbolt trusts the pages of
// its file, and a damaged page makes it panic (an assertion) or read
// outside the mapped file (a fault). guard turns both into a
// *DamagedError, so a damaged file is an error, never a crash.
//
// db.Batch is not used: it may run fn on a timer's goroutine, where a panic
// cannot be recovered.
//
// Both hold s.mu shared (a compaction replaces s.db under it, compact.go),
// and update holds s.wmu, which a compaction holds while it copies: a
// write waits for it, then goes to the compacted file. fn must not call the
// Store (a nested view could wait for a compaction that waits for it).
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.guard(func() error { return s.db.View(fn) })
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.dirty.Store(true)
	return s.guard(func() error { return s.db.Update(fn) })
}

// guard runs f on the calling goroutine with faults turned into panics
// (debug.SetPanicOnFault: bbolt reads a memory-mapped file, where a page
// past its end faults), and recovers bbolt's panics as a damaged state.
// bbolt's View and Update roll the transaction back (releasing its locks)
// while the panic unwinds.
func (s *Store) guard(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = s.damaged("%s, in %s", panicReason(r), panicSite())
		}
	}()
	return f()
}

// panicReason describes a recovered panic of bbolt.
func panicReason(r any) string {
	if re, ok := r.(runtime.Error); ok {
		if f, ok := r.(interface{ Addr() uintptr }); ok {
			return fmt.Sprintf("reading it faulted at address %#x: a page lies outside the file", f.Addr())
		}
		return fmt.Sprintf("bbolt failed reading it: %v", re)
	}
	return fmt.Sprintf("bbolt: %v", r)
}

// panicSite names the function that panicked (called from the deferred
// function, the panicking frames are still on the stack): bbolt's code on
// a damaged page, or cvfeed's decoding of a damaged value.
func panicSite() string {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case strings.HasPrefix(f.Function, "runtime."):
			panicking = panicking || f.Function == "runtime.gopanic" || f.Function == "runtime.sigpanic"
		case panicking:
			return f.Function
		}
		if !more {
			return "an unknown function"
		}
	}
}
