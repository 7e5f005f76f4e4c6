package uploader

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// Store is what the pool needs of the state database.
type Store interface {
	Lease(max int, accept func(sourceID string) bool) ([]state.Item, time.Time, error)
	Complete([]state.Result) error
	Notify() <-chan struct{}
}

// API is what the pool needs of the API client: a *Client (Riminder v1.0)
// or a *HrFlowClient (HrFlow v1).
type API interface {
	PostProfile(ctx context.Context, u Upload) (Uploaded, error)
	GetProfile(ctx context.Context, sourceID, reference string) (Profile, error)
}

// PoolConfig configures a Pool. Zero values mean the defaults noted.
type PoolConfig struct {
	// Workers is the number of concurrent uploads (default 4).
	Workers int
	// RateLimit is requests per second over all workers; 0 is no limit.
	RateLimit float64
	// MaxAttempts fails an item after this many failed attempts (default 10).
	MaxAttempts int
	// Backoff is the retry delay policy (default DefaultBackoff).
	Backoff Backoff
	// Accept admits the sources whose items the pool uploads (nil: all).
	Accept func(sourceID string) bool
	// Metadata returns the training_metadata JSON text for an item (nil
	// for none). An error fails the item.
	Metadata func(it state.Item) ([]byte, error)
	// SpoolDir is where mailbox sources spool CV parts: an item whose file
	// is there is dated by its message, as recorded when the mail was read.
	// Every other item is a folder's file, dated by its modification time
	// when it is sent (Upload.ReceivedFromFile), so that a touch and a
	// retry mend a bad date.
	SpoolDir string
	// StopOnAuth makes Run return an *AuthError at the first 401, 402 or
	// 403 on an upload (backfill). Otherwise the pool pauses, says so every
	// AuthRetry, and tries one upload each time until the key works.
	StopOnAuth bool
	// AuthRetry is the pause between tries while the key is refused
	// (default 1 minute).
	AuthRetry time.Duration
	// ReadAccess says whether GET requests are allowed with the key; when
	// false, a duplicate-reference answer is trusted without GET profile.
	ReadAccess bool
	// Grace is how long in-flight uploads may finish after Run's context
	// is cancelled (0: they are aborted at once).
	Grace time.Duration
	// OnResult, if set, is called after each outcome is recorded, with
	// the time the worker spent on the item (0 for an item released
	// unsent).
	OnResult func(it state.Item, r state.Result, took time.Duration)
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// AuthError says the API refuses the key (401), the quota is spent (402) or
// the key may not do this (403): no upload can succeed until it is fixed.
type AuthError struct{ Err error }

func (e *AuthError) Error() string {
	switch StatusOf(e.Err) {
	case http.StatusUnauthorized:
		return fmt.Sprintf("the API refused the key (check api_key): %v", e.Err)
	case http.StatusPaymentRequired:
		return fmt.Sprintf("the API quota is exhausted: %v", e.Err)
	default:
		return fmt.Sprintf("the API key is not allowed to upload (is it a read-only key, or the source not the key's?): %v", e.Err)
	}
}

func (e *AuthError) Unwrap() error { return e.Err }

// Pool uploads pending items with a fixed number of workers.
type Pool struct {
	cfg   PoolConfig
	store Store
	// dyn is what a reload may change while the pool runs.
	dyn     atomic.Pointer[dynamic]
	log     *slog.Logger
	limiter *rate.Limiter
	read    atomic.Bool

	gate     *authGate
	inFlight atomic.Int64
}

// NewPool returns a pool. It does no I/O.
func NewPool(cfg PoolConfig, store Store, api API) *Pool {
	if cfg.Workers <= 0 {
		cfg.Workers = config.DefaultWorkers
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = config.DefaultMaxAttempts
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff = DefaultBackoff()
	}
	if cfg.AuthRetry <= 0 {
		cfg.AuthRetry = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lim := rate.NewLimiter(rate.Inf, 1)
	if cfg.RateLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.RateLimit), 1)
	}
	p := &Pool{cfg: cfg, store: store, log: cfg.Logger, limiter: lim, gate: newAuthGate(cfg.StopOnAuth, cfg.AuthRetry, cfg.Logger)}
	p.dyn.Store(&dynamic{api: api, accept: cfg.Accept, metadata: cfg.Metadata,
		maxAttempts: cfg.MaxAttempts, backoff: cfg.Backoff, grace: cfg.Grace})
	p.read.Store(cfg.ReadAccess)
	return p
}

