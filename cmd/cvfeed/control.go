package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

// bbolt admits one process: while cvfeed run holds the state, status,
// failed, retry and report ask it through a Unix socket in state_dir
// (mode 0600: only the state's owner). The protocol is plain HTTP/JSON.

// socketName is the control socket's name in state_dir.
const socketName = "cvfeed.sock"

func socketPath(stateDir string) string { return filepath.Join(stateDir, socketName) }

// stateReader is what the read commands need, whether they open the state
// themselves or ask the running daemon.
type stateReader interface {
	Counts() (map[string]state.Counts, error)
	Failed() ([]failedItem, error)
	Report(since time.Time) ([]state.ReportRow, error)
	RetryFailed(ids []state.Key) (int, error)
	Close() error
}

// failedItem is one line of cvfeed failed.
type failedItem struct {
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	File     string    `json:"file"`
	Name     string    `json:"name"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	Updated  time.Time `json:"updated"`
}

// localState reads the state file directly.
type localState struct{ *state.Store }

func (l localState) Failed() ([]failedItem, error) {
	var out []failedItem
	err := l.Items(func(it state.Item) error {
		file := it.Origin
		if file == "" {
			file = it.Path
		}
		out = append(out, failedItem{ID: it.Key.String(), Source: it.Source, File: file, Name: it.FileName,
			Attempts: it.Attempts, Error: it.LastError, Updated: it.Updated})
		return nil
	}, state.Failed)
	return out, err
}

func (l localState) RetryFailed(ids []state.Key) (int, error) { return l.Store.RetryFailed(ids) }

// openStateReader opens the state read-only (writable when write is set),
// or, when a running cvfeed holds it, connects to that process's control
// socket (see stateOrDaemon). A state that does not exist yet, or was never
// written (zero bytes), reads as empty.
func openStateReader(stateDir string, write bool) (stateReader, error) {
	path := filepath.Join(stateDir, state.FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if !write {
			return emptyState{}, nil
		}
	}
	st, c, err := stateOrDaemon(stateDir, write)
	switch {
	case errors.Is(err, state.ErrEmpty):
		return emptyState{}, nil
	case err != nil:
		return nil, err
	case c != nil:
		return c, nil
	}
	return localState{st}, nil
}

// emptyState is the state before anything was recorded.
type emptyState struct{}

func (emptyState) Counts() (map[string]state.Counts, error)    { return nil, nil }
func (emptyState) Failed() ([]failedItem, error)               { return nil, nil }
func (emptyState) Report(time.Time) ([]state.ReportRow, error) { return nil, nil }
func (emptyState) RetryFailed([]state.Key) (int, error)        { return 0, nil }
func (emptyState) Close() error                                { return nil }

// serveControl serves the control socket until ctx ends. A stale socket
// file (left by a killed process) is replaced; the state lock guarantees
// no other live process owns it.
func serveControl(ctx context.Context, stateDir string, l localState, log *slog.Logger) error {
	path := socketPath(stateDir)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { reply(w, "pong", nil) })
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, r *http.Request) {
		c, err := l.Counts()
		reply(w, c, err)
	})
	mux.HandleFunc("GET /failed", func(w http.ResponseWriter, r *http.Request) {
		f, err := l.Failed()
		reply(w, f, err)
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		var since time.Time
		if s := r.URL.Query().Get("since"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				reply(w, nil, err)
				return
			}
			since = t
		}
		rows, err := l.Report(since)
		reply(w, rows, err)
	})
	mux.HandleFunc("POST /retry", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ IDs []string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			reply(w, nil, err)
			return
		}
		keys, err := parseIDs(req.IDs)
		if err != nil {
			reply(w, nil, err)
			return
		}
		n, err := l.RetryFailed(keys)
		reply(w, n, err)
	})
	// cvfeed state check, backup and rebind.
	mux.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		problems, err := l.Check()
		reply(w, problems, err)
	})
	mux.HandleFunc("POST /backup", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Path string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			reply(w, nil, err)
			return
		}
		if !filepath.IsAbs(req.Path) {
			reply(w, nil, fmt.Errorf("backup path %q is not absolute", req.Path))
			return
		}
		n, err := l.Backup(req.Path)
		reply(w, n, err)
	})
	mux.HandleFunc("POST /rebind", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ API string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.API == "" {
			reply(w, nil, fmt.Errorf("rebind: want {\"API\": ...}"))
			return
		}
		prev, err := l.RebindAPI(req.API)
		if err == nil {
			log.Info("the state is bound to a new API address (cvfeed state rebind)", "api", req.API, "was", prev)
		}
		reply(w, prev, err)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Debug("control socket listening", "path", path)
	err = srv.Serve(ln)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func parseIDs(ids []string) ([]state.Key, error) {
	keys := make([]state.Key, 0, len(ids))
	for _, id := range ids {
		k, err := state.ParseKey(id)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// controlClient asks a running cvfeed through its control socket.
type controlClient struct {
	hc *http.Client
}

func newControlClient(path string) *controlClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &controlClient{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *controlClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://cvfeed"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running cvfeed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("the running cvfeed says: %s", e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *controlClient) ping() error {
	var s string
	return c.call("GET", "/ping", nil, &s)
}

func (c *controlClient) Counts() (map[string]state.Counts, error) {
	var m map[string]state.Counts
	return m, c.call("GET", "/counts", nil, &m)
}

func (c *controlClient) Failed() ([]failedItem, error) {
	var f []failedItem
	return f, c.call("GET", "/failed", nil, &f)
}

func (c *controlClient) Report(since time.Time) ([]state.ReportRow, error) {
	var rows []state.ReportRow
	q := ""
	if !since.IsZero() {
		q = "?since=" + since.UTC().Format(time.RFC3339)
	}
	return rows, c.call("GET", "/report"+q, nil, &rows)
}

func (c *controlClient) RetryFailed(ids []state.Key) (int, error) {
	req := struct{ IDs []string }{}
	for _, k := range ids {
		req.IDs = append(req.IDs, k.String())
	}
	var n int
	return n, c.call("POST", "/retry", req, &n)
}

// Check runs cvfeed state check in the running cvfeed.
func (c *controlClient) Check() ([]string, error) {
	var problems []string
	return problems, c.call("GET", "/check", nil, &problems)
}

// Backup has the running cvfeed write a copy of the state to path
// (absolute: the daemon's working directory is not the caller's).
func (c *controlClient) Backup(path string) (int64, error) {
	var n int64
	return n, c.call("POST", "/backup", struct{ Path string }{path}, &n)
}

// Rebind records api as the state's API in the running cvfeed.
func (c *controlClient) Rebind(api string) (string, error) {
	var prev string
	return prev, c.call("POST", "/rebind", struct{ API string }{api}, &prev)
}

func (c *controlClient) Close() error { return nil }
