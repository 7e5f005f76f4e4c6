package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cvfeed/cvfeed/pipeline"
)

// cmdCheck validates the config, reaches the API, and reads every folder
// and mailbox, one line each; exit 1 if anything fails.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("check", stderr)
	cmd.cf.logLevel = "error"
	if code, ok := cmd.start(args); !ok {
		if code == exitUsage && cmd.log != nil {
			fmt.Fprintln(stdout, "FAIL  config   see above")
		}
		return code
	}
	if n := pipeline.Check(ctx, cmd.cfg, cmd.log, stdout, "cvfeed/"+version); n > 0 {
		fmt.Fprintf(stdout, "%d problems\n", n)
		return exitFailed
	}
	return exitOK
}
