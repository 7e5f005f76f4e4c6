package ops

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier speaks systemd's notify protocol (sd_notify(3)) for a
// Type=notify unit: READY=1, STATUS=, RELOADING=1, STOPPING=1 and the
// watchdog. It reads NOTIFY_SOCKET on every call (and leaves it set, which
// is harmless: cvfeed starts no children); without it every method does
// nothing. A message that cannot be sent is logged, never returned: there
// is nothing else the daemon could do about it. Safe for concurrent use.
type Notifier struct {
	log *slog.Logger

	mu         sync.Mutex
	lastStatus string
}

// NewNotifier returns a Notifier logging to log (nil: no logs).
func NewNotifier(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{log: log}
}

func (n *Notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notify", "message", strings.SplitN(state, "\n", 2)[0], "err", err)
	}
}

// Ready tells systemd that cvfeed is up: call it once state is open and
// the sources are started, and again when a reload is done.
func (n *Notifier) Ready() { n.notify(daemon.SdNotifyReady) }

// Status sets the one-line status that systemctl status shows, such as
// "3 folders, 1 mailbox; 12 pending, 1402 uploaded, 2 failed". Line breaks
// become spaces, and a status equal to the last one is not sent again, so
// the daemon may call it on every change.
func (n *Notifier) Status(s string) {
	s = strings.Join(strings.Fields(s), " ")
	n.mu.Lock()
	same := s == n.lastStatus
	n.lastStatus = s
	n.mu.Unlock()
	if !same {
		n.notify("STATUS=" + s)
	}
}

// Reloading tells systemd that a reload (SIGHUP) began; call Ready when it
// is done. MONOTONIC_USEC is what Type=notify-reload (systemd 253 and
// later) wants with it; plain Type=notify ignores it.
func (n *Notifier) Reloading() {
	n.notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// Stopping tells systemd that cvfeed is shutting down (draining uploads).
func (n *Notifier) Stopping() { n.notify(daemon.SdNotifyStopping) }

// WatchdogInterval returns WatchdogSec= as systemd passed it in
// WATCHDOG_USEC (for this process, per WATCHDOG_PID), or 0 when the
// watchdog is off or the variables are unreadable.
func (n *Notifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog disabled", "err", err)
		return 0
	}
	return d
}

// Watchdog sends WATCHDOG=1 every half of WatchdogInterval until ctx is
// done, but only when alive reports that the main loop made progress since
// the previous ping: a hung loop then stops the pings and systemd restarts
// cvfeed after WatchdogSec. alive is typically a Heartbeat's Alive.
// systemd arms the watchdog when the start is over (READY=1; the start
// itself is bounded by TimeoutStartSec=), so the loop must beat from then
// on; pings sent earlier do no harm. With the watchdog off it returns at
// once. It returns nil: the daemon runs it in its group like any
// component.
func (n *Notifier) Watchdog(ctx context.Context, alive func() bool) error {
	interval := n.WatchdogInterval()
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	stalled := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !alive() {
			if !stalled {
				n.log.Error("main loop made no progress: systemd watchdog not fed; systemd restarts cvfeed if this lasts",
					"watchdog", interval)
			}
			stalled = true
			continue
		}
		if stalled {
			n.log.Info("main loop progresses again: systemd watchdog fed")
			stalled = false
		}
		n.notify(daemon.SdNotifyWatchdog)
	}
}

// Heartbeat tells the watchdog that a loop makes progress. The loop calls
// Beat at least every quarter of the watchdog interval, even when idle
// (a ticker case in its select: WatchdogSec=60 and a beat every 5 s is
// ample); Alive reports whether it did since the last call. The zero value
// is ready to use.
type Heartbeat struct{ beat atomic.Bool }

// Beat records progress.
func (h *Heartbeat) Beat() { h.beat.Store(true) }

// Alive reports whether Beat was called since the last Alive, and resets.
func (h *Heartbeat) Alive() bool { return h.beat.Swap(false) }