// dynamic holds the settings Reconfigure swaps.
type dynamic struct {
	api         API
	accept      func(sourceID string) bool
	metadata    func(it state.Item) ([]byte, error)
	maxAttempts int
	backoff     Backoff
	grace       time.Duration
}

// Settings are what a reload changes while the pool runs. Zero values
// mean the defaults noted in PoolConfig, as in NewPool. Workers is not
// here: the number of workers changes only with a restart.
type Settings struct {
	API         API
	Accept      func(sourceID string) bool
	Metadata    func(it state.Item) ([]byte, error)
	RateLimit   float64
	ReadAccess  bool
	MaxAttempts int
	Backoff     Backoff
	// Grace is for the stops that begin after the call.
	Grace time.Duration
}

// Reconfigure applies a reloaded config while the pool runs: the API
// client (a new key or URL), the sources admitted, the training metadata,
// the rate limit, whether the key may read, the attempts before an item
// fails, the backoff and the grace of the next stop. Items already waiting
// for a retry keep the due time they were given. A pause for a refused
// key ends at once, so the new key is tried now rather than in a minute.
func (p *Pool) Reconfigure(s Settings) {
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = config.DefaultMaxAttempts
	}
	if s.Backoff.Initial <= 0 {
		s.Backoff = DefaultBackoff()
	}
	p.dyn.Store(&dynamic{api: s.API, accept: s.Accept, metadata: s.Metadata,
		maxAttempts: s.MaxAttempts, backoff: s.Backoff, grace: s.Grace})
	if s.RateLimit > 0 {
		p.limiter.SetLimit(rate.Limit(s.RateLimit))
	} else {
		p.limiter.SetLimit(rate.Inf)
	}
	p.read.Store(s.ReadAccess)
	p.Resume()
}

// InFlight is the number of items handed to workers and not yet recorded.
func (p *Pool) InFlight() int { return int(p.inFlight.Load()) }

type job struct {
	it    state.Item
	probe bool
}

// Run uploads until ctx is cancelled, then lets in-flight uploads finish
// within the grace period and records every outcome. It returns nil on
// cancellation, an *AuthError with StopOnAuth, or an error when the state
// cannot be written.
func (p *Pool) Run(ctx context.Context) error {
	// reqCtx outlives ctx by the grace period: a stop lets uploads finish.
	reqCtx, cancelReq := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReq()
	stop := context.AfterFunc(ctx, func() {
		grace := p.dyn.Load().grace
		if grace <= 0 {
			cancelReq()
			return
		}
		t := time.AfterFunc(grace, cancelReq)
		context.AfterFunc(reqCtx, func() { t.Stop() })
	})
	defer stop()

	// dispatchCtx stops handing out work: on ctx, or on an auth stop.
	dispatchCtx, stopDispatch := context.WithCancel(ctx)
	defer stopDispatch()

	jobs := make(chan job)
	results := make(chan state.Result, 512)
	var took sync.Map // key → time.Duration, for OnResult
	var workers errgroup.Group
	for range p.cfg.Workers {
		workers.Go(func() error {
			for j := range jobs {
				if p.gate.holding(j.probe) {
					// The key was refused after this job was handed
					// over: send nothing more.
					results <- state.Result{Key: j.it.Key, Outcome: state.Release, MaybeSent: j.it.MaybeSent}
					continue
				}
				start := time.Now()
				r, auth := p.process(reqCtx, j.it)
				took.Store(j.it.Key, time.Since(start))
				if auth != nil {
					p.gate.refused(auth)
				}
				if j.probe {
					p.gate.probed(auth != nil)
				}
				results <- r
			}
			return nil
		})
	}
	var g errgroup.Group
	var items sync.Map // key → item, for OnResult
	g.Go(func() error {
		defer close(jobs)
		return p.dispatch(dispatchCtx, jobs, results, &items, stopDispatch)
	})
	commitErr := make(chan error, 1)
	go func() { commitErr <- p.commit(results, &items, &took) }()
	dispatchErr := g.Wait()
	_ = workers.Wait()
	close(results)
	cerr := <-commitErr
	if cerr != nil {
		return cerr
	}
	if dispatchErr != nil {
		return dispatchErr
	}
	if err := p.gate.stoppedErr(); err != nil {
		return err
	}
	return nil
}

