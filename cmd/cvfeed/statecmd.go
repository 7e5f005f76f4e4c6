package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cvfeed/cvfeed/control"
	"github.com/cvfeed/cvfeed/pipeline"
	"github.com/cvfeed/cvfeed/state"
)

// cvfeed state: the state's health and its bond to one API.
//
//	state check          bbolt's consistency check and cvfeed's own
//	state reset          keep a damaged state aside and start anew
//	state backup FILE    a consistent copy, also while a daemon runs
//	state rebind         the config's api.url is the API the state records
//	state compact        rewrite the file to reclaim space, also while a daemon runs

const stateUsage = `usage: cvfeed state COMMAND [-config PATH]

commands:
  check          verify the state: bbolt's consistency check and cvfeed's own; exit 1 on a problem
  reset          keep the state aside (cvfeed.db.damaged-<time>) and start a new one
  backup FILE    write a consistent copy to FILE (also while cvfeed runs)
  rebind         record the config's api.url as the API of the state (same API, new address)
  compact        rewrite the state to reclaim the space of what it forgot (also while cvfeed runs)
`

func cmdState(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, stateUsage)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "check":
		return cmdStateCheck(rest, stdout, stderr)
	case "reset":
		return cmdStateReset(rest, stdout, stderr)
	case "backup":
		return cmdStateBackup(rest, stdout, stderr)
	case "rebind":
		return cmdStateRebind(rest, stdout, stderr)
	case "compact":
		return cmdStateCompact(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, stateUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "cvfeed state: unknown command %q\n\n%s", sub, stateUsage)
		return exitUsage
	}
}

// stateCommand starts a cvfeed state subcommand: flags, logger, config.
func stateCommand(name string, args []string, stderr io.Writer, positional bool) (*command, int, bool) {
	c := newAdminCommand("state "+name, stderr)
	c.args = positional
	code, ok := c.start(args)
	return c, code, ok
}

func cmdStateCheck(args []string, stdout, stderr io.Writer) int {
	c, code, ok := stateCommand("check", args, stderr, false)
	if !ok {
		return code
	}
	path := pipeline.StatePath(c.cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "no state at %s yet: the first backfill or run creates it\n", path)
		return exitOK
	}
	problems, err := control.Check(c.cfg.StateDir)
	if errors.Is(err, state.ErrEmpty) {
		fmt.Fprintf(stdout, "state %s is empty: the next backfill or run initialises it\n", path)
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stdout, "FAIL  %s\n", p)
		}
		fmt.Fprintf(stdout, "state %s has problems: keep it aside and start anew with \"cvfeed state reset\" (nothing will be uploaded twice)\n", path)
		return exitFailed
	}
	fmt.Fprintf(stdout, "OK    state %s: bbolt's consistency check and cvfeed's passed\n", path)
	return exitOK
}

func cmdStateReset(args []string, stdout, stderr io.Writer) int {
	c, code, ok := stateCommand("reset", args, stderr, false)
	if !ok {
		return code
	}
	path := pipeline.StatePath(c.cfg)
	aside, err := state.Reset(path, time.Now(), &state.Options{LockTimeout: 200 * time.Millisecond, Logger: c.log})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stdout, "no state at %s: nothing to reset\n", path)
		return exitOK
	case errors.Is(err, state.ErrLocked):
		fmt.Fprintf(stderr, "cvfeed: state %s is in use by another cvfeed process (run or backfill): stop it, then run cvfeed state reset again\n", path)
		return exitFailed
	case err != nil:
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	fmt.Fprintf(stdout, "kept the old state aside as %s and started a new, empty one at %s\n", aside, path)
	fmt.Fprintln(stdout, "the next cvfeed backfill finds every file and mail again and re-establishes each against the API:")
	fmt.Fprintln(stdout, "a CV the API already holds is answered \"profile_reference already exists\" and counted uploaded, never sent as a second profile")
	return exitOK
}

func cmdStateBackup(args []string, stdout, stderr io.Writer) int {
	c, code, ok := stateCommand("backup", args, stderr, true)
	if !ok {
		return code
	}
	if c.fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: cvfeed state backup [-config PATH] FILE")
		return exitUsage
	}
	dst, err := filepath.Abs(c.fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitUsage
	}
	path := pipeline.StatePath(c.cfg)
	if dst == path {
		fmt.Fprintf(stderr, "cvfeed: %s is the state itself: back it up elsewhere\n", dst)
		return exitUsage
	}
	n, remote, err := control.Backup(c.cfg.StateDir, dst)
	via := ""
	if remote {
		via = " (written by the running cvfeed)"
		if fi, serr := os.Stat(dst); err == nil && (serr != nil || fi.Size() != n) {
			// The daemon may see another file system: systemd's
			// PrivateTmp, ProtectSystem.
			err = fmt.Errorf("the running cvfeed wrote %s, but this process does not see it there (a private /tmp or a read-only file system of its service?): back up into its state_dir, e.g. %s",
				dst, filepath.Join(c.cfg.StateDir, "backup.db"))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	fmt.Fprintf(stdout, "backed up state %s to %s: %d bytes%s\n", path, dst, n, via)
	return exitOK
}

func cmdStateRebind(args []string, stdout, stderr io.Writer) int {
	c, code, ok := stateCommand("rebind", args, stderr, false)
	if !ok {
		return code
	}
	path := pipeline.StatePath(c.cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "no state at %s: the first backfill or run binds it to the configured API\n", path)
		return exitOK
	}
	id := pipeline.APIIdentity(c.cfg)
	prev, err := control.Rebind(c.cfg.StateDir, id)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	switch prev {
	case id:
		fmt.Fprintf(stdout, "state %s already records the API %q: nothing changed\n", path, id)
	case "":
		fmt.Fprintf(stdout, "state %s recorded no API; now %q\n", path, id)
	default:
		fmt.Fprintf(stdout, "state %s: API was %q, now %q\n", path, prev, id)
	}
	return exitOK
}

// cmdStateCompact rewrites the state with bbolt's compaction: here, or,
// while run or backfill holds the state, by that process through its
// control socket (its writes wait meanwhile; on a failure it keeps the old
// file and goes on).
func cmdStateCompact(args []string, stdout, stderr io.Writer) int {
	c, code, ok := stateCommand("compact", args, stderr, false)
	if !ok {
		return code
	}
	path := pipeline.StatePath(c.cfg)
	res, remote, err := control.Compact(c.cfg.StateDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stdout, "no state at %s: nothing to compact\n", path)
		return exitOK
	case err != nil:
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	via := ""
	if remote {
		via = " (by the running cvfeed)"
	}
	fmt.Fprintf(stdout, "compacted state %s: %d bytes before, %d after%s\n", path, res.Before, res.After, via)
	return exitOK
}
