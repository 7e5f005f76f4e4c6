package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// cvfeed state: the state's health and its bond to one API.
//
//	state check          bbolt's consistency check and cvfeed's own
//	state reset          keep a damaged state aside and start anew
//	state backup FILE    a consistent copy, also while a daemon runs
//	state rebind         the config's api.url is the API the state records
//	state compact        rewrite the file to reclaim space (offline)

const stateUsage = `usage: cvfeed state COMMAND [-config PATH]

commands:
  check          verify the state: bbolt's consistency check and cvfeed's own; exit 1 on a problem
  reset          keep the state aside (cvfeed.db.damaged-<time>) and start a new one
  backup FILE    write a consistent copy to FILE (also while cvfeed runs)
  rebind         record the config's api.url as the API of the state (same API, new address)
  compact        rewrite the state to reclaim the space of what it forgot (cvfeed must not be running)
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

// apiIdentity names the API the config uploads to, as the state records
// it: the flavour and the base URL normalised (scheme and host in lower
// case, no default port, no trailing slash, no user:password), or
// "sandbox" for the embedded sandbox, which is an API of its own.
func apiIdentity(cfg *config.Config) string {
	if cfg.API.Sandbox() {
		return cfg.API.Flavor + " sandbox"
	}
	return cfg.API.Flavor + " " + normalizeAPIURL(cfg.API.URL)
}

func normalizeAPIURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an invalid URL)" // config validation refuses it
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		port = ""
	}
	if port != "" || strings.Contains(host, ":") {
		host = net.JoinHostPort(host, port)
		host = strings.TrimSuffix(host, ":")
	}
	u.Host = host
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	return u.String()
}

// bindAPI makes sure the state belongs to the config's API before run or
// backfill upload anything: a state with items uploaded to another API is
// refused (one line naming both and the ways forward). A state of an older
// cvfeed, which did not record it, is bound to the configured API.
func bindAPI(store *state.Store, cfg *config.Config, log *slog.Logger) error {
	id := apiIdentity(cfg)
	b, err := store.BindAPI(id)
	if err != nil {
		return err
	}
	switch {
	case b.Changed && b.Previous == "" && !b.Empty:
		log.Info("the state did not record which API its uploads went to (an older cvfeed wrote it): it is now bound to the configured API", "api", id)
	case b.Changed && b.Previous != "":
		log.Info("the state held no items: it is now bound to the configured API", "api", id, "was", b.Previous)
	case b.Changed:
		log.Debug("state bound to the configured API", "api", id)
	}
	return nil
}

// controlWait is how long a command waits for the control socket of a
// cvfeed that holds the state but is still starting.
const controlWait = 5 * time.Second

// stateOrDaemon opens the state (read-only unless write) or, while another
// cvfeed holds it, returns a client of that process's control socket. A
// process that holds the lock but serves no socket yet is starting (or is
// a short cvfeed state command): both are retried for up to controlWait.
func stateOrDaemon(stateDir string, write bool) (*state.Store, *controlClient, error) {
	path := filepath.Join(stateDir, state.FileName)
	c := newControlClient(socketPath(stateDir))
	deadline := time.Now().Add(controlWait)
	for {
		st, err := state.Open(path, &state.Options{ReadOnly: !write, LockTimeout: 200 * time.Millisecond})
		if !errors.Is(err, state.ErrLocked) {
			return st, nil, err
		}
		perr := c.ping()
		if perr == nil {
			return nil, c, nil
		}
		if time.Now().After(deadline) {
			if _, serr := os.Stat(socketPath(stateDir)); errors.Is(serr, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("%w; it serves no control socket yet (the daemon is starting, or a cvfeed state command runs): try again in a moment", err)
			}
			return nil, nil, fmt.Errorf("%w; its control socket does not answer (%v)", err, perr)
		}
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
	path := statePath(c.cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "no state at %s yet: the first backfill or run creates it\n", path)
		return exitOK
	}
	st, ctl, err := stateOrDaemon(c.cfg.StateDir, false)
	var problems []string
	switch {
	case errors.Is(err, state.ErrEmpty):
		fmt.Fprintf(stdout, "state %s is empty: the next backfill or run initialises it\n", path)
		return exitOK
	case err != nil:
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	case ctl != nil:
		problems, err = ctl.Check()
	default:
		defer st.Close()
		problems, err = st.Check()
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
	path := statePath(c.cfg)
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
	path := statePath(c.cfg)
	if dst == path {
		fmt.Fprintf(stderr, "cvfeed: %s is the state itself: back it up elsewhere\n", dst)
		return exitUsage
	}
	st, ctl, err := stateOrDaemon(c.cfg.StateDir, false)
	var n int64
	via := ""
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	case ctl != nil:
		n, err = ctl.Backup(dst)
		via = " (written by the running cvfeed)"
		if fi, serr := os.Stat(dst); err == nil && (serr != nil || fi.Size() != n) {
			// The daemon may see another file system: systemd's
			// PrivateTmp, ProtectSystem.
			err = fmt.Errorf("the running cvfeed wrote %s, but this process does not see it there (a private /tmp or a read-only file system of its service?): back up into its state_dir, e.g. %s",
				dst, filepath.Join(c.cfg.StateDir, "backup.db"))
		}
	default:
		n, err = st.Backup(dst)
		st.Close()
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
	path := statePath(c.cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "no state at %s: the first backfill or run binds it to the configured API\n", path)
		return exitOK
	}
	id := apiIdentity(c.cfg)
	st, ctl, err := stateOrDaemon(c.cfg.StateDir, true)
	var prev string
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	case ctl != nil:
		prev, err = ctl.Rebind(id)
	default:
		prev, err = st.RebindAPI(id)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}
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

// cmdStateCompact rewrites the state with bbolt's compaction. Offline:
// while run or backfill holds the state it says so (compaction through
// the daemon's control socket is for later).
func cmdStateCompact(args []string, stdout, stderr io.Writer) int {
	c, code, ok := stateCommand("compact", args, stderr, false)
	if !ok {
		return code
	}
	path := statePath(c.cfg)
	before, after, err := state.Compact(path, &state.Options{LockTimeout: 200 * time.Millisecond, Logger: c.log})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stdout, "no state at %s: nothing to compact\n", path)
		return exitOK
	case errors.Is(err, state.ErrLocked):
		fmt.Fprintf(stderr, "cvfeed: state %s is in use by another cvfeed process (run or backfill): stop it, then run cvfeed state compact again\n", path)
		return exitFailed
	case err != nil:
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	fmt.Fprintf(stdout, "compacted state %s: %d bytes before, %d after\n", path, before, after)
	return exitOK
}
