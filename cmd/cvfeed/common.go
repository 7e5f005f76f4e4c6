package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/termsafe"
	"github.com/cvfeed/cvfeed/sandbox"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/uploader"
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
func (c *command) withState(write bool, fn func(stateReader) int) int {
	sr, err := openStateReader(c.cfg.StateDir, write)
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

func statePath(cfg *config.Config) string { return filepath.Join(cfg.StateDir, state.FileName) }

// apiClient is what cmd needs of either API flavour's client.
type apiClient interface {
	uploader.API
	Sources(ctx context.Context) ([]uploader.Source, error)
	Source(ctx context.Context, id string) (uploader.Source, error)
}

// api is a client to the configured API, and the embedded sandbox behind
// it when api.url is "sandbox".
type api struct {
	client apiClient
	url    string
	close  func()
	// files opens the files of uploads; set it on reload.
	files *itemOpener
}

// openAPI makes the client of the configured flavour; with url = "sandbox"
// it first starts the sandbox in this process on a loopback port.
func openAPI(cfg *config.Config, log *slog.Logger, observe func(int, error)) (*api, error) {
	a := &api{url: cfg.API.URL, close: func() {}, files: newItemOpener(cfg)}
	if cfg.API.Sandbox() {
		sb, err := sandbox.New(sandbox.Options{Logger: log.With("component", "sandbox")})
		if err != nil {
			return nil, fmt.Errorf("start sandbox: %w", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("start sandbox: %w", err)
		}
		srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		a.url = "http://" + ln.Addr().String()
		if cfg.API.Flavor == config.FlavorHrFlow {
			a.url += "/v1" // the sandbox serves HrFlow's v1 paths there
		}
		a.close = func() {
			// Called once the client is done with the API. Close, not
			// Shutdown: the client's transport may hold a connection it
			// dialled but never used, and Shutdown waits 5 s for it.
			_ = srv.Close()
			_ = sb.Close()
		}
		log.Info("using the embedded sandbox API (api.url = \"sandbox\"): nothing leaves this machine", "url", a.url)
	}
	var (
		c   apiClient
		err error
	)
	switch cfg.API.Flavor {
	case config.FlavorHrFlow:
		c, err = uploader.NewHrFlowClient(uploader.HrFlowOptions{
			BaseURL:   a.url,
			Key:       cfg.API.Key.Reveal(),
			UserEmail: cfg.API.UserEmail,
			Timeout:   cfg.API.Timeout,
			MaxConns:  cfg.API.Workers,
			UserAgent: "cvfeed/" + version,
			Observe:   observe,
			Open:      a.files.open,
			Logger:    log,
		})
	default:
		c, err = uploader.NewClient(uploader.ClientOptions{
			BaseURL:   a.url,
			Key:       cfg.API.Key.Reveal(),
			Timeout:   cfg.API.Timeout,
			MaxConns:  cfg.API.Workers,
			UserAgent: "cvfeed/" + version,
			Observe:   observe,
			Open:      a.files.open,
			Logger:    log,
		})
	}
	if err != nil {
		a.close()
		return nil, err
	}
	a.client = c
	return a, nil
}

// probeRead finds out whether the key may read (GET sources). Only a 403
// means a write-only key: cvfeed still works, relying on the
// duplicate-reference answer, and says so once. A 401 (the key is wrong or
// revoked) and a 402 (the quota is spent) concern every request: they are
// logged as what they are, and the uploads pause on them (or a backfill
// stops) until the key works; read access is then assumed, as when the
// API cannot be reached.
func probeRead(ctx context.Context, c apiClient, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.Sources(ctx)
	switch uploader.StatusOf(err) {
	case http.StatusForbidden:
		log.Warn("the API key has no read access (GET sources: 403): running without read access, uploads are confirmed by their profile_reference", "err", err)
		return false
	case http.StatusUnauthorized:
		log.Error("the API refused the key (GET sources: 401: wrong or revoked key; check api_key): uploads will pause until it is fixed", "err", err)
		return true
	case http.StatusPaymentRequired:
		log.Error("the API quota is spent (GET sources: 402): uploads will pause until it is renewed", "err", err)
		return true
	}
	if err != nil {
		log.Warn("cannot reach the API to check the key; uploads will be retried", "err", err)
	}
	return true
}

// source is what cmd needs to know of a [[folder]] or a [[mailbox]].
type source struct {
	name, sourceID string
	// root is a folder's path ({subdir} is relative to it); "" for a
	// mailbox.
	root     string
	metadata []config.TrainingMetadata
}

// sources lists the folders and mailboxes of a config.
func sources(folders []config.Folder, mailboxes []config.Mailbox) []source {
	var out []source
	for _, f := range folders {
		out = append(out, source{name: f.Name, sourceID: f.SourceID, root: f.Path, metadata: f.TrainingMetadata})
	}
	for _, m := range mailboxes {
		out = append(out, source{name: m.Name, sourceID: m.SourceID, metadata: m.TrainingMetadata})
	}
	return out
}

// acceptSources admits the items of these sources' source ids.
func acceptSources(srcs []source) func(string) bool {
	ids := map[string]bool{}
	for _, s := range srcs {
		ids[s.sourceID] = true
	}
	return func(id string) bool { return ids[id] }
}

// metadataFunc returns the training_metadata JSON text of an item: its
// source's list (found by source name, or, for an item of a renamed source,
// by the one source with its source_id), with {subdir} replaced by the
// first sub-folder of the file under the folder's path. An element whose
// {subdir} is empty (a file at the top of the folder) is left out.
func metadataFunc(srcs []source) func(state.Item) ([]byte, error) {
	byName := map[string]source{}
	bySource := map[string][]source{}
	for _, s := range srcs {
		byName[s.name] = s
		bySource[s.sourceID] = append(bySource[s.sourceID], s)
	}
	return func(it state.Item) ([]byte, error) {
		src, ok := byName[it.Source]
		if !ok {
			if ss := bySource[it.SourceID]; len(ss) == 1 {
				src, ok = ss[0], true
			}
		}
		if !ok {
			return nil, fmt.Errorf("source %q is no longer in the config", it.Source)
		}
		if len(src.metadata) == 0 {
			return nil, nil
		}
		sub := ""
		if src.root != "" {
			path := it.Origin // where HR put the file, if it was moved since
			if path == "" {
				path = it.Path
			}
			sub = subdir(src.root, path)
		}
		out := make([]config.TrainingMetadata, 0, len(src.metadata))
		for _, tm := range src.metadata {
			if strings.Contains(tm.FilterReference, config.TemplateSubdir) {
				if sub == "" {
					continue
				}
				tm.FilterReference = strings.ReplaceAll(tm.FilterReference, config.TemplateSubdir, sub)
			}
			out = append(out, tm)
		}
		if len(out) == 0 {
			return nil, nil
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, fmt.Errorf("source %s: training_metadata: %w", src.name, err)
		}
		return b, nil
	}
}

// subdir is the first directory of path under root, or "".
func subdir(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return ""
	}
	first, _, found := strings.Cut(filepath.ToSlash(rel), "/")
	if !found {
		return ""
	}
	return first
}

// selectSources applies -only to the folders and mailboxes.
func selectSources(cfg *config.Config, only string) ([]config.Folder, []config.Mailbox, error) {
	if only == "" {
		return cfg.Folders, cfg.Mailboxes, nil
	}
	want := map[string]bool{}
	for n := range strings.SplitSeq(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var folders []config.Folder
	var mailboxes []config.Mailbox
	for _, f := range cfg.Folders {
		if want[f.Name] {
			folders = append(folders, f)
			delete(want, f.Name)
		}
	}
	for _, m := range cfg.Mailboxes {
		if want[m.Name] {
			mailboxes = append(mailboxes, m)
			delete(want, m.Name)
		}
	}
	for n := range want {
		return nil, nil, fmt.Errorf("-only: no folder or mailbox named %q in the config", n)
	}
	return folders, mailboxes, nil
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
