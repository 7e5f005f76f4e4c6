// Package notifytest is a fake systemd notify socket for tests: it
// receives the datagrams that sd_notify(3) clients send to NOTIFY_SOCKET.
//
// In process:
//
//	sock, err := notifytest.Listen(t.TempDir())
//	t.Setenv("NOTIFY_SOCKET", sock.Path())
//
// Around a cvfeed binary started by a test, put NOTIFY_SOCKET=sock.Path()
// (and WATCHDOG_USEC, WATCHDOG_PID=<child pid> for the watchdog; systemd
// sets the pid, a test can leave WATCHDOG_PID out) in its environment,
// then sock.Expect(10*time.Second, "READY=1").
package notifytest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Socket is a unixgram socket that collects notify messages.
type Socket struct {
	conn *net.UnixConn
	path string
	dir  string // a directory Listen made, removed by Close
}

// Listen opens the socket as dir/notify.sock. Socket paths are limited
// to 107 bytes; when dir is empty or too long, a short temporary
// directory is used (and removed by Close).
func Listen(dir string) (*Socket, error) {
	var made string
	if dir == "" || len(filepath.Join(dir, "notify.sock")) > 100 {
		d, err := os.MkdirTemp("", "sdnotify")
		if err != nil {
			return nil, err
		}
		dir, made = d, d
	}
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		if made != "" {
			os.RemoveAll(made)
		}
		return nil, fmt.Errorf("notify socket %q: %w", path, err)
	}
	return &Socket{conn: conn, path: path, dir: made}, nil
}

// Path is the value for NOTIFY_SOCKET.
func (s *Socket) Path() string { return s.path }

// Next returns the next datagram, waiting at most timeout. One datagram
// may hold several lines, such as "RELOADING=1\nMONOTONIC_USEC=123\n".
func (s *Socket) Next(timeout time.Duration) (string, error) {
	if err := s.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := s.conn.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Expect reads datagrams until one has the line want (such as "READY=1",
// or a prefix ending in "=", such as "STATUS="), waiting at most timeout
// in all. It returns every datagram read, the matching one last.
func (s *Socket) Expect(timeout time.Duration, want string) ([]string, error) {
	deadline := time.Now().Add(timeout)
	var got []string
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return got, fmt.Errorf("no %q within %v; got %q", want, timeout, got)
		}
		msg, err := s.Next(left)
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				return got, fmt.Errorf("no %q within %v; got %q", want, timeout, got)
			}
			return got, err
		}
		got = append(got, msg)
		if HasLine(msg, want) {
			return got, nil
		}
	}
}

// Drain returns the datagrams that arrive within d: use it to check that
// a message was not sent.
func (s *Socket) Drain(d time.Duration) []string {
	deadline := time.Now().Add(d)
	var got []string
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return got
		}
		msg, err := s.Next(left)
		if err != nil {
			return got
		}
		got = append(got, msg)
	}
}

// HasLine reports whether datagram msg has the line want, or, when want
// ends in "=", a line starting with it.
func HasLine(msg, want string) bool {
	lines := strings.Split(msg, "\n")
	if strings.HasSuffix(want, "=") {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) })
	}
	return slices.Contains(lines, want)
}

// Close closes the socket and removes what Listen created.
func (s *Socket) Close() error {
	err := s.conn.Close()
	os.Remove(s.path)
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
	return err
}
