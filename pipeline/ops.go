package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/ops"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/uploader"
	"github.com/cvfeed/cvfeed/watcher"
)

// opsKit is what makes the daemon observable: systemd notifications and
// watchdog, and, with [http] listen, /metrics, /healthz and /webhook.
type opsKit struct {
	log     *slog.Logger
	notify  *ops.Notifier
	beat    ops.Heartbeat
	metrics *ops.Metrics // nil without [http]: every call is a no-op
	health  *ops.Health
	webhook *ops.Webhook
	server  *ops.Server

	mu          sync.Mutex
	sourceIDs   []string
	reconnects  map[string]int64 // per account, as last reported
	quarantined map[string]int64
	lastStatus  string
	// done counts this run's outcomes, for STATUS=.
	done struct{ uploaded, failed atomic.Int64 }
}

// newOpsKit builds the kit and, with [http] listen, binds the listener
// (a taken port fails the start, before READY=1).
func newOpsKit(cfg *config.Config, store *state.Store, log *slog.Logger, version string) (*opsKit, error) {
	k := &opsKit{log: log, notify: ops.NewNotifier(log), reconnects: map[string]int64{}, quarantined: map[string]int64{}}
	k.setSources(cfg)
	if cfg.HTTP.Listen == "" {
		return k, nil
	}
	k.metrics = ops.NewMetrics(version, func() (map[string]map[string]int, error) {
		counts, err := store.Counts()
		if err != nil {
			return nil, err
		}
		out := make(map[string]map[string]int, len(counts))
		for src, c := range counts {
			out[src] = map[string]int{"pending": c.Pending, "uploaded": c.Uploaded, "failed": c.Failed,
				"duplicate": c.Duplicate, "parsed": c.Parsed, "parse_error": c.ParseError}
		}
		return out, nil
	})
	k.metrics.StateSize(func() (int64, error) {
		fi, err := os.Stat(store.Path())
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	})
	k.setSources(cfg) // again, now that the counters exist
	k.health = ops.NewHealth()
	k.health.Check("state", func() error {
		_, err := store.Size()
		return err
	})
	if s := cfg.Webhook.Secret; s != "" {
		wh, err := ops.NewWebhook([]string{s.Reveal()}, k.parsed(store), log)
		if err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		k.webhook = wh
	}
	k.server = ops.NewServer(cfg.HTTP.Listen, ops.Handlers{Metrics: k.metrics, Health: k.health, Webhook: k.webhook}, log)
	if err := k.server.Listen(); err != nil {
		return nil, err
	}
	log.Info("http listening: /metrics, /healthz"+map[bool]string{true: ", /webhook", false: ""}[k.webhook != nil], "addr", k.server.Addr())
	return k, nil
}

// parsed records the API's parse results (profile.parse.success / error).
func (k *opsKit) parsed(store *state.Store) func(context.Context, ops.Event) error {
	return func(_ context.Context, ev ops.Event) error {
		k.mu.Lock()
		ids := slices.Clone(k.sourceIDs)
		k.mu.Unlock()
		found, err := store.MarkParsed(ids, ev.ProfileReference, ev.ProfileID, ev.Type == "profile.parse.success")
		if err != nil {
			return err // 500: the API sends it again
		}
		if !found {
			k.log.Debug("webhook about a profile cvfeed did not send", "reference", ev.ProfileReference)
		}
		return nil
	}
}

func (k *opsKit) setSources(cfg *config.Config) {
	ids := map[string]bool{}
	for _, f := range cfg.Folders {
		ids[f.SourceID] = true
		k.metrics.KnowSource(f.Name)
	}
	for _, m := range cfg.Mailboxes {
		ids[m.SourceID] = true
		k.metrics.KnowSource(m.Name)
	}
	k.mu.Lock()
	k.sourceIDs = slices.Sorted(maps.Keys(ids))
	k.mu.Unlock()
}

// reload applies a reloaded config: the webhook secret and the sources.
func (k *opsKit) reload(cfg *config.Config, removed []string) {
	k.setSources(cfg)
	if k.webhook != nil && cfg.Webhook.Secret != "" {
		k.webhook.SetSecrets([]string{cfg.Webhook.Secret.Reveal()})
	}
	for _, name := range removed {
		k.metrics.ForgetSource(name)
		if k.health != nil {
			k.health.Remove("mailbox " + name)
			k.health.Remove("folder " + name)
		}
	}
}

