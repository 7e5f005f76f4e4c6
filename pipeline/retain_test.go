package pipeline

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// The daemon's loop starts a sweep and goes on: start returns while the
// sweep runs (in the bubble, a start that waited would leave every
// goroutine blocked, and synctest fails the test), the loop keeps beating
// meanwhile, a second tick skips instead of starting a second sweep, and
// the end of the context stops the sweep, which wait then waits for.
func TestSweeperRunsBesideTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var s sweeper
		started, stopped := make(chan struct{}), make(chan struct{})
		sweeps := 0
		sweep := func(ctx context.Context) {
			sweeps++
			close(started)
			<-ctx.Done() // a sweep over a huge state: as long as it takes
			close(stopped)
		}
		if !s.start(ctx, sweep) {
			t.Fatal("start of the first sweep = false, want true")
		}
		<-started
		// The loop beats every second while the sweep runs.
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		beats := 0
		for beats < 10 {
			<-tick.C
			beats++
			if s.start(ctx, sweep) {
				t.Fatal("a second sweep started while the first runs")
			}
		}
		select {
		case <-stopped:
			t.Fatal("the sweep ended before its context")
		default:
		}
		cancel()
		s.wait()
		select {
		case <-stopped:
		default:
			t.Fatal("wait returned before the sweep stopped")
		}
		if sweeps != 1 {
			t.Errorf("%d sweeps ran, want 1", sweeps)
		}
		// Over: the next tick starts a sweep again.
		again := make(chan struct{})
		if !s.start(context.Background(), func(context.Context) { close(again) }) {
			t.Error("start after the sweep ended = false, want true")
		}
		<-again
		s.wait()
	})
}
