package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cvfeed/cvfeed/pipeline"
)

// cmdRun is the daemon: it watches every folder and mailbox and uploads
// each new CV until SIGINT or SIGTERM, reloading the config on SIGHUP.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("run", stderr)
	if code, ok := c.start(args); !ok {
		return code
	}
	// SIGHUP is caught from the start: a reload sent while starting is
	// not lost, and does not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	p, err := pipeline.Start(ctx, c.cfg, pipeline.Options{Mode: pipeline.Daemon, Logger: c.log, Version: version})
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	err = p.Run(ctx, hup)
	p.Stop()
	if err != nil {
		return exitFailed
	}
	return exitOK
}
