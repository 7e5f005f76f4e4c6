package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Handlers are the endpoints of the listener; a nil one is not served
// (404).
type Handlers struct {
	Metrics *Metrics // GET /metrics
	Health  *Health  // GET /healthz
	Webhook *Webhook // POST /webhook
}

// Server timeouts. A scrape and a webhook are small, and a slow client
// must not hold a connection: these bound what one can keep open.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// shutdownGrace is how long requests in progress get at shutdown.
	shutdownGrace = 5 * time.Second
)

// Server is the [http] listener serving /metrics, /healthz and /webhook.
type Server struct {
	addr string
	log  *slog.Logger
	srv  *http.Server

	mu sync.Mutex
	ln net.Listener
}

// NewServer returns a server for listen (host:port; port 0 picks one) with
// the given handlers. It does no I/O: see Listen and Run. log may be nil.
func NewServer(listen string, h Handlers, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "http")
	mux := http.NewServeMux()
	if h.Metrics != nil {
		mux.Handle("GET /metrics", h.Metrics.Handler(log))
	}
	if h.Health != nil {
		mux.Handle("/healthz", h.Health) // it answers other methods with 405 itself
	}
	if h.Webhook != nil {
		mux.Handle("/webhook", h.Webhook)
	}
	return &Server{
		addr: listen,
		log:  log,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}
}

// Listen binds the address, so that the daemon can fail at start (before
// READY=1) when it is taken. Run calls it if it was not called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("http listen %q: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the address listened on (with the port chosen for port 0),
// or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Run serves until ctx is done, then shuts down: requests in progress get
// a few seconds to finish. It returns nil after ctx is done, and an error
// when it cannot listen or serving fails.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	s.log.Info("http listening", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown: closing connections still open", "err", err)
		s.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve %s: %w", ln.Addr(), err)
	}
	return nil
}