// leaseBatch is how many items one lease transaction takes: enough that
// the transaction's cost is spread thin, few enough that a crash leaves
// little to confirm.
func (p *Pool) leaseBatch() int { return min(max(p.cfg.Workers*32, 64), 512) }

// dispatch leases due items and hands them to workers.
func (p *Pool) dispatch(ctx context.Context, jobs chan<- job, results chan<- state.Result, items *sync.Map, stop func()) error {
	var buf []state.Item
	release := func() {
		for _, it := range buf {
			results <- state.Result{Key: it.Key, Outcome: state.Release, MaybeSent: it.MaybeSent, Next: it.NextAttempt}
		}
		buf = nil
	}
	defer release()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if err := p.gate.wait(ctx, stop); err != nil {
			return nil
		}
		if len(buf) == 0 {
			got, next, err := p.store.Lease(p.leaseBatch(), p.dyn.Load().accept)
			if err != nil {
				return err
			}
			if len(got) == 0 {
				if !p.idle(ctx, next) {
					return nil
				}
				continue
			}
			buf = got
			p.inFlight.Add(int64(len(got)))
			for _, it := range got {
				items.Store(it.Key, it)
			}
		}
		j := job{it: buf[0]}
		if p.gate.pausedNow() {
			j.probe = true
		}
		select {
		case jobs <- j:
			buf = buf[1:]
			if j.probe {
				// One upload at a time while the key is refused.
				if err := p.gate.waitProbe(ctx); err != nil {
					return nil
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// idle waits, with nothing due, until new work is queued or the next
// retry is due (next; zero: none scheduled). It returns false when ctx is
// done. Its timer lives for one wait: the dispatch loop, which runs as long
// as the process, keeps none.
func (p *Pool) idle(ctx context.Context, next time.Time) bool {
	var due <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(max(next.Sub(p.cfg.Now()), time.Millisecond))
		defer t.Stop()
		due = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-p.store.Notify():
	case <-due:
	}
	return true
}

// commitWindow is how long the first result of a batch waits for others:
// one transaction (two fsyncs) then records many outcomes.
const commitWindow = 20 * time.Millisecond

// commit records results in batches: one transaction for the results that
// arrive within commitWindow of the first (at most 512).
func (p *Pool) commit(results <-chan state.Result, items, took *sync.Map) error {
	var failed error
	batch := make([]state.Result, 0, 512)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for r := range results {
		batch = append(batch[:0], r)
		timer.Reset(commitWindow)
	gather:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-results:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		if failed != nil {
			continue // keep draining so workers never block
		}
		if err := p.store.Complete(batch); err != nil {
			failed = err
			p.log.Error("cannot record upload outcomes; stopping", "err", err)
			continue
		}
		for _, r := range batch {
			v, _ := items.LoadAndDelete(r.Key)
			d, _ := took.LoadAndDelete(r.Key)
			p.inFlight.Add(-1)
			if p.cfg.OnResult != nil {
				it, _ := v.(state.Item)
				dur, _ := d.(time.Duration)
				p.cfg.OnResult(it, r, dur)
			}
		}
	}
	return failed
}
