// Package pipeline is what runs between the state and the sources: the
// folder watch (or one-shot scan) and the mailbox accounts feed the state;
// the upload pool takes the pending items from it; the after-actions runner
// moves or deletes the files of settled items; the control socket answers
// status, failed, retry, report and the state commands; and, in daemon
// mode, systemd notifications, /metrics, /healthz, /webhook and reload.
//
// cvfeed run starts it in Daemon mode and calls Run; cvfeed backfill
// starts it in OneShot mode (one pass over the sources) and waits on Drain.
// One code path decides for both what is accepted, what an outcome leads
// to and how the parts stop:
//
//	Start: state (bound to the API, interrupted uploads recovered) → control
//	       socket → ops (daemon) → API → spool cleaned → actions, pool, sources
//	Stop:  sources → pool (within shutdown_timeout) → actions (and, one-shot,
//	       the due ones and the mailboxes' now) → control → ops → API → state
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/control"
	"github.com/cvfeed/cvfeed/fileaction"
	"github.com/cvfeed/cvfeed/imapsrc"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/uploader"
	"github.com/cvfeed/cvfeed/watcher"
)

// Mode is how the sources run.
type Mode int

const (
	// Daemon watches the folders and mailboxes until stopped (cvfeed run).
	Daemon Mode = iota
	// OneShot reads what the sources hold once (cvfeed backfill).
	OneShot
)

// Options configures a pipeline. Logger and Version are required.
type Options struct {
	Mode    Mode
	Logger  *slog.Logger
	Version string
	// With Select, Folders and Mailboxes are the sources of a one-shot
	// pass (backfill -only); without, it reads every source of the
	// config. Daemon mode runs every source of the config.
	Select    bool
	Folders   []config.Folder
	Mailboxes []config.Mailbox
}

// Pipeline is a running cvfeed: state, API, pool, sources, after-actions.
type Pipeline struct {
	mode    Mode
	log     *slog.Logger
	version string
	store   *state.Store
	actions *fileaction.Runner
	// acting is the set of folders whose files have after-actions (see
	// setActing); reload swaps it.
	acting atomic.Pointer[map[string]bool]
	pool   *uploader.Pool
	ops    *opsKit

	// cfg and api change on reload (only the Run goroutine writes them).
	mu  sync.Mutex
	cfg *config.Config
	api *API

	// Daemon mode: the folder watch and the mailbox accounts.
	watch    *watcher.Watch
	accounts map[string]*account
	accMu    sync.Mutex

	// OneShot mode: the scanner, the accounts and what they select.
	scanner   *watcher.Scanner
	folders   []config.Folder
	mailboxes []config.Mailbox
	mailErrs  atomic.Int64
	down      map[string]bool // source ids of the folders down at start
	accept    func(string) bool
	ahead     atomic.Int64 // files claimed since the queue was last counted (waitQueue)
	queue     queueLimits

	spool     string // SpoolDir, cleaned
	mailStats *imapsrc.Stats
	srcCtx    context.Context
	// settled is signalled (never blocking) after each outcome, and when
	// the sources' pass ends: Drain looks again then.
	settled chan struct{}
	counts  struct{ uploaded, failed atomic.Int64 }

	sources, uploads, acts, ctl, opsRun part
	srcErr, poolErr                     error
	summary                             Summary
}

// part is a goroutine of the pipeline with its own context: stop cancels
// it, done is closed when it returned.
type part struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs run in a goroutine with a context of its own (parent's
// values, not its cancellation), which it returns.
func (p *part) start(parent context.Context, run func(context.Context)) context.Context {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	p.ctx, p.cancel, p.done = ctx, cancel, make(chan struct{})
	go func() { defer close(p.done); run(ctx) }()
	return ctx
}

// stop cancels the part and waits for it; a part never started is a no-op.
func (p *part) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
}

// StatePath is the state file of a config.
func StatePath(cfg *config.Config) string { return filepath.Join(cfg.StateDir, state.FileName) }

// SpoolDir is where mailbox sources spool CV parts.
func SpoolDir(stateDir string) string { return filepath.Join(stateDir, "spool") }

