package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/fileaction"
	"github.com/cvfeed/cvfeed/imapsrc"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/uploader"
	"github.com/cvfeed/cvfeed/watcher"
)

// cmdRun is the daemon: it watches every folder and uploads each new CV
// until SIGINT or SIGTERM, reloading the config on SIGHUP.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("run", stderr)
	if code, ok := c.start(args); !ok {
		return code
	}
	cfg, log := c.cfg, c.log
	// SIGHUP is caught from the start: a reload sent while starting is
	// not lost, and does not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := startDaemon(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	code := d.loop(ctx, hup)
	d.stop()
	return code
}

// daemon is a running cvfeed run: state, API, pool, folder watch and
// after-actions.
type daemon struct {
	log     *slog.Logger
	cfg     *config.Config
	store   *state.Store
	api     *api
	pool    *uploader.Pool
	watch   *watcher.Watch
	actions *fileaction.Runner
	ops     *opsKit
	stopOps context.CancelFunc
	opsDone chan struct{}

	// accounts are the mailbox sources, by name; only the loop goroutine
	// changes the map.
	accounts   map[string]*account
	accountsMu sync.Mutex
	mailStats  *imapsrc.Stats
	srcCtx     context.Context

	stopSources, stopPool, stopActions, stopControl context.CancelFunc
	controlDone                                     chan error
	watchDone, poolDone, actionsDone                chan error
}

func startDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) (*daemon, error) {
	store, err := state.Open(statePath(cfg), &state.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	if err := bindAPI(store, cfg, log); err != nil {
		store.Close()
		return nil, err
	}
	if n, err := store.Recover(); err != nil {
		store.Close()
		return nil, err
	} else if n > 0 {
		log.Info("uploads interrupted by the last stop will be confirmed with the API before being sent again", "items", n)
	}
	// status, failed, retry, report and the state commands ask through
	// the control socket while this process holds the state: it answers
	// from here on, not only once the API has been probed (up to 30 s).
	ctlCtx, stopControl := context.WithCancel(context.WithoutCancel(ctx))
	controlDone := make(chan error, 1)
	go func() { controlDone <- serveControl(ctlCtx, cfg.StateDir, localState{store}, log) }()
	fail := func(err error) (*daemon, error) {
		stopControl()
		<-controlDone
		store.Close()
		return nil, err
	}
	kit, err := newOpsKit(cfg, store, log)
	if err != nil {
		return fail(err)
	}
	a, err := openAPI(cfg, log, kit.observe)
	if err != nil {
		return fail(err)
	}
	cleanSpool(store, spoolDir(cfg.StateDir), time.Now(), log)
	d := &daemon{log: log, cfg: cfg, store: store, api: a, ops: kit, accounts: map[string]*account{}, mailStats: new(imapsrc.Stats),
		stopControl: stopControl, controlDone: controlDone}
	d.actions = fileaction.New(store, log)
	d.actions.SetFolders(cfg.Folders)
	d.actions.SetFolderCheck(func(f config.Folder) error { return watcher.CheckFolder(store, f) })
	d.pool = uploader.NewPool(uploader.PoolConfig{
		Workers:     cfg.API.Workers,
		RateLimit:   cfg.API.RateLimit,
		MaxAttempts: cfg.API.MaxAttempts,
		Backoff:     uploader.Backoff{Initial: cfg.API.RetryInitial, Max: cfg.API.RetryMax},
		Accept:      d.acceptUp(cfg.Folders, acceptSources(sources(cfg.Folders, cfg.Mailboxes))),
		Metadata:    metadataFunc(sources(cfg.Folders, cfg.Mailboxes)),
		SpoolDir:    spoolDir(cfg.StateDir),
		ReadAccess:  probeRead(ctx, a.client, log),
		Grace:       cfg.ShutdownTimeout,
		Logger:      log,
		OnResult: func(it state.Item, r state.Result, took time.Duration) {
			kit.uploaded(it, r, took)
			if r.Outcome == state.Done || r.Outcome == state.Fail {
				d.actions.Notify(r.Key)
				d.notifyAccounts()
			}
		},
	}, store, a.client)
	d.watch = watcher.NewWatch(store, watcher.WatchOptions{Logger: log, OnHealth: d.folderHealth})

	// Each part has its own context: a stop ends the sources first, then
	// the uploads (which get the grace period), then the after-actions.
	var srcCtx, poolCtx, actCtx context.Context
	srcCtx, d.stopSources = context.WithCancel(context.WithoutCancel(ctx))
	poolCtx, d.stopPool = context.WithCancel(context.WithoutCancel(ctx))
	actCtx, d.stopActions = context.WithCancel(context.WithoutCancel(ctx))
	d.watchDone, d.poolDone, d.actionsDone = make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { d.actionsDone <- d.actions.Run(actCtx) }()
	go func() { d.poolDone <- d.pool.Run(poolCtx) }()
	go func() { d.watchDone <- d.watch.Run(srcCtx, cfg.Folders) }()
	d.srcCtx = srcCtx
	d.setMailboxes(cfg.Mailboxes, false)
	var opsCtx context.Context
	opsCtx, d.stopOps = context.WithCancel(context.WithoutCancel(ctx))
	d.opsDone = make(chan struct{})
	go func() { defer close(d.opsDone); kit.run(opsCtx) }()
	kit.beat.Beat()
	kit.notify.Ready()
	log.Info("cvfeed running", "folders", len(cfg.Folders), "mailboxes", len(cfg.Mailboxes), "workers", cfg.API.Workers, "state", store.Path())
	return d, nil
}

// loop waits for a stop signal, reloads on SIGHUP, and returns the exit
// code.
func (d *daemon) loop(ctx context.Context, hup <-chan os.Signal) int {
	gc := time.NewTicker(spoolMinAge)
	defer gc.Stop()
	// The tick feeds the watchdog: if this loop hangs, systemd restarts
	// cvfeed.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	d.ops.tick(d)
	for {
		select {
		case <-tick.C:
			d.ops.tick(d)
		case <-gc.C:
			cleanSpool(d.store, spoolDir(d.cfg.StateDir), time.Now(), d.log)
		case <-ctx.Done():
			d.log.Info("stopping: no new files are taken; uploads in flight may finish", "timeout", d.cfg.ShutdownTimeout)
			return exitOK
		case <-hup:
			d.ops.notify.Reloading()
			d.reload(ctx)
			d.ops.notify.Ready()
			d.ops.tick(d)
		case err := <-d.watchDone:
			d.watchDone <- err // for stop
			d.log.Error("the folder watch stopped", "err", err)
			return exitFailed
		case err := <-d.poolDone:
			d.poolDone <- err
			d.log.Error("the upload pool stopped", "err", err)
			return exitFailed
		}
	}
}

// stop ends the sources, then the uploads within the grace period, then
// the after-actions, and closes the state last.
func (d *daemon) stop() {
	start := time.Now()
	d.ops.notify.Stopping()
	d.stopSources()
	if err := <-d.watchDone; err != nil {
		d.log.Error("folder watch", "err", err)
	}
	d.setMailboxes(nil, false) // stops and waits for every account
	d.stopPool()
	if err := <-d.poolDone; err != nil {
		d.log.Error("upload pool", "err", err)
	}
	d.stopActions()
	<-d.actionsDone
	d.stopControl()
	if err := <-d.controlDone; err != nil {
		d.log.Warn("control socket", "err", err)
	}
	d.stopOps()
	<-d.opsDone
	d.api.close()
	if err := d.store.Close(); err != nil {
		d.log.Error("close state", "err", err)
	}
	d.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
}

// reload applies the config file again. A config with errors is refused
// and the running one kept; what cannot change without a restart is said.
func (d *daemon) reload(ctx context.Context) {
	cfg, err := config.Load(d.cfg.File)
	if err != nil {
		d.log.Error("reload refused: the config has errors; the running config stays", "err", err)
		return
	}
	if cfg.StateDir != d.cfg.StateDir {
		d.log.Warn("reload: state_dir changes only with a restart", "running", d.cfg.StateDir)
		cfg.StateDir = d.cfg.StateDir
	}
	if cfg.API.Workers != d.cfg.API.Workers {
		d.log.Warn("reload: api.workers changes only with a restart", "running", d.cfg.API.Workers)
	}
	if apiIdentity(cfg) != apiIdentity(d.cfg) {
		// The state counts uploads for one API (cvfeed state rebind
		// declares a new address of the same one).
		if err := bindAPI(d.store, cfg, d.log); err != nil {
			d.log.Error("reload refused: the running config stays", "err", err)
			return
		}
	}
	a := d.api
	if cfg.API.URL != d.cfg.API.URL || cfg.API.Key != d.cfg.API.Key || cfg.API.Timeout != d.cfg.API.Timeout ||
		cfg.API.Flavor != d.cfg.API.Flavor || cfg.API.UserEmail != d.cfg.API.UserEmail {
		na, err := openAPI(cfg, d.log, d.ops.observe)
		if err != nil {
			d.log.Error("reload refused: cannot use the new API settings; the running config stays", "err", err)
			return
		}
		a = na
	}
	read := probeRead(ctx, a.client, d.log)
	srcs := sources(cfg.Folders, cfg.Mailboxes)
	d.pool.Reconfigure(a.client, d.acceptUp(cfg.Folders, acceptSources(srcs)), metadataFunc(srcs), cfg.API.RateLimit, read)
	if a != d.api {
		// In-flight uploads finish with the old client; its sandbox, if
		// any, is closed at stop with the new one's.
		old := d.api
		a.close, old.close = joinClose(a.close, old.close), func() {}
		d.api = a
	}
	d.api.files.set(cfg.Folders)
	d.watch.SetFolders(cfg.Folders)
	d.actions.SetFolders(cfg.Folders)
	var removed []string
	for _, s := range sources(d.cfg.Folders, d.cfg.Mailboxes) {
		if !slices.ContainsFunc(sources(cfg.Folders, cfg.Mailboxes), func(n source) bool { return n.name == s.name }) {
			removed = append(removed, s.name)
		}
	}
	d.setMailboxes(cfg.Mailboxes, true)
	d.ops.reload(cfg, removed)
	d.cfg = cfg
	d.log.Info("config reloaded", "folders", len(cfg.Folders), "mailboxes", len(cfg.Mailboxes))
}

func joinClose(a, b func()) func() { return func() { a(); b() } }

// account is a running mailbox source.
type account struct {
	cfg    config.Mailbox
	acc    *imapsrc.Account
	cancel context.CancelFunc
	done   chan struct{}
	// ended is set when Run returned by itself (a rejected login): a
	// reload starts it again even if its config did not change.
	ended atomic.Bool
}

// setMailboxes starts the mailboxes new to the config, stops the removed
// ones, and restarts the changed ones (and, on reload, those stopped by a
// rejected login: a reload is how an admin says "try again").
func (d *daemon) setMailboxes(mailboxes []config.Mailbox, reload bool) {
	want := map[string]config.Mailbox{}
	for _, m := range mailboxes {
		want[m.Name] = m
	}
	d.accountsMu.Lock()
	defer d.accountsMu.Unlock()
	for name, a := range d.accounts {
		m, keep := want[name]
		if keep && reflect.DeepEqual(m, a.cfg) && !(reload && a.ended.Load()) {
			delete(want, name)
			continue
		}
		a.cancel()
		<-a.done
		delete(d.accounts, name)
	}
	for _, m := range mailboxes {
		if _, ok := want[m.Name]; !ok {
			continue
		}
		ctx, cancel := context.WithCancel(d.srcCtx)
		a := &account{cfg: m, cancel: cancel, done: make(chan struct{})}
		a.acc = imapsrc.NewAccount(m, d.store, imapsrc.AccountOptions{
			Logger: d.log.With("source", m.Name), SpoolDir: spoolDir(d.cfg.StateDir), Stats: d.mailStats,
			Tokens: d.store, // a rotated OAuth2 refresh token is kept
		})
		d.accounts[m.Name] = a
		d.ops.reportHealth("mailbox "+m.Name, nil)
		d.ops.metrics.SetMailboxUp(m.Name, true)
		go func() {
			defer close(a.done)
			err := a.acc.Run(ctx)
			a.ended.Store(ctx.Err() == nil)
			if ctx.Err() == nil {
				// Stopped by itself: /healthz says so until a reload.
				d.ops.reportHealth("mailbox "+m.Name, fmt.Errorf("stopped: %w", err))
				d.ops.metrics.SetMailboxUp(m.Name, false)
			}
			var le *imapsrc.LoginError
			switch {
			case errors.As(err, &le):
				d.log.Error("mailbox stopped: the server refused the login; fix the credentials and reload (SIGHUP)", "source", m.Name, "err", err)
			case err != nil && ctx.Err() == nil:
				d.log.Error("mailbox stopped; a reload (SIGHUP) starts it again", "source", m.Name, "err", err)
			}
		}()
	}
}

// notifyAccounts tells every mailbox that an item settled: its messages'
// after-actions may be due.
func (d *daemon) notifyAccounts() {
	d.accountsMu.Lock()
	defer d.accountsMu.Unlock()
	for _, a := range d.accounts {
		a.acc.Notify()
	}
}
