// Package control is cvfeed's control socket: while a cvfeed process holds
// the state (bbolt admits one process), status, failed, retry, report and
// the state commands ask it through a Unix socket in state_dir (mode 0600:
// only the state's owner). The protocol is plain HTTP/JSON. Serve is the
// server, Client the client, and OpenReader picks the state file or the
// running process.
package control

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

// SocketName is the control socket's name in state_dir.
const SocketName = "cvfeed.sock"

// SocketPath is the control socket of the state in stateDir.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// Reader is what the read commands need, whether they open the state
// themselves or ask the running daemon.
type Reader interface {
	Counts() (map[string]state.Counts, error)
	Failed() ([]FailedItem, error)
	Report(since time.Time) ([]state.ReportRow, error)
	RetryFailed(ids []state.Key) (int, error)
	Close() error
}

// FailedItem is one line of cvfeed failed. File is where the file is now
// (in failed_dir once moved there; the spool for a mail attachment; for a
// quarantined message, account/folder/UIDVALIDITY/UID).
type FailedItem struct {
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	File     string    `json:"file"`
	Name     string    `json:"name"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	Updated  time.Time `json:"updated"`
}

// Local reads the state file directly.
type Local struct{ *state.Store }

// Failed lists the failed items.
func (l Local) Failed() ([]FailedItem, error) {
	var out []FailedItem
	err := l.Items(func(it state.Item) error {
		file := it.Path
		if file == "" {
			// A quarantined message has no file: its origin names it
			// (account/folder/UIDVALIDITY/UID).
			file = it.Origin
		}
		out = append(out, FailedItem{ID: it.Key.String(), Source: it.Source, File: file, Name: it.FileName,
			Attempts: it.Attempts, Error: it.LastError, Updated: it.Updated})
		return nil
	}, state.Failed)
	return out, err
}

// RetryFailed queues failed items again (all of them when ids is empty).
func (l Local) RetryFailed(ids []state.Key) (int, error) { return l.Store.RetryFailed(ids) }

// OpenReader opens the state read-only (writable when write is set),
// or, when a running cvfeed holds it, connects to that process's control
// socket (see StateOrDaemon). A state that does not exist yet, or was never
// written (zero bytes), reads as empty.
func OpenReader(stateDir string, write bool) (Reader, error) {
	path := filepath.Join(stateDir, state.FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if !write {
			return Empty{}, nil
		}
	}
	st, c, err := StateOrDaemon(stateDir, write)
	switch {
	case errors.Is(err, state.ErrEmpty):
		return Empty{}, nil
	case err != nil:
		return nil, err
	case c != nil:
		return c, nil
	}
	return Local{st}, nil
}

// Empty is the state before anything was recorded.
type Empty struct{}

// Counts is empty.
func (Empty) Counts() (map[string]state.Counts, error) { return nil, nil }

// Failed is empty.
func (Empty) Failed() ([]FailedItem, error) { return nil, nil }

// Report is empty.
func (Empty) Report(time.Time) ([]state.ReportRow, error) { return nil, nil }

// RetryFailed queues nothing.
func (Empty) RetryFailed([]state.Key) (int, error) { return 0, nil }

// Close does nothing.
func (Empty) Close() error { return nil }

// Serve serves the control socket of stateDir until ctx ends. A stale
// socket file (left by a killed process) is replaced; the state lock
// guarantees no other live process owns it.
func Serve(ctx context.Context, stateDir string, l Local, log *slog.Logger) error {
	path := SocketPath(stateDir)
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
		keys, err := ParseIDs(req.IDs)
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
	mux.HandleFunc("POST /compact", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		before, after, err := l.Compact()
		if err != nil {
			log.Error("cvfeed state compact failed: the state goes on as it was", "err", err)
		} else {
			log.Info("compacted the state (cvfeed state compact)", "before", before, "after", after, "took", time.Since(start).Round(time.Millisecond))
		}
		reply(w, CompactResult{Before: before, After: after}, err)
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

// ParseIDs parses item IDs as cvfeed failed prints them (SOURCE_ID/SHA256).
func ParseIDs(ids []string) ([]state.Key, error) {
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

// Client asks a running cvfeed through its control socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client of the socket at path. It does no I/O.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *Client) call(method, path string, body, out any) error {
	return c.callWith(c.hc, method, path, body, out)
}

func (c *Client) callWith(hc *http.Client, method, path string, body, out any) error {
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
	resp, err := hc.Do(req)
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

// Ping checks that the process answers.
func (c *Client) Ping() error {
	var s string
	return c.call("GET", "/ping", nil, &s)
}

// Counts returns the counts per source and status.
func (c *Client) Counts() (map[string]state.Counts, error) {
	var m map[string]state.Counts
	return m, c.call("GET", "/counts", nil, &m)
}

// Failed lists the failed items.
func (c *Client) Failed() ([]FailedItem, error) {
	var f []FailedItem
	return f, c.call("GET", "/failed", nil, &f)
}

// Report returns the activity per source and day since a day.
func (c *Client) Report(since time.Time) ([]state.ReportRow, error) {
	var rows []state.ReportRow
	q := ""
	if !since.IsZero() {
		q = "?since=" + since.UTC().Format(time.RFC3339)
	}
	return rows, c.call("GET", "/report"+q, nil, &rows)
}

// RetryFailed queues failed items again (all of them when ids is empty).
func (c *Client) RetryFailed(ids []state.Key) (int, error) {
	req := struct{ IDs []string }{}
	for _, k := range ids {
		req.IDs = append(req.IDs, k.String())
	}
	var n int
	return n, c.call("POST", "/retry", req, &n)
}

// Check runs cvfeed state check in the running cvfeed.
func (c *Client) Check() ([]string, error) {
	var problems []string
	return problems, c.call("GET", "/check", nil, &problems)
}

// Backup has the running cvfeed write a copy of the state to path
// (absolute: the daemon's working directory is not the caller's).
func (c *Client) Backup(path string) (int64, error) {
	var n int64
	return n, c.call("POST", "/backup", struct{ Path string }{path}, &n)
}

// Rebind records api as the state's API in the running cvfeed.
func (c *Client) Rebind(api string) (string, error) {
	var prev string
	return prev, c.call("POST", "/rebind", struct{ API string }{api}, &prev)
}

// CompactResult is the state's size before and after a compaction.
type CompactResult struct {
	Before int64 `json:"before"`
	After  int64 `json:"after"`
}

// compactTimeout bounds a compaction through the socket: it copies the
// whole state (about 10 s per GiB here), longer than any other call.
const compactTimeout = time.Hour

// Compact has the running cvfeed compact the state (state.Store.Compact):
// its writes wait meanwhile, then go to the compacted file.
func (c *Client) Compact() (CompactResult, error) {
	hc := *c.hc
	hc.Timeout = compactTimeout
	var res CompactResult
	return res, c.callWith(&hc, "POST", "/compact", struct{}{}, &res)
}

// Close does nothing: every call is its own request.
func (c *Client) Close() error { return nil }

// controlWait is how long a command waits for the control socket of a
// cvfeed that holds the state but is still starting.
const controlWait = 5 * time.Second

// StateOrDaemon opens the state (read-only unless write) or, while another
// cvfeed holds it, returns a client of that process's control socket. A
// process that holds the lock but serves no socket yet is starting (or is
// a short cvfeed state command): both are retried for up to controlWait.
func StateOrDaemon(stateDir string, write bool) (*state.Store, *Client, error) {
	path := filepath.Join(stateDir, state.FileName)
	c := NewClient(SocketPath(stateDir))
	deadline := time.Now().Add(controlWait)
	for {
		st, err := state.Open(path, &state.Options{ReadOnly: !write, LockTimeout: 200 * time.Millisecond})
		if !errors.Is(err, state.ErrLocked) {
			return st, nil, err
		}
		perr := c.Ping()
		if perr == nil {
			return nil, c, nil
		}
		if time.Now().After(deadline) {
			if _, serr := os.Stat(SocketPath(stateDir)); errors.Is(serr, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("%w; it serves no control socket yet (the daemon is starting, or a cvfeed state command runs): try again in a moment", err)
			}
			return nil, nil, fmt.Errorf("%w; its control socket does not answer (%v)", err, perr)
		}
	}
}

// Check runs the state's check (state.Store.Check) on the state file, or
// in the running cvfeed that holds it. An empty state is state.ErrEmpty.
func Check(stateDir string) ([]string, error) {
	st, c, err := StateOrDaemon(stateDir, false)
	switch {
	case err != nil:
		return nil, err
	case c != nil:
		return c.Check()
	}
	defer st.Close()
	return st.Check()
}

// Backup writes a consistent copy of the state to dst (absolute), here or
// by the running cvfeed (remote), and returns its size.
func Backup(stateDir, dst string) (n int64, remote bool, err error) {
	st, c, err := StateOrDaemon(stateDir, false)
	switch {
	case err != nil:
		return 0, false, err
	case c != nil:
		n, err = c.Backup(dst)
		return n, true, err
	}
	defer st.Close()
	n, err = st.Backup(dst)
	return n, false, err
}

// Rebind records api as the state's API, here or in the running cvfeed,
// and returns the API recorded before.
func Rebind(stateDir, api string) (string, error) {
	st, c, err := StateOrDaemon(stateDir, true)
	switch {
	case err != nil:
		return "", err
	case c != nil:
		return c.Rebind(api)
	}
	prev, err := st.RebindAPI(api)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return prev, err
}

// Compact rewrites the state to reclaim space (state.Store.Compact), here
// or in the running cvfeed (remote), and returns its sizes before and
// after. The state must exist: a missing one is not created.
func Compact(stateDir string) (res CompactResult, remote bool, err error) {
	path := filepath.Join(stateDir, state.FileName)
	if _, err := os.Stat(path); err != nil {
		return res, false, fmt.Errorf("compact state %s: %w", path, err)
	}
	st, c, err := StateOrDaemon(stateDir, true)
	switch {
	case err != nil:
		return res, false, err
	case c != nil:
		res, err = c.Compact()
		return res, true, err
	}
	res.Before, res.After, err = st.Compact()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return res, false, err
}