// Start opens the state, binds it to the config's API, and starts every
// part. An error (a damaged or foreign state, a taken port, a bad API
// setting) leaves nothing running.
func Start(ctx context.Context, cfg *config.Config, o Options) (*Pipeline, error) {
	log := o.Logger
	store, err := state.Open(StatePath(cfg), &state.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	if err := BindAPI(store, cfg, log); err != nil {
		store.Close()
		return nil, err
	}
	if n, err := store.Recover(); err != nil {
		store.Close()
		return nil, err
	} else if n > 0 {
		log.Info("uploads interrupted by the last stop will be confirmed with the API before being sent again", "items", n)
	}
	forgetUploaded(ctx, store, cfg, time.Now(), log)
	p := &Pipeline{mode: o.Mode, log: log, version: o.Version, store: store, cfg: cfg,
		accounts: map[string]*account{}, mailStats: new(imapsrc.Stats), settled: make(chan struct{}, 1),
		folders: cfg.Folders, mailboxes: cfg.Mailboxes, spool: filepath.Clean(SpoolDir(cfg.StateDir))}
	if o.Mode == OneShot && o.Select {
		p.folders, p.mailboxes = o.Folders, o.Mailboxes
	}
	// status, failed, retry, report and the state commands ask through
	// the control socket while this process holds the state: it answers
	// from here on, not only once the API has been probed (up to 30 s).
	p.ctl.start(ctx, func(ctx context.Context) {
		if err := control.Serve(ctx, cfg.StateDir, control.Local{Store: store}, log); err != nil {
			log.Warn("control socket", "err", err)
		}
	})
	fail := func(err error) (*Pipeline, error) {
		p.ctl.stop()
		store.Close()
		return nil, err
	}
	var observe func(int, error)
	if o.Mode == Daemon {
		if p.ops, err = newOpsKit(cfg, store, log, o.Version); err != nil {
			return fail(err)
		}
		observe = p.ops.observe
	}
	if p.api, err = OpenAPI(cfg, log, observe, "cvfeed/"+o.Version); err != nil {
		return fail(err)
	}
	cleanSpool(store, SpoolDir(cfg.StateDir), time.Now(), log)

	p.actions = fileaction.New(store, log)
	p.actions.SetFolders(cfg.Folders)
	p.setActing(cfg.Folders)
	p.actions.SetFolderCheck(func(f config.Folder) error { return watcher.CheckFolder(store, f) })
	if o.Mode == OneShot {
		// The items of a folder that is down (a share that did not
		// mount) stay pending: their files are not gone.
		p.down = map[string]bool{}
		for _, f := range p.folders {
			if watcher.CheckFolder(store, f) != nil {
				p.down[f.SourceID] = true
			}
		}
	}
	p.accept = p.acceptUp(cfg.Folders, acceptSources(sources(p.folders, p.mailboxes)))
	p.pool = uploader.NewPool(uploader.PoolConfig{
		Workers:     cfg.API.Workers,
		RateLimit:   cfg.API.RateLimit,
		MaxAttempts: cfg.API.MaxAttempts,
		Backoff:     uploader.Backoff{Initial: cfg.API.RetryInitial, Max: cfg.API.RetryMax},
		Accept:      p.accept,
		Metadata:    metadataFunc(sources(cfg.Folders, cfg.Mailboxes)),
		SpoolDir:    SpoolDir(cfg.StateDir),
		StopOnAuth:  o.Mode == OneShot,
		ReadAccess:  ProbeRead(ctx, p.api.Client, log),
		Grace:       cfg.ShutdownTimeout,
		Logger:      log,
		OnResult:    p.onResult,
	}, store, p.api.Client)

	p.acts.start(ctx, func(ctx context.Context) { _ = p.actions.Run(ctx) })
	p.uploads.start(ctx, func(ctx context.Context) { p.poolErr = p.pool.Run(ctx) })
	if o.Mode == Daemon {
		p.watch = watcher.NewWatch(claims{store, p}, watcher.WatchOptions{Logger: log, OnHealth: p.folderHealth})
		// The accounts' contexts derive from the watch's: stopping the
		// sources stops both.
		p.srcCtx = p.sources.start(ctx, func(ctx context.Context) { p.srcErr = p.watch.Run(ctx, cfg.Folders) })
		p.setMailboxes(cfg.Mailboxes, false)
	} else {
		p.scanner = watcher.NewScanner(claims{store, p}, watcher.ScannerOptions{Logger: log})
		p.sources.start(ctx, p.onePass)
	}
	if p.ops != nil {
		p.opsRun.start(ctx, p.ops.run)
		p.ops.beat.Beat()
		p.ops.notify.Ready()
	}
	if o.Mode == Daemon {
		log.Info("cvfeed running", "folders", len(cfg.Folders), "mailboxes", len(cfg.Mailboxes), "workers", cfg.API.Workers, "state", store.Path())
	}
	return p, nil
}

// onResult is the pool's: the audit line, counts, metrics, after-actions,
// Drain.
func (p *Pipeline) onResult(it state.Item, r state.Result, took time.Duration) {
	switch r.Outcome {
	case state.Done:
		p.counts.uploaded.Add(1)
		p.logUploaded(it, r)
	case state.Fail:
		p.counts.failed.Add(1)
	}
	if p.ops != nil {
		p.ops.uploaded(it, r, took)
	}
	if r.Outcome == state.Done || r.Outcome == state.Fail {
		if (*p.acting.Load())[it.Source] {
			p.actions.Notify(r.Key)
		}
		p.notifyAccounts()
	}
	p.wake()
}

// setActing records which folders have after-actions (a move or delete
// after the upload, or a failed_dir): only their items are worth a look
// for actions once settled. An item of any other source has none, or
// (a folder whose config dropped its actions since the item was claimed)
// has one for the runner's sweep, which follows the config of the day as
// a notification would: not looking saves a read transaction per CV.
func (p *Pipeline) setActing(folders []config.Folder) {
	m := make(map[string]bool, len(folders))
	for _, f := range folders {
		m[f.Name] = f.AfterUpload != config.AfterKeep || f.FailedDir != ""
	}
	p.acting.Store(&m)
}

// logUploaded is the INFO line of an uploaded CV, for whoever is asked
// whether a candidate's CV went in: its source, its file (or mail), size,
// profile_reference and the API's file_id. (Failures have their ERROR line
// from the pool, duplicates and skipped files their INFO line from the
// sources.)
func (p *Pipeline) logUploaded(it state.Item, r state.Result) {
	if !p.log.Enabled(context.Background(), slog.LevelInfo) {
		return // its arguments cost more than the check, once per CV
	}
	where := []any{"file", it.Path}
	if strings.HasPrefix(it.Path, p.spool+string(filepath.Separator)) {
		where = []any{"mail", it.Origin, "name", it.FileName}
	}
	p.log.Info("uploaded", append([]any{"source", it.Source}, append(where,
		"size", it.Size, "reference", uploader.ReferenceFor(it.SHA256), "file_id", r.FileID)...)...)
}

func (p *Pipeline) wake() {
	select {
	case p.settled <- struct{}{}:
	default:
	}
}

// onePass reads the selected folders and mailboxes at the same time; a
// mailbox that cannot be read is logged and counted, the others go on.
func (p *Pipeline) onePass(ctx context.Context) {
	defer p.wake()
	var wg sync.WaitGroup
	for _, m := range p.mailboxes {
		acc := p.newAccount(m)
		wg.Go(func() {
			if err := acc.Backfill(ctx); err != nil && ctx.Err() == nil {
				p.mailErrs.Add(1)
				p.log.Error("cannot read mailbox", "source", m.Name, "err", err)
			}
		})
		p.accMu.Lock()
		p.accounts[m.Name] = &account{cfg: m, acc: acc}
		p.accMu.Unlock()
	}
	err := p.scanner.Scan(ctx, p.folders)
	wg.Wait()
	if !errors.Is(err, context.Canceled) {
		p.srcErr = err
	}
}

// Drain waits, in one-shot mode, until the sources' pass is over and
// nothing is pending or in flight: woken by each outcome, never polling.
// It returns nil then, the pool's error if it stopped (an *AuthError for
// a key the API refuses), or ctx's error.
func (p *Pipeline) Drain(ctx context.Context) error {
	select {
	case <-p.sources.done:
	case <-p.uploads.done:
		return p.poolErr
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		if p.pool.InFlight() == 0 {
			n, err := p.store.Pending(p.accept)
			if err != nil {
				p.log.Error("cannot read the queue", "err", err)
			} else if n == 0 && p.pool.InFlight() == 0 {
				return nil
			}
		}
		select {
		case <-p.settled:
		case <-p.uploads.done:
			return p.poolErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stop ends the sources, then the uploads within shutdown_timeout, then
// the after-actions (in one-shot mode: every due one, files and mails),
// and closes the state last.
func (p *Pipeline) Stop() {
	start := time.Now()
	if p.ops != nil {
		p.ops.notify.Stopping()
	}
	p.sources.stop()
	if p.srcErr != nil && p.mode == Daemon {
		p.log.Error("folder watch", "err", p.srcErr)
	}
	if p.mode == Daemon {
		p.setMailboxes(nil, false) // stops and waits for every account
	}
	p.uploads.stop()
	if p.poolErr != nil && p.mode == Daemon {
		p.log.Error("upload pool", "err", p.poolErr)
	}
	p.acts.stop()
	if p.mode == OneShot {
		// The after-actions of what was uploaded (and of duplicates of
		// CVs uploaded before) are done before the summary.
		p.actions.Sweep()
		p.accMu.Lock()
		for name, a := range p.accounts {
			if err := a.acc.ActionsNow(context.Background()); err != nil {
				p.log.Error("cannot apply the after-actions of mailbox", "source", name, "err", err)
			}
		}
		p.accMu.Unlock()
		cleanSpool(p.store, SpoolDir(p.cfg.StateDir), time.Now(), p.log)
		p.summary = p.makeSummary()
	}
	p.ctl.stop()
	p.opsRun.stop()
	p.api.Close()
	if err := p.store.Close(); err != nil {
		p.log.Error("close state", "err", err)
	}
	if p.mode == Daemon {
		p.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	}
}

// Run is daemon mode's loop: it reloads the config on each value of
// reload, cleans the spool, feeds the watchdog, and returns nil when ctx
// ends, or an error when the watch or the pool stopped by itself. Stop
// follows.
func (p *Pipeline) Run(ctx context.Context, reload <-chan os.Signal) error {
	gc := time.NewTicker(spoolMinAge)
	defer gc.Stop()
	retain := time.NewTicker(retainEvery)
	defer retain.Stop()
	// The sweeps run beside the loop; Run returns once the one running
	// stopped (Stop then closes the state).
	var sweeps sweeper
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer func() {
		stopSweep()
		sweeps.wait()
	}()
	// The tick feeds the watchdog: if this loop hangs, systemd restarts
	// cvfeed.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	p.ops.tick(p)
	for {
		select {
		case <-tick.C:
			p.ops.tick(p)
		case <-gc.C:
			cleanSpool(p.store, SpoolDir(p.cfg.StateDir), time.Now(), p.log)
		case <-retain.C:
			cfg := p.config()
			if !sweeps.start(sweepCtx, func(ctx context.Context) { forgetUploaded(ctx, p.store, cfg, time.Now(), p.log) }) {
				p.log.Debug("the last sweep of uploaded items older than state.keep_uploaded still runs: this one is skipped")
			}
		case <-ctx.Done():
			p.log.Info("stopping: no new files are taken; uploads in flight may finish", "timeout", p.config().ShutdownTimeout)
			return nil
		case <-reload:
			p.ops.notify.Reloading()
			p.reload(ctx)
			p.ops.notify.Ready()
			p.ops.tick(p)
		case <-p.sources.done:
			err := fmt.Errorf("the folder watch stopped: %w", p.srcErr)
			p.srcErr = nil
			p.log.Error("the folder watch stopped", "err", err)
			return err
		case <-p.uploads.done:
			err := fmt.Errorf("the upload pool stopped: %w", p.poolErr)
			p.poolErr = nil
			p.log.Error("the upload pool stopped", "err", err)
			return err
		}
	}
}

func (p *Pipeline) config() *config.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}
