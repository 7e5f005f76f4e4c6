package watcher

import (
	"container/heap"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cvfeed/cvfeed/internal/confine"
	"github.com/cvfeed/cvfeed/state"
)

// settler holds a folder's files that are waiting to be complete, and says
// when each one is. A file is complete when all of these hold:
//
//  1. Its size and mtime stayed unchanged for settle. It is stat'ed when
//     found and again when settle has passed; a change starts the wait
//     again. On a local file system an mtime already older than settle
//     counts as that wait (the kernel that set it has our clock), so a
//     file found by a walk after a restart is complete at once. On a
//     network file system the mtime comes from the server's clock, which
//     may be skewed, so it is not trusted: settle is always waited out.
//  2. No write is in progress as inotify shows it (event mode only): an
//     IN_MODIFY not yet followed by IN_CLOSE_WRITE means a process still
//     holds the file open after writing it, whatever the pause.
//  3. No process has it open for writing according to /proc, in a scan
//     made after its current size and mtime were first seen and at most
//     procGap ago. This is the only writer signal in poll mode, and the
//     one that catches a file opened before cvfeed started. A file whose
//     writer was seen closing it (IN_CLOSE_WRITE after its last
//     IN_MODIFY) skips the scan.
//
// What each mode can see: event mode sees every write made through this
// machine's kernel as it happens (IN_MODIFY, IN_CLOSE_WRITE) and, through
// /proc, local writers that started before cvfeed. Poll mode sees a write
// only as a changed size or mtime at the next look, and local writers
// through /proc. Neither sees a writer on another machine (NFS, SMB
// clients, a FUSE daemon's remote side): there only settle protects, so a
// scanner that pauses longer than settle between pages over a network
// share can still have a half file taken. Neither can tell a writer that
// closed the file and will reopen it later, nor a writer in a process
// cvfeed may not inspect (another user's, when not root): settle again.
//
// The settler belongs to one goroutine (its folder's loop) and keeps one
// min-heap of due times, so one timer serves every file however many.
type settler struct {
	settle time.Duration
	// trustMtime: an mtime older than settle counts as the wait.
	trustMtime bool
	// stat stats a file inside its folder (confine.Tree.Stat).
	stat func(string) (fs.FileInfo, error)
	// writers finds processes writing a file; nil when there is no /proc.
	writers writerFinder
	// procPath maps a path to the one /proc shows (symbolic links in the
	// folder's path resolved); nil: the same.
	procPath func(abs string) string
	log      *slog.Logger
	gauge    *atomic.Int64

	files map[string]*pending
	queue pendingQueue
}

var errNotRegular = errors.New("not a regular file")

// pending is a file waiting to be complete.
type pending struct {
	abs, rel string
	proc     string
	fi       fs.FileInfo // last stat; nil before the first
	id       state.Identity
	seen     time.Time // when id was first seen, or the last write event
	quiet    time.Time // since when it is known unchanged: seen, or an older trusted mtime
	writing  bool      // IN_MODIFY without IN_CLOSE_WRITE yet
	closed   bool      // IN_CLOSE_WRITE seen after the last IN_MODIFY
	procAt   time.Time // the last /proc scan while it was pending
	procBusy bool      // that scan found a writer
	due      time.Time
	index    int // in queue; -1 when not queued
}

// touchKind is what an event says of a file.
type touchKind uint8

const (
	touchOther      touchKind = iota // created, moved in, chmod: look again now
	touchWrite                       // written (fsnotify): wait settle again
	touchModify                      // written (own inotify): in progress until closed
	touchCloseWrite                  // closed after writing (own inotify)
)

func newSettler(settle time.Duration, stat func(string) (fs.FileInfo, error), log *slog.Logger, gauge *atomic.Int64) *settler {
	if gauge == nil {
		gauge = new(atomic.Int64)
	}
	return &settler{settle: settle, stat: stat, log: log, gauge: gauge, files: map[string]*pending{}}
}

// recheck is how soon a file with a writer is looked at again.
func (s *settler) recheck() time.Duration {
	return max(procGap, min(s.settle, 5*time.Second))
}

func (s *settler) get(abs, rel string) *pending {
	if p := s.files[abs]; p != nil {
		return p
	}
	p := &pending{abs: abs, rel: rel, proc: abs, index: -1}
	if s.procPath != nil {
		p.proc = s.procPath(abs)
	}
	s.files[abs] = p
	s.gauge.Add(1)
	return p
}

// observe takes a file found by a walk or a poll, with its stat.
func (s *settler) observe(abs, rel string, fi fs.FileInfo, now time.Time) {
	p := s.get(abs, rel)
	if s.update(p, fi, now) || p.index < 0 {
		s.schedule(p, later(now, p.quiet.Add(s.settle)))
	}
}

// touch takes an event about a file. Events only schedule a look: many
// events on one path in a row cost one stat when they stop.
func (s *settler) touch(abs, rel string, kind touchKind, now time.Time) {
	p := s.get(abs, rel)
	switch kind {
	case touchWrite, touchModify:
		// Only our own instance sets and clears the flag: its events are
		// in order, fsnotify's may come before or after them.
		p.writing = p.writing || kind == touchModify
		p.closed = p.closed && kind != touchModify
		p.seen, p.quiet = now, now
		s.schedule(p, now.Add(s.settle))
	case touchCloseWrite:
		p.writing, p.closed = false, true
		s.schedule(p, now)
	default:
		s.schedule(p, now)
	}
}

