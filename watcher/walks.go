package watcher

import (
	"context"
	"errors"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

// jobKind is a kind of walk.
type jobKind uint8

const (
	jobRescan jobKind = iota // the whole folder, every file checked against state
	jobPoll                  // the whole folder, only files changed since the last poll
	jobDir                   // a directory created or moved in (events mode)
)

func (k jobKind) String() string {
	return [...]string{"rescan", "poll", "new directory"}[k]
}

// walks lists a folder's tree in a goroutine of its own, so that a long
// walk never holds up events, and sends the files worth a look (new, or
// changed since state last saw them) to the source's loop. In events mode
// it adds the watch of each directory before listing it.
type walks struct {
	s  *source
	ev *eventWatch // nil when polling
	w  *walker

	mu     sync.Mutex // the requests, and prev during a walk
	rescan bool
	poll   bool
	dirs   []observation
	wake   chan struct{}

	obs  chan observation
	fail chan *fallbackError
	done chan struct{}
	ctx  context.Context // of run, for the sends of consider
	// rescanned is set after the first rescan, which is logged at Info.
	rescanned bool

	// prev is what the last poll saw: path hash → identity, so that a
	// poll neither reads state nor bothers the loop for an unchanged
	// file. A hash collision (2⁻⁶⁴) would hide a change until the next
	// rescan, which ignores prev.
	prev map[uint64]pollEntry
	gen  uint32
	seed maphash.Seed
}

type pollEntry struct {
	id  state.Identity
	gen uint32
}

// observation is a file found by a walk, or a directory to walk.
type observation struct {
	abs, rel string
	info     fs.FileInfo
}

func newWalks(s *source, ev *eventWatch) *walks {
	ws := &walks{
		s: s, ev: ev, w: newWalker(&s.f, s.w.log, s.w.h.stats), // the walker names the source
		wake: make(chan struct{}, 1), obs: make(chan observation, 64),
		fail: make(chan *fallbackError, 1), done: make(chan struct{}),
	}
	ws.w.reports = newReports()
	ws.w.workers = defaultHashers()
	if ev == nil {
		ws.prev = map[uint64]pollEntry{}
		ws.seed = maphash.MakeSeed()
	} else {
		ws.w.enterDir = ws.enterDir
	}
	return ws
}

// allowDir reports whether a directory (not the root) is walked and
// watched. It only reads the folder's config: any goroutine may call it.
func (ws *walks) allowDir(abs, rel string) bool { return ws.w.allowDir(abs, rel) }

// request asks for a walk; it never blocks. Rescans and polls coalesce.
func (ws *walks) request(kind jobKind, abs, rel string) {
	ws.mu.Lock()
	switch kind {
	case jobRescan:
		ws.rescan = true
	case jobPoll:
		ws.poll = true
	case jobDir:
		ws.dirs = append(ws.dirs, observation{abs: abs, rel: rel})
	}
	ws.mu.Unlock()
	select {
	case ws.wake <- struct{}{}:
	default:
	}
}

// take returns the next walk: new directories first (someone is waiting
// for those files), then a rescan, which makes a poll needless.
func (ws *walks) take() (jobKind, observation, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch {
	case len(ws.dirs) > 0:
		d := ws.dirs[0]
		ws.dirs[0] = observation{}
		ws.dirs = ws.dirs[1:]
		return jobDir, d, true
	case ws.rescan:
		ws.rescan, ws.poll = false, false
		return jobRescan, observation{}, true
	case ws.poll:
		ws.poll = false
		return jobPoll, observation{}, true
	}
	return 0, observation{}, false
}

// run does the walks asked for until ctx is done or a watch cannot be
// added (sent on fail).
func (ws *walks) run(ctx context.Context) {
	defer close(ws.done)
	ws.ctx = ctx
	for {
		select {
		case <-ctx.Done():
			return
		case <-ws.wake:
		}
		for {
			kind, d, ok := ws.take()
			if !ok {
				break
			}
			start := time.Now()
			err := ws.do(ctx, kind, d)
			if hook := ws.s.w.hooks.walked; hook != nil && ctx.Err() == nil {
				hook(ws.s.f.Name, kind, time.Since(start))
			}
			var fb *fallbackError
			if errors.As(err, &fb) {
				ws.fail <- fb
				return
			}
			if ctx.Err() != nil {
				return
			}
			level := slog.LevelDebug
			if kind == jobRescan && !ws.rescanned {
				ws.rescanned, level = true, slog.LevelInfo
			}
			ws.s.log.Log(ctx, level, "walk done", "kind", kind.String(), "path", d.abs, "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

func (ws *walks) wait() { <-ws.done }

func (ws *walks) do(ctx context.Context, kind jobKind, d observation) error {
	switch kind {
	case jobDir:
		if ws.ev.watching(d.abs) {
			return nil // listed already, by the walk of its parent
		}
		ws.w.files = ws.rescanFiles
		return ws.w.walkDir(ctx, d.abs, d.rel)
	case jobPoll:
		ws.w.files = ws.pollFiles
	default:
		ws.w.files = ws.rescanFiles
	}
	ws.mu.Lock()
	ws.gen++
	ws.mu.Unlock()
	ws.w.listed = nil
	if kind == jobRescan {
		ws.w.listed = newListedDirs(ws.s.w.h.store, &ws.s.f, ws.s.log)
	}
	err := ws.w.walkRoot(ctx)
	listed := ws.w.listed
	ws.w.listed = nil
	if kind == jobRescan && ws.w.complete {
		forgetMissing(ctx, ws.s.w.h.store, &ws.s.f, ws.s.log, listed)
	}
	if err == nil && ws.prev != nil {
		ws.mu.Lock()
		defer ws.mu.Unlock()
		for k, e := range ws.prev {
			if e.gen != ws.gen {
				delete(ws.prev, k)
			}
		}
	}
	return err
}

// enterDir adds the watch of a directory before it is listed.
func (ws *walks) enterDir(abs string, fi fs.FileInfo) (bool, error) {
	res, err := ws.ev.add(abs, fi)
	switch res {
	case addWatched:
		return true, nil
	case addAlias:
		ws.w.note("directory already watched through another path (symbolic link loop or second link); skipped", abs)
	case addRefused:
		ws.w.report(slog.LevelWarn, "cannot watch directory; skipped", abs, err)
	case addGone:
		return false, err // nil, or a *fallbackError
	}
	return false, nil
}

// pollFiles takes the files of a poll: only a change since the last poll
// is worth more than the stat already made.
func (ws *walks) pollFiles(batch []found) error {
	changed := batch[:0]
	ws.mu.Lock()
	for _, f := range batch {
		id := f.identity()
		k := maphash.String(ws.seed, f.abs)
		old, ok := ws.prev[k]
		ws.prev[k] = pollEntry{id: id, gen: ws.gen}
		if !ok || old.id != id {
			changed = append(changed, f)
		}
	}
	ws.mu.Unlock()
	return ws.consider(changed)
}

// rescanFiles takes the files of a rescan or of a new directory.
func (ws *walks) rescanFiles(batch []found) error {
	if ws.prev != nil {
		ws.mu.Lock()
		for _, f := range batch {
			ws.prev[maphash.String(ws.seed, f.abs)] = pollEntry{id: f.identity(), gen: ws.gen}
		}
		ws.mu.Unlock()
	}
	return ws.consider(batch)
}

// consider sends the loop the files that state does not know as they are
// now.
func (ws *walks) consider(batch []found) error {
	h := ws.s.w.h
	h.stats.Seen.Add(int64(len(batch)))
	keep := batch[:0]
	for _, f := range batch {
		if why := ws.w.filter.size(f.size()); why != SkipNone {
			h.skip(file{folder: &ws.s.f, abs: f.abs}, why)
			continue
		}
		keep = append(keep, f)
	}
	for _, f := range h.unknown(&ws.s.f, keep) {
		select {
		case ws.obs <- observation{abs: f.abs, rel: f.rel(), info: f.info()}:
		case <-ws.ctx.Done():
			return ws.ctx.Err()
		}
	}
	return nil
}
