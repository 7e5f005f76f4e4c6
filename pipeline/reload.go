package pipeline

import (
	"context"
	"slices"

	"github.com/cvfeed/cvfeed/config"
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
	p.pool.Reconfigure(a.Client, p.accept, metadataFunc(srcs), cfg.API.RateLimit, read)
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
	p.log.Info("config reloaded", "folders", len(cfg.Folders), "mailboxes", len(cfg.Mailboxes))
}

func joinClose(a, b func()) func() { return func() { a(); b() } }
