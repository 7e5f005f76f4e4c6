package uploader

import (
	"context"
	"time"
)

// While the API refuses the key (401, 402, 403), uploads pause: nothing is
// burnt as failed. With StopOnAuth the pool stops instead (backfill).
// Paused, one upload is tried every AuthRetry (the probe); when it gets past
// the key check, uploads resume. Resume (after a reload) tries at once.

// Resume ends an auth pause now (after the key was changed).
func (p *Pool) Resume() {
	select {
	case p.resume <- struct{}{}:
	default:
	}
}

// Paused returns the error that paused uploads, or nil.
func (p *Pool) Paused() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		return p.authErr
	}
	return nil
}

// holding reports whether a worker must not send: the key was refused and
// the job is not the probe.
func (p *Pool) holding(probe bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.StopOnAuth {
		return p.authErr != nil
	}
	return p.paused && !probe
}

// pausedNow reports whether uploads are paused for an auth failure.
func (p *Pool) pausedNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// authFailed is called by a worker that got 401/402/403 on an upload.
func (p *Pool) authFailed(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.authErr == nil || !p.paused
	p.authErr = err
	if p.cfg.StopOnAuth {
		return
	}
	if first {
		p.log.Error("uploads paused: "+(&AuthError{Err: err}).Error(), "retry_in", p.cfg.AuthRetry)
		select { // a Resume from before the pause does not end it
		case <-p.resume:
		default:
		}
	}
	p.paused = true
}

// authGate blocks while uploads are paused until the next probe is due.
func (p *Pool) authGate(ctx context.Context, stop func()) error {
	p.mu.Lock()
	stopNow := p.cfg.StopOnAuth && p.authErr != nil
	paused := p.paused
	err := p.authErr
	p.mu.Unlock()
	if stopNow {
		stop()
		return context.Canceled
	}
	if !paused {
		return nil
	}
	t := time.NewTimer(p.cfg.AuthRetry)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.resume:
	case <-t.C:
		p.log.Error("uploads still paused: " + (&AuthError{Err: err}).Error() + "; trying one upload")
	}
	return nil
}

func (p *Pool) waitProbe(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.probeDone:
		return nil
	}
}

// probed ends the pause when the probe upload got past the key check.
func (p *Pool) probed(auth bool) {
	if !auth {
		p.mu.Lock()
		if p.paused {
			p.paused = false
			p.log.Info("uploads resumed: the API accepts the key again")
		}
		p.mu.Unlock()
	}
	select {
	case p.probeDone <- struct{}{}:
	default:
	}
}