// run serves HTTP and feeds the systemd watchdog until ctx ends.
func (k *opsKit) run(ctx context.Context) {
	var wg sync.WaitGroup
	if k.server != nil {
		wg.Go(func() {
			if err := k.server.Run(ctx); err != nil {
				k.log.Error("http server stopped", "err", err)
			}
		})
	}
	wg.Go(func() { _ = k.notify.Watchdog(ctx, k.beat.Alive) })
	wg.Wait()
}

// uploaded is the pool's OnResult part for metrics.
func (k *opsKit) uploaded(it state.Item, r state.Result, took time.Duration) {
	switch r.Outcome {
	case state.Done:
		k.done.uploaded.Add(1)
		k.metrics.UploadDone(it.Source, ops.OutcomeUploaded, took)
		k.metrics.LastSuccess(it.Source, time.Now())
	case state.Fail:
		k.done.failed.Add(1)
		k.metrics.UploadDone(it.Source, ops.OutcomeFailed, took)
	case state.Retry:
		k.metrics.UploadDone(it.Source, ops.OutcomeRetried, took)
		k.metrics.Retry(it.Source)
	}
}

// observe is the API client's hook: every status, or why there was none.
func (k *opsKit) observe(status int, err error) {
	if k.metrics == nil {
		return
	}
	if err == nil {
		k.metrics.APIStatus(status)
		return
	}
	k.metrics.APINoResponse(uploader.NoResponseReason(err))
}

// tick is called every few seconds by the daemon loop: watchdog
// heartbeat, STATUS=, health of the pool and of the folders, watcher
// modes, reconnects.
func (k *opsKit) tick(d *Pipeline) {
	k.beat.Beat()
	if err := d.pool.Paused(); err != nil {
		k.reportHealth("uploads", &uploader.AuthError{Err: err})
	} else {
		k.reportHealth("uploads", nil)
	}
	k.metrics.SetPaused(d.pool.Paused() != nil)
	for folder, m := range d.watch.Modes() {
		k.metrics.SetWatchMode(folder, m.Kind)
	}
	d.accMu.Lock()
	health := d.watch.FolderHealth()
	var down []string
	for _, f := range d.config().Folders { // not a folder a reload removed
		if err, ok := health[f.Name]; ok {
			k.reportHealth("folder "+f.Name, folderReason(err))
			k.metrics.SetFolderUp(f.Name, err == nil)
			if err != nil {
				down = append(down, f.Name)
			}
		}
	}
	for name, a := range d.accounts {
		n := a.acc.Stats().Reconnects.Load()
		for k.reconnects[name] < n {
			k.metrics.IMAPReconnect(name)
			k.reconnects[name]++
		}
		for q := a.acc.Stats().Quarantined.Load(); k.quarantined[name] < q; k.quarantined[name]++ {
			k.metrics.MailQuarantined(name)
		}
	}
	d.accMu.Unlock()
	status := fmt.Sprintf("%d uploaded, %d failed since start; %d in flight", k.done.uploaded.Load(), k.done.failed.Load(), d.pool.InFlight())
	if err := d.pool.Paused(); err != nil {
		status = "uploads paused: the API refuses the key; " + status
	}
	if len(down) > 0 {
		status = "folders down (see the log): " + strings.Join(down, ", ") + "; " + status
	}
	if status != k.lastStatus {
		k.notify.Status(status)
		k.lastStatus = status
	}
}

// mailboxUp sets cvfeed_mailbox_up for a mailbox (nil kit: no metrics).
func (k *opsKit) mailboxUp(name string, up bool) {
	if k != nil {
		k.metrics.SetMailboxUp(name, up)
	}
}

func (k *opsKit) reportHealth(name string, err error) {
	if k != nil && k.health != nil {
		k.health.Report(name, err)
	}
}

// folderReason is the /healthz reason of a folder that is down, without
// its name, which the check's name gives ("folder inbox: /srv/hr/cvs is
// missing"); nil when it is up.
func folderReason(err error) error {
	var down *watcher.DownError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &down):
		return errors.New(down.Reason())
	}
	return err
}
