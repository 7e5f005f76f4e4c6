package uploader

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// authGate is the pause of the uploads while the API refuses the key
// (401, 402, 403): nothing is burnt as failed. Its states:
//
//	open     no refusal, or the last probe got past the key check:
//	         every worker sends.
//	paused   an upload was refused for the key: workers send nothing
//	         (a job handed over before is released unsent), except the
//	         probe, one upload every retry period (or at once after
//	         Resume), handed out by the dispatcher and awaited before the
//	         next job. A probe that gets past the key check opens the
//	         gate; one refused again keeps it paused.
//	stopped  (stopOnAuth: backfill) refused once: nothing more is sent,
//	         dispatch stops and Run returns an *AuthError. Final.
//
//	open ──refused──▶ paused ──probe accepted──▶ open
//	  └──refused, stopOnAuth──▶ stopped
type authGate struct {
	stopOnAuth bool
	retry      time.Duration
	log        *slog.Logger

	mu sync.Mutex
	// err is the refusal that paused (or stopped) the gate; it stays
	// set once open again, for the stopped state's error.
	err    error
	paused bool
	// resume ends a pause early (Resume, after a reload); probeDone
	// says the probe's outcome is in.
	resume, probeDone chan struct{}
}

func newAuthGate(stopOnAuth bool, retry time.Duration, log *slog.Logger) *authGate {
	return &authGate{stopOnAuth: stopOnAuth, retry: retry, log: log, resume: make(chan struct{}, 1), probeDone: make(chan struct{}, 1)}
}

// Resume ends an auth pause now (after the key was changed).
func (p *Pool) Resume() {
	select {
	case p.gate.resume <- struct{}{}:
	default:
	}
}

// Paused returns the error that paused uploads, or nil.
func (p *Pool) Paused() error {
	g := p.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		return g.err
	}
	return nil
}

// stoppedErr is the refusal that stopped the gate (stopOnAuth), or nil.
func (g *authGate) stoppedErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopOnAuth && g.err != nil {
		return &AuthError{Err: g.err}
	}
	return nil
}

// holding reports whether a worker must not send: the gate is stopped,
// or paused and the job is not the probe.
func (g *authGate) holding(probe bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopOnAuth {
		return g.err != nil
	}
	return g.paused && !probe
}

// pausedNow reports whether the gate is paused.
func (g *authGate) pausedNow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// refused is called by a worker that got 401/402/403 on an upload: open
// → paused (or stopped).
func (g *authGate) refused(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := g.err == nil || !g.paused
	g.err = err
	if g.stopOnAuth {
		return
	}
	if first {
		g.log.Error("uploads paused: "+(&AuthError{Err: err}).Error(), "retry_in", g.retry)
		select { // a Resume from before the pause does not end it
		case <-g.resume:
		default:
		}
	}
	g.paused = true
}

// wait is the dispatcher's: it returns at once when open, calls stop and
// returns context.Canceled when stopped, and while paused blocks until
// the next probe is due.
func (g *authGate) wait(ctx context.Context, stop func()) error {
	g.mu.Lock()
	stopNow := g.stopOnAuth && g.err != nil
	paused := g.paused
	err := g.err
	g.mu.Unlock()
	if stopNow {
		stop()
		return context.Canceled
	}
	if !paused {
		return nil
	}
	t := time.NewTimer(g.retry)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-g.resume:
	case <-t.C:
		g.log.Error("uploads still paused: " + (&AuthError{Err: err}).Error() + "; trying one upload")
	}
	return nil
}

// waitProbe waits for the outcome of the probe handed out.
func (g *authGate) waitProbe(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-g.probeDone:
		return nil
	}
}

// probed records the probe's outcome: past the key check (auth false),
// paused → open.
func (g *authGate) probed(auth bool) {
	if !auth {
		g.mu.Lock()
		if g.paused {
			g.paused = false
			g.log.Info("uploads resumed: the API accepts the key again")
		}
		g.mu.Unlock()
	}
	select {
	case g.probeDone <- struct{}{}:
	default:
	}
}
