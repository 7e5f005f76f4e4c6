package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// Watch runs every folder source of the daemon. For each folder:
//
//   - Events mode (inotify through fsnotify, on every directory, since
//     fsnotify is not recursive; plus an inotify instance of cvfeed's own
//     for IN_MODIFY and IN_CLOSE_WRITE) sees at once what this machine's
//     kernel does in the folder. A new or moved-in directory is watched,
//     then listed, so no file created meanwhile is missed. An overflow of
//     the event queue or a watch that cannot be added (the
//     fs.inotify.max_user_watches limit) is logged once and the folder
//     falls back to polling.
//   - Poll mode (watch = "poll", poll_interval > 0, or a network file
//     system under watch = "auto") stats the tree every poll_interval (10s
//     by default) and only looks further at a file whose identity changed
//     since the last poll and is not the one state remembers. It sees what
//     any machine does, late.
//   - Either way a file is handed over only once complete: size and mtime
//     unchanged for settle, no write in progress as inotify shows it, and
//     no process of this machine holding it open for writing (/proc). A
//     writer on another machine of a network share is seen only through
//     settle. See settler for the details.
//   - A reconcile walk at start and every rescan_interval checks every file
//     against state (without reading an unchanged one) and feeds the same
//     stable-file check: what was dropped while cvfeed was down, or missed,
//     is taken.
//   - The folder's root is looked at every few seconds (see health.go):
//     while it is missing, unreadable or an empty mount point, the folder
//     is down and none of the above runs; when it is back, it starts again
//     with the reconcile walk.
//
// Complete files go to hashers shared by all folders, and their claims to
// state in batches (a transaction per 256 files or 50 ms).
type Watch struct {
	h       *handover
	log     *slog.Logger
	hashers int
	procs   writerFinder
	hooks   hooks
	// onHealth is told when a folder goes up or down (and its first look).
	onHealth func(folder string, err error)

	mu      sync.Mutex
	want    []config.Folder
	running map[string]*running
	modes   map[string]Mode
	reload  chan struct{}

	pipe chan job
}

// WatchOptions configures NewWatch. The zero value is usable.
type WatchOptions struct {
	Logger *slog.Logger
	// Stats receives the counts (default: a new Stats).
	Stats *Stats
	// Open replaces the open of files to hash, which is otherwise
	// confined to the file's folder (tests).
	Open func(string) (*os.File, error)
	// OnHealth, when set, is called when a folder is first looked at
	// and each time it goes down (err a *DownError) or comes back (nil).
	// It is called from the folder's goroutine and must not block.
	OnHealth func(folder string, err error)
}

// Mode says how a folder is watched.
type Mode struct {
	// Kind is ModeEvents or ModePoll.
	Kind string
	// Reason says why, for people: `watch = "poll"`, "poll_interval set",
	// "network file system (nfs)", "fallback: inotify watch limit reached
	// (fs.inotify.max_user_watches)", ...
	Reason string
}

// Values of Mode.Kind.
const (
	ModeEvents = "events"
	ModePoll   = "poll"
)

// hooks lets tests break and observe what cannot be broken from outside.
type hooks struct {
	// addWatch, when set, runs before each directory watch is added; an
	// error is taken as the kernel's.
	addWatch func(dir string) error
	// walked is called after each walk of a folder.
	walked func(folder string, kind jobKind, took time.Duration)
	// events is called when a folder's inotify side is set up.
	events func(folder string, ev *eventWatch)
	// healthEvery, when set, replaces how often folders are looked at.
	healthEvery time.Duration
	// looked is called after each look at a folder (nil: up).
	looked func(folder string, err error)
}

// job is a complete file handed over by a folder source.
type job struct {
	f   file
	src *source
}