// update records a stat; it reports whether the file changed (or was not
// stat'ed before).
func (s *settler) update(p *pending, fi fs.FileInfo, now time.Time) bool {
	id := identityOf(fi)
	if p.fi != nil && id == p.id {
		p.fi = fi
		return false
	}
	p.fi, p.id = fi, id
	p.seen, p.quiet = now, now
	if mt := fi.ModTime(); s.trustMtime && mt.Before(now) {
		p.quiet = mt
	}
	return true
}

// forget drops a file that was removed or renamed away.
func (s *settler) forget(abs string) {
	if p := s.files[abs]; p != nil {
		s.remove(p)
	}
}

// forgetUnder drops the files under a removed directory.
func (s *settler) forgetUnder(dir string) {
	prefix := dir + "/"
	for abs, p := range s.files {
		if strings.HasPrefix(abs, prefix) {
			s.remove(p)
		}
	}
}

// clearWriting forgets the inotify write flags: after a fallback to
// polling no IN_CLOSE_WRITE will come.
func (s *settler) clearWriting() {
	for _, p := range s.files {
		p.writing, p.closed = false, false
	}
}

// close drops every file (the folder stops).
func (s *settler) close() {
	s.gauge.Add(-int64(len(s.files)))
	s.files = map[string]*pending{}
	s.queue = nil
}

// next returns when check has work.
func (s *settler) next() (time.Time, bool) {
	if len(s.queue) == 0 {
		return time.Time{}, false
	}
	return s.queue[0].due, true
}

// check looks at every file due by now and returns those complete; they
// are no longer pending.
func (s *settler) check(now time.Time) []file {
	var ready, need []*pending
	for len(s.queue) > 0 && !s.queue[0].due.After(now) {
		p := heap.Pop(&s.queue).(*pending)
		fi, err := s.stat(p.abs)
		if err == nil && !fi.Mode().IsRegular() {
			err = errNotRegular
		}
		if err != nil {
			s.drop(p, err)
			continue
		}
		s.update(p, fi, now)
		if stable := p.quiet.Add(s.settle); now.Before(stable) {
			s.schedule(p, stable)
			continue
		}
		if p.writing {
			s.log.Debug("still being written (no close after the last write)", "file", p.abs)
			s.schedule(p, now.Add(s.recheck()))
			continue
		}
		// A writer seen closing the file needs no /proc scan: that
		// would only add up to procGap to the wait.
		if s.writers != nil && !p.closed && !s.procClear(p, now) {
			need = append(need, p)
			continue
		}
		ready = append(ready, p)
	}
	if len(need) > 0 {
		ready = append(ready, s.scanWriters(need, now)...)
	}
	out := make([]file, 0, len(ready))
	for _, p := range ready {
		delete(s.files, p.abs)
		s.gauge.Add(-1)
		out = append(out, file{abs: p.abs, rel: p.rel, info: p.fi})
	}
	return out
}

// procClear reports whether a fresh enough /proc scan found no writer.
func (s *settler) procClear(p *pending, now time.Time) bool {
	return !p.procAt.IsZero() && !p.procAt.Before(p.seen) && now.Sub(p.procAt) <= procGap && !p.procBusy
}

// scanWriters asks /proc about every pending file at once, and returns
// those of need that have no writer.
func (s *settler) scanWriters(need []*pending, now time.Time) []*pending {
	paths := make(map[string]bool, len(s.files))
	for _, p := range s.files {
		paths[p.proc] = true
	}
	busy, wait, ok := s.writers.openForWrite(paths)
	switch {
	case !ok:
		return need // no /proc: settle alone
	case wait > 0:
		for _, p := range need {
			s.schedule(p, now.Add(wait))
		}
		return nil
	}
	for _, p := range s.files {
		p.procAt, p.procBusy = now, busy[p.proc]
	}
	var ready []*pending
	for _, p := range need {
		if p.procBusy {
			s.log.Debug("open for writing by a process; waiting", "file", p.abs)
			s.schedule(p, now.Add(s.recheck()))
			continue
		}
		// A writer may have written and closed between the stat and the
		// scan: the scan vouches only for a file still the same after it.
		fi, err := s.stat(p.abs)
		if err == nil && !fi.Mode().IsRegular() {
			err = errNotRegular
		}
		switch {
		case err != nil:
			s.drop(p, err)
		case s.update(p, fi, now):
			s.schedule(p, later(now, p.quiet.Add(s.settle)))
		default:
			ready = append(ready, p)
		}
	}
	return ready
}

func (s *settler) drop(p *pending, err error) {
	var le *confine.LinkError
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) || errors.As(err, &le) {
		s.log.Debug("gone before it was complete; forgotten", "file", p.abs)
	} else {
		s.log.Warn("cannot stat file; forgotten until it changes or the next rescan", "file", p.abs, "err", err)
	}
	s.remove(p)
}

func (s *settler) remove(p *pending) {
	if p.index >= 0 {
		heap.Remove(&s.queue, p.index)
	}
	delete(s.files, p.abs)
	s.gauge.Add(-1)
}

func (s *settler) schedule(p *pending, at time.Time) {
	p.due = at
	if p.index >= 0 {
		heap.Fix(&s.queue, p.index)
		return
	}
	heap.Push(&s.queue, p)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// pendingQueue is a min-heap of pending files by due time.
type pendingQueue []*pending

func (q pendingQueue) Len() int           { return len(q) }
func (q pendingQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q pendingQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *pendingQueue) Push(x any) {
	p := x.(*pending)
	p.index = len(*q)
	*q = append(*q, p)
}
func (q *pendingQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	p.index = -1
	*q = old[:len(old)-1]
	return p
}
