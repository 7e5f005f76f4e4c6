package watcher

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/confine"
)

// source is one folder of the daemon. One goroutine (loop) owns its
// settler and takes events, walk results and timers; another (walks) lists
// the tree; files found complete go to the Watch's shared hashers.
type source struct {
	w      *Watch
	f      config.Folder
	tree   confine.Tree // every stat of the folder's files goes through it
	filter *Filter
	log    *slog.Logger
	ctx    context.Context // the source's lifetime, for again
	set    *settler
	retry  chan file // complete files that changed while hashed
	prefix string    // f.Path + "/"
}

func newSource(w *Watch, f config.Folder) *source {
	s := &source{w: w, f: f, tree: folderTree(&f), filter: NewFilter(f), log: w.log.With("source", f.Name), retry: make(chan file, 16)}
	s.prefix = f.Path + "/"
	if strings.HasSuffix(f.Path, "/") {
		s.prefix = f.Path
	}
	return s
}

// again puts back a file that changed while it was hashed. Hashers call
// it; it blocks until the loop takes the file or the source stops.
func (s *source) again(f file) {
	select {
	case s.retry <- f:
	case <-s.ctx.Done():
	}
}

// rel returns the path of abs relative to the folder, slash separated.
func (s *source) rel(abs string) (string, bool) {
	if abs == s.f.Path {
		return "", true
	}
	r, ok := strings.CutPrefix(abs, s.prefix)
	return filepath.ToSlash(r), ok
}

// run watches the folder until ctx is done, in events mode until that
// fails and then by polling.
func (s *source) run(ctx context.Context) {
	s.ctx = ctx
	mode, period := chooseMode(&s.f)
	s.set = newSettler(s.f.Settle, s.tree.Stat, s.log, &s.w.h.stats.Settling)
	s.set.writers = s.w.procs
	s.set.trustMtime = !isNetwork(s.f.Path)
	if real, err := filepath.EvalSymlinks(s.f.Path); err == nil && real != s.f.Path {
		root := s.f.Path
		s.set.procPath = func(abs string) string { return real + strings.TrimPrefix(abs, root) }
	}
	defer s.set.close()
	s.w.setMode(s.f.Name, mode)
	args := []any{"path", s.f.Path, "mode", mode.Kind, "reason", mode.Reason, "settle", s.f.Settle, "rescan_interval", s.rescanEvery()}
	if mode.Kind == ModePoll {
		args = append(args, "poll_interval", period)
	}
	s.log.Info("watching folder", args...)
	for {
		fb := s.loop(ctx, mode.Kind == ModeEvents, period)
		if fb == nil {
			return
		}
		mode = Mode{Kind: ModePoll, Reason: "fallback: " + fb.reason}
		s.w.setMode(s.f.Name, mode)
		s.log.Warn("cannot watch folder with inotify; polling it instead", "path", s.f.Path, "cause", fb.reason, "err", fb.err, "hint", fb.hint, "poll_interval", period)
		s.set.clearWriting()
	}
}

func (s *source) rescanEvery() time.Duration {
	if s.f.RescanInterval > 0 {
		return s.f.RescanInterval
	}
	return config.DefaultRescanInterval
}

