// Command cvfeed feeds CV files from folders and mailboxes into
// the Riminder API, each exactly once. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Exit codes of the contract.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// version is stamped at build time with -ldflags "-X main.version=..."
// (contrib/package.sh does, from git describe); an unstamped binary takes
// its module version from the build info ("go install ...@v1.2.3"), see
// init. It is set before main runs and never changed after.
var version = "dev"

func init() { version = buildVersion(version, debug.ReadBuildInfo) }

// buildVersion is stamped unless it is "dev", else the main module's
// version from the build info when there is one, else "dev".
func buildVersion(stamped string, info func() (*debug.BuildInfo, bool)) string {
	if stamped != "dev" {
		return stamped
	}
	if bi, ok := info(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return stamped
}

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// tuneGC trades a little memory for less GC work: cvfeed's live heap is a
// few MiB, so the default GOGC=100 collects hundreds of times a second
// during a backfill. A soft memory limit keeps the total in check. Both
// yield to GOGC and GOMEMLIMIT from the environment.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20)
	}
}

const usage = `usage: cvfeed COMMAND [flags]

commands:
  run        the daemon: watch the folders and upload each new CV
  backfill   upload everything already in the folders, then exit
  status     counts per source and state (-json)
  failed     list failed items with their last error (-json)
  retry      queue failed items again (-all | ID...)
  report     activity per source and day (-json, -since DATE)
  check      validate the config, reach the API, read every folder and mailbox
  state      the state file: check, reset, backup FILE, rebind, compact ("cvfeed state" lists them)
  sandbox    run a local fake Riminder API
  version    print the version

Every command takes -config PATH (default $CVFEED_CONFIG, else ./config.toml).
Run "cvfeed COMMAND -h" for its flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "backfill":
		return cmdBackfill(ctx, rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "failed":
		return cmdFailed(ctx, rest, stdout, stderr)
	case "retry":
		return cmdRetry(ctx, rest, stdout, stderr)
	case "report":
		return cmdReport(ctx, rest, stdout, stderr)
	case "check":
		return cmdCheck(ctx, rest, stdout, stderr)
	case "state":
		return cmdState(ctx, rest, stdout, stderr)
	case "sandbox":
		return cmdSandbox(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "cvfeed", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "cvfeed: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}
