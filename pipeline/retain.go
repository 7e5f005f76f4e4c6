package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// retainEvery is how often the daemon forgets the uploaded items older
// than state.keep_uploaded (they are also forgotten at each start).
const retainEvery = time.Hour

// forgetUploaded drops the uploaded items older than cfg.State.KeepUploaded
// (nothing when it is 0: for ever). That stays exactly-once: a file
// claimed again is sent with the same profile_reference, which the API
// refuses, and cvfeed confirms the profile the API holds. An error is
// logged; the state stays as it was and the next sweep tries again. It
// stops between two chunks once ctx ends.
func forgetUploaded(ctx context.Context, store *state.Store, cfg *config.Config, now time.Time, log *slog.Logger) {
	keep := cfg.State.KeepUploaded
	if keep <= 0 {
		return
	}
	start := time.Now()
	st, err := store.ForgetUploadedContext(ctx, now.Add(-keep))
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		log.Debug("the sweep of uploaded items older than state.keep_uploaded stopped with cvfeed", "forgotten", st.Forgotten, "checked", st.Checked)
		return
	case err != nil:
		log.Error("cannot forget the uploaded items older than state.keep_uploaded", "keep_uploaded", keep, "err", err)
		return
	}
	level := slog.LevelDebug
	if st.Forgotten > 0 {
		level = slog.LevelInfo
	}
	log.Log(ctx, level, "forgot uploaded items older than state.keep_uploaded", "forgotten", st.Forgotten, "checked", st.Checked,
		"keep_uploaded", keep, "took", time.Since(start).Round(time.Millisecond))
}

// sweeper runs the daemon loop's sweeps, each in a goroutine of its own,
// so that a sweep over a huge state never delays the loop (which feeds
// the systemd watchdog). One sweep at a time: a tick that finds the last
// one still running skips. stop ends the sweep running and waits for it.
type sweeper struct {
	running atomic.Bool
	wg      sync.WaitGroup
}

// start runs sweep(ctx) in a goroutine unless a sweep runs; it reports
// whether it started one. It does not wait for it.
func (s *sweeper) start(ctx context.Context, sweep func(context.Context)) bool {
	if !s.running.CompareAndSwap(false, true) {
		return false
	}
	s.wg.Go(func() {
		defer s.running.Store(false)
		sweep(ctx)
	})
	return true
}

// wait waits for the sweep running, if any (the caller ends its context).
func (s *sweeper) wait() { s.wg.Wait() }
