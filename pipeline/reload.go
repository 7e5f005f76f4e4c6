package pipeline

import (
	"context"
	"reflect"
	"slices"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/uploader"
)

// reload applies the config file again. A config with errors is refused
// and the running one kept; what cannot change without a restart is said.
func (p *Pipeline) reload(ctx context.Context) {
	old := p.config()
	cfg, err := config.Load(old.File)
	if err != nil {
		p.log.Error("reload refused: the config has errors; the running config stays", "err", err)
		return
	}
	if cfg.StateDir != old.StateDir {
		p.log.Warn("reload: state_dir changes only with a restart", "running", old.StateDir)
		cfg.StateDir = old.StateDir
	}
	if cfg.API.Workers != old.API.Workers {
		p.log.Warn("reload: api.workers changes only with a restart", "running", old.API.Workers)
	}
	if cfg.HTTP.Listen != old.HTTP.Listen {
		p.log.Warn("reload: http.listen changes only with a restart", "running", old.HTTP.Listen)
	}
	if (cfg.Webhook.Secret == "") != (old.Webhook.Secret == "") {
		// A new secret for a served /webhook is applied; serving it or
		// not is decided at start.
		p.log.Warn("reload: adding or removing webhook.secret takes a restart (a new secret is applied)")
	}
	if APIIdentity(cfg) != APIIdentity(old) {
		// The state counts uploads for one API (cvfeed state rebind
		// declares a new address of the same one).
		if err := BindAPI(p.store, cfg, p.log); err != nil {
			p.log.Error("reload refused: the running config stays", "err", err)
			return
		}
	}
	a := p.api
	if cfg.API.URL != old.API.URL || cfg.API.Key != old.API.Key || cfg.API.Timeout != old.API.Timeout ||
		cfg.API.Flavor != old.API.Flavor || cfg.API.UserEmail != old.API.UserEmail {
		na, err := OpenAPI(cfg, p.log, p.ops.observe, "cvfeed/"+p.version)
		if err != nil {
			p.log.Error("reload refused: cannot use the new API settings; the running config stays", "err", err)
			return
		}
		a = na
	}
	read := ProbeRead(ctx, a.Client, p.log)
	srcs := sources(cfg.Folders, cfg.Mailboxes)
	p.accept = p.acceptUp(cfg.Folders, acceptSources(srcs))
	p.pool.Reconfigure(uploader.Settings{
		API:         a.Client,
		Accept:      p.accept,
		Metadata:    metadataFunc(srcs),
		RateLimit:   cfg.API.RateLimit,
		ReadAccess:  read,
		MaxAttempts: cfg.API.MaxAttempts,
		Backoff:     uploader.Backoff{Initial: cfg.API.RetryInitial, Max: cfg.API.RetryMax},
		Grace:       cfg.ShutdownTimeout,
	})
	if a != p.api {
		// In-flight uploads finish with the old client; its sandbox, if
		// any, is closed at stop with the new one's.
		prev := p.api
		a.close, prev.close = joinClose(a.close, prev.close), func() {}
		p.mu.Lock()
		p.api = a
		p.mu.Unlock()
	}
	p.api.files.set(cfg.Folders)
	p.watch.SetFolders(cfg.Folders)
	p.actions.SetFolders(cfg.Folders)
	p.setActing(cfg.Folders)
	var removed []string
	for _, s := range sources(old.Folders, old.Mailboxes) {
		if !slices.ContainsFunc(srcs, func(n source) bool { return n.name == s.name }) {
			removed = append(removed, s.name)
		}
	}
	p.setMailboxes(cfg.Mailboxes, true)
	p.ops.reload(cfg, removed)
	p.mu.Lock()
	p.cfg = cfg
	p.mu.Unlock()
	p.log.Info("config reloaded", "folders", len(cfg.Folders), "mailboxes", len(cfg.Mailboxes),
		"changed", changedKeys(old, cfg))
}

func joinClose(a, b func()) func() { return func() { a(); b() } }

// changedKeys names the settings a reload changed (secrets by name only),
// for the log line that says it was applied.
func changedKeys(old, cfg *config.Config) []string {
	var out []string
	add := func(key string, changed bool) {
		if changed {
			out = append(out, key)
		}
	}
	add("shutdown_timeout", old.ShutdownTimeout != cfg.ShutdownTimeout)
	add("api.url", old.API.URL != cfg.API.URL)
	add("api.flavor", old.API.Flavor != cfg.API.Flavor)
	add("api.user_email", old.API.UserEmail != cfg.API.UserEmail)
	add("api.api_key", old.API.Key != cfg.API.Key)
	add("api.rate_limit", old.API.RateLimit != cfg.API.RateLimit)
	add("api.max_attempts", old.API.MaxAttempts != cfg.API.MaxAttempts)
	add("api.timeout", old.API.Timeout != cfg.API.Timeout)
	add("api.retry_initial", old.API.RetryInitial != cfg.API.RetryInitial)
	add("api.retry_max", old.API.RetryMax != cfg.API.RetryMax)
	add("folder", !reflect.DeepEqual(old.Folders, cfg.Folders))
	add("mailbox", !reflect.DeepEqual(old.Mailboxes, cfg.Mailboxes))
	add("webhook.secret", old.Webhook.Secret != cfg.Webhook.Secret)
	return out
}