// running is a started folder source.
type running struct {
	f      config.Folder
	health *folderHealth
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWatch returns a Watch. It does no I/O.
func NewWatch(store Store, o WatchOptions) *Watch {
	h := newHandover(store, o.Logger, o.Stats, o.Open)
	return &Watch{
		h: h, log: h.log, hashers: defaultHashers(), procs: newProcWriters(), onHealth: o.OnHealth,
		running: map[string]*running{}, modes: map[string]Mode{},
		reload: make(chan struct{}, 1), pipe: make(chan job, 256),
	}
}

// Stats returns the counters.
func (w *Watch) Stats() *Stats { return w.h.stats }

// Run watches folders until ctx is cancelled, and then returns nil once
// every goroutine it started has ended; what was hashed by then is
// claimed. It returns an error only when the state database fails a claim.
// Folders may change while it runs with SetFolders. Run is called once.
func (w *Watch) Run(ctx context.Context, folders []config.Folder) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var hashers sync.WaitGroup
	cands := make(chan state.Candidate, 256)
	for range w.hashers {
		hashers.Go(func() { w.hash(ctx, cands) })
	}
	// The claimer outlives ctx: it ends when the hashers are done and
	// cands is closed, so that nothing hashed is thrown away.
	claimed := make(chan error, 1)
	go func() { claimed <- w.h.claim(context.WithoutCancel(ctx), cands) }()
	w.SetFolders(folders)
	var err error
	claimDone := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-w.reload:
			w.apply(ctx)
		case err = <-claimed:
			claimDone = true
			err = fmt.Errorf("folder sources: %w", err)
			break loop
		}
	}
	w.stopAll()
	cancel()
	hashers.Wait()
	close(cands)
	if !claimDone {
		if cerr := <-claimed; cerr != nil {
			err = fmt.Errorf("folder sources: %w", cerr)
		}
	}
	return err
}

// SetFolders applies a reloaded config: it starts new folders, stops
// removed ones, restarts changed ones (any field of config.Folder) and
// leaves the others running. It may be called from any goroutine while
// Run runs; before Run, Run's own list replaces it.
func (w *Watch) SetFolders(folders []config.Folder) {
	w.mu.Lock()
	w.want = append([]config.Folder(nil), folders...)
	w.mu.Unlock()
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

// Modes says how each running folder is watched right now, by folder name.
func (w *Watch) Modes() map[string]Mode {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]Mode, len(w.modes))
	for k, v := range w.modes {
		m[k] = v
	}
	return m
}

func (w *Watch) setMode(name string, m Mode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.running[name]; ok {
		w.modes[name] = m
	}
}

// apply starts and stops folder sources to match the wanted list.
func (w *Watch) apply(ctx context.Context) {
	w.mu.Lock()
	want := map[string]config.Folder{}
	for _, f := range w.want {
		want[f.Name] = f
	}
	var stop []*running
	for name, r := range w.running {
		if f, ok := want[name]; !ok || !reflect.DeepEqual(f, r.f) {
			stop = append(stop, r)
			delete(w.running, name)
			delete(w.modes, name)
		}
	}
	w.mu.Unlock()
	for _, r := range stop {
		r.cancel()
		<-r.done
		w.log.Info("folder stopped", "source", r.f.Name, "path", r.f.Path)
	}
	for _, f := range w.want {
		w.mu.Lock()
		_, ok := w.running[f.Name]
		w.mu.Unlock()
		if !ok {
			w.start(ctx, f)
		}
	}
}

func (w *Watch) start(ctx context.Context, f config.Folder) {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{f: f, health: newFolderHealth(f, w.h.store, w.log), cancel: cancel, done: make(chan struct{})}
	w.mu.Lock()
	w.running[f.Name] = r
	w.mu.Unlock()
	go func() {
		defer close(r.done)
		w.supervise(ctx, r)
	}()
}

func (w *Watch) stopAll() {
	w.mu.Lock()
	all := w.running
	w.running = map[string]*running{}
	w.modes = map[string]Mode{}
	w.mu.Unlock()
	for _, r := range all {
		r.cancel()
	}
	for _, r := range all {
		<-r.done
	}
}

// hash reads the files handed over and sends their candidates to claim.
func (w *Watch) hash(ctx context.Context, cands chan<- state.Candidate) {
	buf := make([]byte, 128<<10)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.pipe:
			c, res := w.h.examine(j.f, buf)
			switch res {
			case hashed:
				select {
				case cands <- c:
				case <-ctx.Done():
					return
				}
			case changing:
				j.src.again(j.f)
			}
		}
	}
}
