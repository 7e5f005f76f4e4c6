package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/fileaction"
	"github.com/cvfeed/cvfeed/imapsrc"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/uploader"
	"github.com/cvfeed/cvfeed/watcher"
)

// cmdBackfill makes one pass over every folder, uploads what is new and
// waits until every item is uploaded, a duplicate, or failed.
func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("backfill", stderr)
	fs := c.fs
	only := fs.String("only", "", "comma-separated names of the sources to backfill (default: all)")
	quiet := fs.Bool("no-progress", false, "no progress bar or progress lines")
	dry := fs.Bool("dry-run", false, "list what would be uploaded; send and record nothing")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file (for benchmarks)")
	if code, ok := c.start(args); !ok {
		return code
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "cvfeed:", safe(err))
			return exitUsage
		}
		defer stop()
	}
	cfg, log := c.cfg, c.log
	folders, mailboxes, err := selectSources(cfg, *only)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitUsage
	}
	if *dry {
		return dryRun(ctx, cfg, folders, mailboxes, stdout, stderr, log)
	}
	metadata := metadataFunc(sources(cfg.Folders, cfg.Mailboxes))
	start := time.Now()

	store, err := state.Open(statePath(cfg), &state.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	defer store.Close()
	if err := bindAPI(store, cfg, log); err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	a, err := openAPI(cfg, log, nil)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	defer a.close()
	if n, err := store.Recover(); err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	} else if n > 0 {
		log.Info("uploads interrupted by the last stop will be confirmed with the API before being sent again", "items", n)
	}
	read := probeRead(ctx, a.client, log)
	// status, failed and report work during a long backfill too.
	ctlCtx, stopControl := context.WithCancel(context.WithoutCancel(ctx))
	controlDone := make(chan error, 1)
	go func() { controlDone <- serveControl(ctlCtx, cfg.StateDir, localState{store}, log) }()
	defer func() {
		stopControl()
		<-controlDone
	}()

	accept := acceptSources(sources(folders, mailboxes))
	// The items of a folder that is down (a share that did not mount)
	// stay pending: their files are not gone.
	downIDs := map[string]bool{}
	for _, f := range folders {
		if watcher.CheckFolder(store, f) != nil {
			downIDs[f.SourceID] = true
		}
	}
	if base := accept; len(downIDs) > 0 {
		accept = func(id string) bool { return base(id) && !downIDs[id] }
	}
	cleanSpool(store, spoolDir(cfg.StateDir), time.Now(), log)
	var uploaded, failed atomic.Int64
	actions := fileaction.New(store, log)
	actions.SetFolders(cfg.Folders)
	actions.SetFolderCheck(func(f config.Folder) error { return watcher.CheckFolder(store, f) })
	actCtx, stopActions := context.WithCancel(context.WithoutCancel(ctx))
	defer stopActions()
	actionsDone := make(chan error, 1)
	go func() { actionsDone <- actions.Run(actCtx) }()
	pool := uploader.NewPool(uploader.PoolConfig{
		Workers:     cfg.API.Workers,
		RateLimit:   cfg.API.RateLimit,
		MaxAttempts: cfg.API.MaxAttempts,
		Backoff:     uploader.Backoff{Initial: cfg.API.RetryInitial, Max: cfg.API.RetryMax},
		Accept:      accept,
		Metadata:    metadata,
		SpoolDir:    spoolDir(cfg.StateDir),
		StopOnAuth:  true,
		ReadAccess:  read,
		Logger:      log,
		OnResult: func(_ state.Item, r state.Result, _ time.Duration) {
			switch r.Outcome {
			case state.Done:
				uploaded.Add(1)
			case state.Fail:
				failed.Add(1)
			}
			if r.Outcome == state.Done || r.Outcome == state.Fail {
				actions.Notify(r.Key)
			}
		},
	}, store, a.client)
	scanner := watcher.NewScanner(store, watcher.ScannerOptions{Logger: log})
	accounts := make([]*imapsrc.Account, len(mailboxes))
	mailStats := new(imapsrc.Stats)
	for i, m := range mailboxes {
		accounts[i] = imapsrc.NewAccount(m, store, imapsrc.AccountOptions{
			Logger: log.With("source", m.Name), SpoolDir: spoolDir(cfg.StateDir), Stats: mailStats,
			Tokens: store, // a rotated OAuth2 refresh token is kept
		})
	}

	poolCtx, stopPool := context.WithCancel(ctx)
	defer stopPool()
	poolDone := make(chan error, 1)
	go func() { poolDone <- pool.Run(poolCtx) }()
	scanCtx, stopScan := context.WithCancel(ctx)
	defer stopScan()
	scanDone := make(chan error, 1)
	var mailErrs atomic.Int64
	go func() {
		// Folders and mailboxes are read at the same time; a mailbox that
		// cannot be read is logged and counted, the others go on.
		var wg sync.WaitGroup
		for i, acc := range accounts {
			wg.Go(func() {
				if err := acc.Backfill(scanCtx); err != nil && scanCtx.Err() == nil {
					mailErrs.Add(1)
					log.Error("cannot read mailbox", "source", mailboxes[i].Name, "err", err)
				}
			})
		}
		err := scanner.Scan(scanCtx, folders)
		wg.Wait()
		scanDone <- err
	}()

	prog := newProgress(stderr, isTerminal(stderr), !*quiet, start)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var scanErr, poolErr error
	scanning, uploading := true, true
	pending := 0
	for scanning || uploading {
		select {
		case scanErr = <-scanDone:
			scanning = false
		case poolErr = <-poolDone:
			uploading = false
			stopScan()
		case <-tick.C:
		}
		if !scanning && uploading && poolCtx.Err() == nil && pool.InFlight() == 0 {
			// Everything is claimed and nothing is in a worker's hands:
			// done once nothing is pending either.
			n, err := store.Pending(accept)
			if err != nil {
				log.Error("cannot read the queue", "err", err)
			}
			pending = n
			if err == nil && n == 0 && pool.InFlight() == 0 {
				stopPool()
			}
		}
		prog.update(snapshot{scan: scanner.Stats().Snapshot(), scanning: scanning, uploaded: uploaded.Load(), failed: failed.Load(), pending: pending}, time.Now())
	}
	prog.finish()
	// The after-actions of what was uploaded (and of duplicates of CVs
	// uploaded before) are done before the summary.
	stopActions()
	<-actionsDone
	actions.Sweep()
	for i, acc := range accounts {
		if err := acc.ActionsNow(context.WithoutCancel(ctx)); err != nil {
			log.Error("cannot apply the after-actions of mailbox", "source", mailboxes[i].Name, "err", err)
		}
	}
	cleanSpool(store, spoolDir(cfg.StateDir), time.Now(), log)
	elapsed := time.Since(start)

	counts, cerr := store.Counts()
	failedNow := 0
	if cerr == nil {
		for _, src := range sources(folders, mailboxes) {
			failedNow += counts[src.name].Failed
		}
	}
	left, _ := store.Pending(accept)
	sc := scanner.Stats().Snapshot()
	sc.Duplicates += mailStats.Duplicates.Load()
	sc.Skipped += mailStats.Skipped.Load()
	sc.Errors += mailErrs.Load()
	done := uploaded.Load() + failed.Load() + sc.Duplicates
	fmt.Fprintf(stdout, "uploaded %d, duplicates %d, failed %d, skipped %d, unreadable %d, unchanged %d, pending %d; elapsed %s, %.1f files/s\n",
		uploaded.Load(), sc.Duplicates, failed.Load(), sc.Skipped, sc.Errors, sc.Unchanged, left+int(sc.Changing),
		elapsed.Round(time.Millisecond), float64(done)/max(elapsed.Seconds(), 0.001))

	for _, err := range scanner.Down() {
		fmt.Fprintf(stderr, "cvfeed: %v (not scanned; its items stay pending)\n", err)
	}
	var authErr *uploader.AuthError
	switch {
	case errors.As(poolErr, &authErr):
		fmt.Fprintf(stderr, "cvfeed: backfill stopped: %s; nothing was marked failed, %d items stay pending\n", safe(authErr), left)
		return exitFailed
	case poolErr != nil:
		fmt.Fprintln(stderr, "cvfeed: backfill stopped:", safe(poolErr))
		return exitFailed
	case scanErr != nil && !errors.Is(scanErr, context.Canceled):
		fmt.Fprintln(stderr, "cvfeed: scan stopped:", safe(scanErr))
		return exitFailed
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "cvfeed: backfill interrupted; %d items stay pending and are taken up by the next run\n", left)
		return exitFailed
	case failedNow > 0:
		fmt.Fprintf(stderr, "cvfeed: %d items failed; see cvfeed status, fix the cause and run it again\n", failedNow)
		return exitFailed
	case sc.Errors > 0:
		fmt.Fprintf(stderr, "cvfeed: %d files, folders or mailboxes could not be read (see the log above)\n", sc.Errors)
		return exitFailed
	case sc.Changing > 0:
		fmt.Fprintf(stderr, "cvfeed: %d files were being written while read and were left for the next run\n", sc.Changing)
		return exitFailed
	}
	return exitOK
}
