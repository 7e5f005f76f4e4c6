package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"golang.org/x/term"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/control"
	"github.com/cvfeed/cvfeed/internal/termsafe"
)

// commonFlags are the flags every command that reads the config takes.
type commonFlags struct {
	config   string
	logLevel string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("CVFEED_CONFIG")
	if def == "" {
		def = "config.toml"
	}
	fs.StringVar(&c.config, "config", def, "config file (default $CVFEED_CONFIG, else ./config.toml)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// command is how every command that reads the config starts: a flag set
// with the common flags (commands add theirs before start), then the
// flags parsed, a logger and the config.
type command struct {
	fs     *flag.FlagSet
	cf     commonFlags
	stderr io.Writer
	// args allows positional arguments (retry's IDs).
	args bool
	// noSecrets loads the config without its secrets (newAdminCommand).
	noSecrets bool
	cfg       *config.Config
	log       *slog.Logger
}

// newCommand starts a command that talks to the API or the mailboxes: its
// config must have every secret.
func newCommand(name string, stderr io.Writer) *command {
	c := &command{fs: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr}
	c.fs.SetOutput(stderr)
	c.cf.register(c.fs)
	return c
}

// newAdminCommand starts a command that only reads or changes the state
// (status, failed, retry, report, state ...): it loads the config without
// its secrets, so that it works in an admin's shell that lacks the daemon's
// environment (${RIMINDER_API_KEY}) or cannot read its secret files.
// Everything else in the config is validated as usual.
func newAdminCommand(name string, stderr io.Writer) *command {
	c := newCommand(name, stderr)
	c.noSecrets = true
	return c
}

// start parses args, makes the logger and loads the config; it returns
// false, with the exit code, when the command must stop.
func (c *command) start(args []string) (int, bool) {
	if c.args {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK, false
			}
			return exitUsage, false
		}
	} else if code, ok := parseFlags(c.fs, args); !ok {
		return code, false
	}
	log, err := newLogger(c.stderr, c.cf.logLevel)
	if err != nil {
		fmt.Fprintln(c.stderr, "cvfeed:", err)
		return exitUsage, false
	}
	c.log = log
	cfg, ok := loadConfig(c.cf.config, config.LoadOptions{SkipSecrets: c.noSecrets}, c.stderr)
	if !ok {
		return exitUsage, false
	}
	c.cfg = cfg
	return 0, true
}

// withState runs fn with the state (read-only unless write), opened here
// or reached through the running daemon's control socket.
func (c *command) withState(write bool, fn func(control.Reader) int) int {
	sr, err := control.OpenReader(c.cfg.StateDir, write)
	if err != nil {
		fmt.Fprintln(c.stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	defer sr.Close()
	return fn(sr)
}

// parseFlags parses args; it returns false (and the exit code) on -h or a
// usage error.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// newLogger logs text on a terminal and JSON otherwise (journald, files).
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		// Durations as "1.5s", not nanoseconds, in JSON too.
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(a.Value.Duration().String())
		}
		return a
	}}
	return slog.New(newHandler(w, isTerminal(w), opts)), nil
}

// newHandler is slog's text handler (text) or JSON handler. Both escape
// control characters in values: the text handler quotes such a value
// with strconv, the JSON one writes \u escapes; the JSON lines also get
// the escapes of termsafe.JSON, for the C1 and bidirectional controls it
// leaves as they are.
func newHandler(w io.Writer, text bool, opts *slog.HandlerOptions) slog.Handler {
	if text {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(safeJSONWriter{w}, opts)
}

// safeJSONWriter applies termsafe.JSON to each Write: slog's JSON handler
// writes each record, a whole JSON line, with one Write.
type safeJSONWriter struct{ w io.Writer }

func (s safeJSONWriter) Write(p []byte) (int, error) {
	if _, err := s.w.Write(termsafe.JSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// safe is err's text escaped for a terminal (termsafe.Lines): errors carry
// names from the shares, the mailboxes and the API.
func safe(err error) string { return termsafe.Lines(err.Error()) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// loadConfig loads the config or prints why not.
func loadConfig(path string, o config.LoadOptions, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.LoadWith(path, o)
	if err != nil {
		fmt.Fprintf(stderr, "cvfeed: config: %s\n", safe(err))
		return nil, false
	}
	return cfg, true
}

// startCPUProfile writes a CPU profile until the returned stop is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
