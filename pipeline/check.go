package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/imapsrc"
	"github.com/cvfeed/cvfeed/internal/termsafe"
	"github.com/cvfeed/cvfeed/uploader"
)

// checker prints one line per thing checked and remembers failures. The
// details are escaped (termsafe): they hold names from the shares, the
// mailboxes and the API, which must not forge a line of their own.
type checker struct {
	w      io.Writer
	failed int
}

func (c *checker) ok(what, detail string)   { c.line("OK", what, detail) }
func (c *checker) warn(what, detail string) { c.line("WARN", what, detail) }
func (c *checker) fail(what, detail string) {
	c.failed++
	c.line("FAIL", what, detail)
}

func (c *checker) line(verdict, what, detail string) {
	fmt.Fprintf(c.w, "%-5s %-8s %s\n", verdict, what, termsafe.Escape(detail))
}

// Check validates what cvfeed needs to run: it reaches the API (the key,
// every source_id and filter_reference), reads every folder (and writes
// its done_dir and failed_dir when they will be) and logs in to every
// mailbox, writing one line each to w (OK, WARN or FAIL and the reason),
// and returns the number of problems (FAIL lines). The config itself was
// loaded and validated by the caller.
func Check(ctx context.Context, cfg *config.Config, log *slog.Logger, w io.Writer, userAgent string) int {
	c := &checker{w: w}
	c.ok("config", fmt.Sprintf("%s: %d folders, %d mailboxes", cfg.File, len(cfg.Folders), len(cfg.Mailboxes)))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c.api(ctx, cfg, log, userAgent)
	fc := newFolderChecks(ctx, cfg)
	for _, f := range cfg.Folders {
		c.folder(f, fc)
	}
	fc.close()
	for _, m := range cfg.Mailboxes {
		acc := imapsrc.NewAccount(m, nil, imapsrc.AccountOptions{Logger: log})
		if errs := acc.Check(ctx); len(errs) > 0 {
			for _, err := range errs {
				c.fail("mailbox", fmt.Sprintf("%s (%s): %v", m.Name, m.Address, err))
			}
		} else {
			c.ok("mailbox", fmt.Sprintf("%s: logged in to %s as %s; folders %v exist", m.Name, m.Address, m.Username, m.Folders))
		}
	}
	return c.failed
}

// api checks the key, then every source_id and filter_reference.
func (c *checker) api(ctx context.Context, cfg *config.Config, log *slog.Logger, userAgent string) {
	a, err := OpenAPI(cfg, log, nil, userAgent)
	if err != nil {
		c.fail("api", err.Error())
		return
	}
	defer a.Close()
	at := termsafe.URL(a.URL) // never a password in api.url
	srcs, err := a.Client.Sources(ctx)
	switch uploader.StatusOf(err) {
	case http.StatusUnauthorized:
		c.fail("api", fmt.Sprintf("%s: the API refused the key (401: wrong or revoked key; check api_key): %v", at, err))
		return
	case http.StatusPaymentRequired:
		c.fail("api", fmt.Sprintf("%s: the API quota is spent (402): uploads would pause until it is renewed: %v", at, err))
		return
	case http.StatusForbidden:
		c.warn("api", fmt.Sprintf("%s: the key may not read (403: a write-only key?): source ids and filters cannot be checked (%v)", at, err))
		return
	}
	if err != nil {
		c.fail("api", fmt.Sprintf("%s: %v", at, err))
		return
	}
	c.ok("api", fmt.Sprintf("%s: key accepted (%s flavour), %d sources visible", at, cfg.API.Flavor, len(srcs)))
	known := map[string]string{}
	for _, s := range srcs {
		known[s.SourceID] = s.Name
	}
	for _, s := range checkSources(cfg) {
		name, ok := known[s.sourceID]
		if !ok {
			// Not in the listing (pages, or an API that lists only
			// some): ask for it by id.
			if src, err := a.Client.Source(ctx, s.sourceID); err == nil {
				name, ok = src.Name, true
			}
		}
		if ok {
			c.ok("source", fmt.Sprintf("%s: %s exists (%q)", s.name, s.sourceID, name))
		} else {
			c.fail("source", fmt.Sprintf("%s: source_id %s is not a source of this key", s.name, s.sourceID))
		}
	}
	rc, ok := a.Client.(*uploader.Client)
	if !ok {
		c.warn("filter", "filter references are not checked with the hrflow flavour")
		return
	}
	refs := map[string][]string{}
	for _, s := range checkSources(cfg) {
		for _, tm := range s.metadata {
			if tm.FilterReference != config.TemplateSubdir {
				refs[tm.FilterReference] = append(refs[tm.FilterReference], s.name)
			}
		}
	}
	if len(refs) == 0 {
		return
	}
	filters, err := rc.Filters(ctx)
	if err != nil {
		c.fail("filter", fmt.Sprintf("GET filters: %v", err))
		return
	}
	have := map[string]bool{}
	for _, f := range filters {
		have[f.FilterReference] = true
	}
	for ref, users := range refs {
		if !have[ref] {
			if _, err := rc.Filter(ctx, ref); err == nil {
				have[ref] = true
			}
		}
		if have[ref] {
			c.ok("filter", fmt.Sprintf("%q exists (used by %v)", ref, users))
		} else {
			c.fail("filter", fmt.Sprintf("%q is not a filter of this key (used by %v)", ref, users))
		}
	}
}

// folder checks that a folder can be read and is not down (see
// folderChecks), and its done_dir / failed_dir written when they will be.
func (c *checker) folder(f config.Folder, fc *folderChecks) {
	if why := fc.check(f); why != "" {
		c.fail("folder", fmt.Sprintf("%s: %s", f.Name, why))
		return
	}
	ents, err := os.ReadDir(f.Path)
	if err != nil {
		c.fail("folder", fmt.Sprintf("%s: %v", f.Name, err))
		return
	}
	detail := fmt.Sprintf("%s: %s readable (%d entries at the top)", f.Name, f.Path, len(ents))
	if fc.note != "" {
		detail += "; " + fc.note
	}
	c.ok("folder", detail)
	for _, d := range []struct{ key, dir string }{{"done_dir", f.DoneDir}, {"failed_dir", f.FailedDir}} {
		if d.dir == "" || (d.key == "done_dir" && f.AfterUpload != config.AfterMove) {
			continue
		}
		if err := writable(d.dir); err != nil {
			c.fail("folder", fmt.Sprintf("%s: %s %s: %v", f.Name, d.key, d.dir, err))
		} else {
			c.ok("folder", fmt.Sprintf("%s: %s %s writable", f.Name, d.key, d.dir))
		}
	}
}

// writable creates (if needed) and writes a probe file in dir.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".cvfeed-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(filepath.Clean(name)))
}

// checkSource is a folder or mailbox as cvfeed check sees it.
type checkSource struct {
	name, sourceID string
	metadata       []config.TrainingMetadata
}

func checkSources(cfg *config.Config) []checkSource {
	var out []checkSource
	for _, f := range cfg.Folders {
		out = append(out, checkSource{f.Name, f.SourceID, f.TrainingMetadata})
	}
	for _, m := range cfg.Mailboxes {
		out = append(out, checkSource{m.Name, m.SourceID, m.TrainingMetadata})
	}
	return out
}
