package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cvfeed/cvfeed/internal/progress"
	"github.com/cvfeed/cvfeed/pipeline"
	"github.com/cvfeed/cvfeed/uploader"
)

// cmdBackfill makes one pass over every folder and mailbox, uploads what
// is new and waits until every item is uploaded, a duplicate, or failed.
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
	folders, mailboxes, err := cfg.Select(*only)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitUsage
	}
	if *dry {
		if err := pipeline.DryRun(ctx, cfg, folders, mailboxes, stdout, log); err != nil {
			fmt.Fprintln(stderr, "cvfeed:", safe(err))
			return exitFailed
		}
		return exitOK
	}
	start := time.Now()
	p, err := pipeline.Start(ctx, cfg, pipeline.Options{Mode: pipeline.OneShot, Logger: log, Version: version,
		Select: *only != "", Folders: folders, Mailboxes: mailboxes})
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	prog := progress.New(stderr, isTerminal(stderr), !*quiet, start)
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(ctx) }()
	// The ticker only paces what is shown; Drain decides when it is done.
	tick := time.NewTicker(prog.Period())
	var poolErr error
	for waiting := true; waiting; {
		select {
		case poolErr = <-drained:
			waiting = false
		case <-tick.C:
			prog.Update(p.Progress(), time.Now())
		}
	}
	tick.Stop()
	prog.Finish()
	p.Stop()
	s := p.Summary()
	s.Print(stdout, time.Since(start))
	sc, left := s.Scan, s.Pending
	for _, err := range s.Down {
		fmt.Fprintf(stderr, "cvfeed: %v (not scanned; its items stay pending)\n", err)
	}
	var authErr *uploader.AuthError
	switch {
	case errors.As(poolErr, &authErr):
		fmt.Fprintf(stderr, "cvfeed: backfill stopped: %s; nothing was marked failed, %d items stay pending\n", safe(authErr), left)
		return exitFailed
	case poolErr != nil && ctx.Err() == nil:
		fmt.Fprintln(stderr, "cvfeed: backfill stopped:", safe(poolErr))
		return exitFailed
	case s.SourcesErr != nil:
		fmt.Fprintln(stderr, "cvfeed: scan stopped:", safe(s.SourcesErr))
		return exitFailed
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "cvfeed: backfill interrupted; %d items stay pending and are taken up by the next run\n", left)
		return exitFailed
	case s.FailedNow > 0:
		fmt.Fprintf(stderr, "cvfeed: %d items failed; see cvfeed status, fix the cause and run it again\n", s.FailedNow)
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
