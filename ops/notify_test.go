package ops

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/ops/notifytest"
)

// fakeSystemd opens a notify socket in a temporary directory and points
// NOTIFY_SOCKET at it for the test.
func fakeSystemd(t *testing.T) *notifytest.Socket {
	t.Helper()
	sock, err := notifytest.Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	t.Setenv("NOTIFY_SOCKET", sock.Path())
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	return sock
}

func expect(t *testing.T, sock *notifytest.Socket, want string) string {
	t.Helper()
	got, err := sock.Expect(2*time.Second, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("datagrams %q, want only the one with %q", got, want)
	}
	return got[len(got)-1]
}

func TestNotifierMessages(t *testing.T) {
	sock := fakeSystemd(t)
	n := NewNotifier(nil)

	n.Ready()
	expect(t, sock, "READY=1")

	n.Status("2 folders\n1 mailbox; 3 pending")
	if msg := expect(t, sock, "STATUS="); msg != "STATUS=2 folders 1 mailbox; 3 pending" {
		t.Errorf("status datagram %q, want the status on one line", msg)
	}
	n.Status("2 folders 1 mailbox; 3 pending") // the same: not sent again
	n.Status("2 folders 1 mailbox; 0 pending")
	if msg := expect(t, sock, "STATUS="); msg != "STATUS=2 folders 1 mailbox; 0 pending" {
		t.Errorf("status datagram %q, want the new status", msg)
	}

	n.Reloading()
	msg := expect(t, sock, "RELOADING=1")
	if !notifytest.HasLine(msg, "MONOTONIC_USEC=") {
		t.Errorf("reloading datagram %q has no MONOTONIC_USEC=", msg)
	}

	n.Stopping()
	expect(t, sock, "STOPPING=1")

	if extra := sock.Drain(50 * time.Millisecond); len(extra) != 0 {
		t.Errorf("unexpected datagrams %q", extra)
	}
}

func TestWatchdog(t *testing.T) {
	sock := fakeSystemd(t)
	t.Setenv("WATCHDOG_USEC", "40000") // 40 ms: a ping due every 20 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := NewNotifier(nil)
	if got := n.WatchdogInterval(); got != 40*time.Millisecond {
		t.Fatalf("WatchdogInterval() = %v, want 40ms", got)
	}

	var hb Heartbeat
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Watchdog(ctx, hb.Alive) }()

	// A loop that does not beat gets no ping.
	if got := sock.Drain(150 * time.Millisecond); len(got) != 0 {
		t.Errorf("datagrams %q while alive() is false, want none", got)
	}

	// A loop that beats does.
	stop := make(chan struct{})
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			hb.Beat()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	for range 3 {
		expect(t, sock, "WATCHDOG=1")
	}
	close(stop)
	<-beaten

	// The loop hangs again: pings stop.
	sock.Drain(60 * time.Millisecond) // at most one ping for the last beat
	if got := sock.Drain(150 * time.Millisecond); len(got) != 0 {
		t.Errorf("datagrams %q after the loop stopped beating, want none", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watchdog() = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Watchdog did not return after cancel")
	}
}

func TestWatchdogOff(t *testing.T) {
	tests := []struct{ name, usec, pid string }{
		{"no WATCHDOG_USEC", "", ""},
		{"another process's watchdog", "40000", strconv.Itoa(os.Getpid() + 1)},
		{"bad WATCHDOG_USEC", "soon", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := fakeSystemd(t)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			done := make(chan error, 1)
			go func() { done <- NewNotifier(nil).Watchdog(t.Context(), func() bool { return true }) }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Watchdog() = %v, want nil", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Watchdog did not return at once with the watchdog off")
			}
			if got := sock.Drain(100 * time.Millisecond); len(got) != 0 {
				t.Errorf("datagrams %q, want none", got)
			}
		})
	}
}

// Without NOTIFY_SOCKET nothing is sent and nothing is logged; with a
// socket nobody reads, a failure is logged.
func TestNotifierNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	var buf bytes.Buffer
	n := NewNotifier(slog.New(slog.NewTextHandler(&buf, nil)))
	n.Ready()
	n.Status("x")
	n.Reloading()
	n.Stopping()
	if buf.Len() != 0 {
		t.Errorf("logs %q, want none without NOTIFY_SOCKET", buf.String())
	}

	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	n.Ready()
	if !strings.Contains(buf.String(), "READY=1") {
		t.Errorf("logs %q, want a line about READY=1 not sent", buf.String())
	}
}

func TestHeartbeat(t *testing.T) {
	var hb Heartbeat
	if hb.Alive() {
		t.Error("Alive() = true before any Beat")
	}
	hb.Beat()
	hb.Beat()
	if !hb.Alive() {
		t.Error("Alive() = false after Beat")
	}
	if hb.Alive() {
		t.Error("Alive() = true twice for one beat")
	}
}

// TestNotifyProcess runs a child process under a fake NOTIFY_SOCKET, as
// an end-to-end test runs the cvfeed binary: the child is this test
// binary, running notifyChild.
func TestNotifyProcess(t *testing.T) {
	if os.Getenv("OPS_NOTIFY_CHILD") == "1" {
		notifyChild()
		return
	}
	sock := fakeSystemd(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestNotifyProcess$")
	cmd.Env = append(os.Environ(), "OPS_NOTIFY_CHILD=1", "NOTIFY_SOCKET="+sock.Path(),
		"WATCHDOG_USEC=40000") // no WATCHDOG_PID: systemd sets it, a test need not
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	for _, want := range []string{"READY=1", "STATUS=child up", "WATCHDOG=1", "STOPPING=1"} {
		if got, err := sock.Expect(10*time.Second, want); err != nil {
			t.Fatalf("%v (datagrams %q)", err, got)
		}
	}
}

// notifyChild is the child of TestNotifyProcess.
func notifyChild() {
	n := NewNotifier(nil)
	n.Ready()
	n.Status("child up")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	n.Watchdog(ctx, func() bool { return true })
	n.Stopping()
}
