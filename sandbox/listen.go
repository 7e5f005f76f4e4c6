package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Listener is a sandbox served over HTTP on a TCP address: cvfeed
// sandbox, and the embedded sandbox of api.url = "sandbox".
type Listener struct {
	// URL is the base URL, http://ADDR with the port picked.
	URL    string
	s      *Server
	srv    *http.Server
	served chan error
	done   chan struct{} // closed when Serve returned
}

// Listen makes a sandbox (New) and serves it on addr (port 0 picks a free
// one) until Shutdown or Close.
func Listen(addr string, opts Options) (*Listener, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	l := &Listener{URL: "http://" + ln.Addr().String(), s: s, served: make(chan error, 1), done: make(chan struct{}),
		srv: &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}}
	if opts.Logger != nil {
		// Aborted client connections are routine in fault tests.
		l.srv.ErrorLog = slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug)
	}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != http.ErrServerClosed {
			l.served <- err
		}
	}()
	return l, nil
}

// Served receives the error that ended serving, other than a stop.
func (l *Listener) Served() <-chan error { return l.served }

// Shutdown stops serving, letting requests in progress finish until ctx
// ends, then closes the rest and the sandbox.
func (l *Listener) Shutdown(ctx context.Context) error {
	err := l.srv.Shutdown(ctx)
	if err != nil {
		_ = l.srv.Close()
	}
	<-l.done
	l.s.Close()
	return err
}

// Close stops at once. Close, not Shutdown, for the embedded sandbox: a
// client's transport may hold a connection it dialled but never used, and
// Shutdown waits for it.
func (l *Listener) Close() {
	_ = l.srv.Close()
	<-l.done
	l.s.Close()
}