// loop runs one mode until ctx is done (nil) or events mode fails.
func (s *source) loop(ctx context.Context, events bool, period time.Duration) *fallbackError {
	var ev *eventWatch
	if events {
		var fb *fallbackError
		if ev, fb = newEventWatch(s.w.hooks.addWatch); fb != nil {
			return fb
		}
		defer ev.close() // last: the walks add watches until they stop
		if hook := s.w.hooks.events; hook != nil {
			hook(s.f.Name, ev)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	walks := newWalks(s, ev)
	go walks.run(ctx)
	defer func() {
		cancel()
		walks.wait()
	}()
	walks.request(jobRescan, "", "")

	var pollC <-chan time.Time
	if !events {
		t := time.NewTicker(period)
		defer t.Stop()
		pollC = t.C
	}
	rescan := time.NewTicker(s.rescanEvery())
	defer rescan.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var armed time.Time
	var out []file // complete, waiting for a hasher
	for {
		var send chan<- job
		var head job
		if len(out) > 0 {
			send, head = s.w.pipe, job{f: out[0], src: s}
		}
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ev.fsEvents():
			if !ok {
				return stopped()
			}
			s.onEvent(ev, walks, e)
		case err, ok := <-ev.fsErrors():
			if !ok {
				return stopped()
			}
			if fb := s.onError(err); fb != nil {
				return fb
			}
		case we, ok := <-ev.writes():
			if !ok {
				return stopped()
			}
			if we.overflow {
				return overflow(nil)
			}
			s.onWrite(we)
		case o := <-walks.obs:
			s.set.observe(o.abs, o.rel, o.info, time.Now())
		case fb := <-walks.fail:
			return fb
		case <-pollC:
			walks.request(jobPoll, "", "")
		case <-rescan.C:
			walks.request(jobRescan, "", "")
		case f := <-s.retry:
			s.set.touch(f.abs, f.rel, touchWrite, time.Now())
		case <-timer.C:
			armed = time.Time{}
			out = s.complete(out, s.set.check(time.Now()))
		case send <- head:
			out[0] = file{}
			out = out[1:]
		}
		if at, ok := s.set.next(); ok && (armed.IsZero() || at.Before(armed)) {
			timer.Reset(time.Until(at))
			armed = at
		}
	}
}

// complete queues the files found complete for hashing, after the size
// filter on their last stat.
func (s *source) complete(out, ready []file) []file {
	for _, f := range ready {
		f.folder = &s.f
		if why := s.filter.size(f.info.Size()); why != SkipNone {
			s.w.h.skip(f, why)
			continue
		}
		s.log.Debug("complete; hashing", "file", f.abs)
		out = append(out, f)
	}
	return out
}

// onEvent handles an fsnotify event (debug-logged, one per event).
func (s *source) onEvent(ev *eventWatch, walks *walks, e fsnotify.Event) {
	rel, ok := s.rel(e.Name)
	if !ok {
		return
	}
	s.log.Debug("file event", "op", e.Op.String(), "file", e.Name)
	now := time.Now()
	if e.Has(fsnotify.Remove) || e.Has(fsnotify.Rename) {
		if ev.removeUnder(e.Name) {
			s.log.Debug("directory gone; its watches dropped", "path", e.Name)
			s.set.forgetUnder(e.Name)
		}
		s.set.forget(e.Name)
	}
	switch {
	case e.Has(fsnotify.Create):
		fi, err := s.tree.Stat(e.Name)
		var le *confine.LinkError
		if errors.As(err, &le) {
			walks.w.linkSkipped(e.Name, le)
			return
		}
		if err != nil {
			return // gone already, or a broken link
		}
		if fi.IsDir() {
			if rel != "" && walks.allowDir(e.Name, rel) {
				walks.request(jobDir, e.Name, rel)
			}
			return
		}
		if fi.Mode().IsRegular() && s.filter.name(rel) == SkipNone {
			s.set.touch(e.Name, rel, touchOther, now)
		}
	case e.Has(fsnotify.Write):
		if s.filter.name(rel) == SkipNone {
			s.set.touch(e.Name, rel, touchWrite, now)
		}
	case e.Has(fsnotify.Chmod):
		if s.filter.name(rel) == SkipNone {
			s.set.touch(e.Name, rel, touchOther, now)
		}
	}
}

// onWrite handles an event of our own inotify instance.
func (s *source) onWrite(we writeEvent) {
	rel, ok := s.rel(we.path)
	if !ok || s.filter.name(rel) != SkipNone {
		return
	}
	s.log.Debug("write event", "modify", we.modify, "close_write", we.close, "file", we.path)
	now := time.Now()
	if we.modify {
		s.set.touch(we.path, rel, touchModify, now)
	}
	if we.close {
		s.set.touch(we.path, rel, touchCloseWrite, now)
	}
}

// onError handles an fsnotify error: an overflow means events were lost.
func (s *source) onError(err error) *fallbackError {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		return overflow(err)
	}
	s.log.Debug("inotify error", "err", err)
	return nil
}
