package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/fileaction"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/uploader"
	"github.com/cvfeed/cvfeed/watcher"
)

// cmdRun is the daemon: it watches every folder and uploads each new CV
// until SIGINT or SIGTERM, reloading the config on SIGHUP.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", err)
		return exitUsage
	}
	cfg, ok := loadConfig(cf.config, stderr)
	if !ok {
		return exitUsage
	}
	// SIGHUP is caught from the start: a reload sent while starting is
	// not lost, and does not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := startDaemon(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", err)
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

	stopSources, stopPool, stopActions context.CancelFunc
	watchDone, poolDone, actionsDone   chan error
}

func startDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) (*daemon, error) {
	store, err := state.Open(statePath(cfg), nil)
	if err != nil {
		return nil, err
	}
	if n, err := store.Recover(); err != nil {
		store.Close()
		return nil, err
	} else if n > 0 {
		log.Info("uploads interrupted by the last stop will be confirmed with the API before being sent again", "items", n)
	}
	a, err := openAPI(cfg, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	d := &daemon{log: log, cfg: cfg, store: store, api: a}
	d.actions = fileaction.New(store, log)
	d.actions.SetFolders(cfg.Folders)
	d.pool = uploader.NewPool(uploader.PoolConfig{
		Workers:     cfg.API.Workers,
		RateLimit:   cfg.API.RateLimit,
		MaxAttempts: cfg.API.MaxAttempts,
		Backoff:     uploader.Backoff{Initial: cfg.API.RetryInitial, Max: cfg.API.RetryMax},
		Accept:      acceptFolders(cfg.Folders),
		Metadata:    metadataFunc(cfg.Folders),
		ReadAccess:  probeRead(ctx, a.client, log),
		Grace:       cfg.ShutdownTimeout,
		Logger:      log,
		OnResult: func(_ state.Item, r state.Result) {
			if r.Outcome == state.Done || r.Outcome == state.Fail {
				d.actions.Notify(r.Key)
			}
		},
	}, store, a.client)
	d.watch = watcher.NewWatch(store, watcher.WatchOptions{Logger: log})

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
	log.Info("cvfeed running", "folders", len(cfg.Folders), "workers", cfg.API.Workers, "state", store.Path())
	return d, nil
}

// loop waits for a stop signal, reloads on SIGHUP, and returns the exit
// code.
func (d *daemon) loop(ctx context.Context, hup <-chan os.Signal) int {
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping: no new files are taken; uploads in flight may finish", "timeout", d.cfg.ShutdownTimeout)
			return exitOK
		case <-hup:
			d.reload(ctx)
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
	d.stopSources()
	if err := <-d.watchDone; err != nil {
		d.log.Error("folder watch", "err", err)
	}
	d.stopPool()
	if err := <-d.poolDone; err != nil {
		d.log.Error("upload pool", "err", err)
	}
	d.stopActions()
	<-d.actionsDone
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
	a := d.api
	if cfg.API.URL != d.cfg.API.URL || cfg.API.Key != d.cfg.API.Key || cfg.API.Timeout != d.cfg.API.Timeout {
		na, err := openAPI(cfg, d.log)
		if err != nil {
			d.log.Error("reload refused: cannot use the new API settings; the running config stays", "err", err)
			return
		}
		a = na
	}
	read := probeRead(ctx, a.client, d.log)
	d.pool.Reconfigure(a.client, acceptFolders(cfg.Folders), metadataFunc(cfg.Folders), cfg.API.RateLimit, read)
	if a != d.api {
		// In-flight uploads finish with the old client; its sandbox, if
		// any, is closed at stop with the new one's.
		old := d.api
		a.close, old.close = joinClose(a.close, old.close), func() {}
		d.api = a
	}
	d.watch.SetFolders(cfg.Folders)
	d.actions.SetFolders(cfg.Folders)
	d.cfg = cfg
	d.log.Info("config reloaded", "folders", len(cfg.Folders))
}

func joinClose(a, b func()) func() { return func() { a(); b() } }

// acceptFolders admits the items of the configured folders' sources.
func acceptFolders(folders []config.Folder) func(string) bool {
	ids := map[string]bool{}
	for _, f := range folders {
		ids[f.SourceID] = true
	}
	return func(id string) bool { return ids[id] }
}
