package imapsrc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// memServer is go-imap's in-process server on 127.0.0.1:0, with one user
// (cvfeed / secret) and an INBOX.
type memServer struct {
	addr string
	user *imapmemserver.User
	mem  *imapmemserver.Server
	// wrap, when set before the first connection, wraps each session.
	wrap atomic.Pointer[func(imapserver.Session) imapserver.Session]
}

func newMemServer(t *testing.T, caps imap.CapSet) *memServer {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("cvfeed", "secret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	if caps == nil {
		// IMAP4rev2 brings IDLE, MOVE and UIDPLUS; without it IDLE is refused.
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	}
	opts := &imapserver.Options{Caps: caps, InsecureAuth: true, Logger: discardLogger{}}
	ms := &memServer{user: user, mem: mem}
	opts.NewSession = func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
		if wrap := ms.wrap.Load(); wrap != nil {
			return (*wrap)(mem.NewSession()), nil, nil
		}
		return mem.NewSession(), nil, nil
	}
	srv := imapserver.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ms
}

type discardLogger struct{}

func (discardLogger) Printf(f string, a ...any) {
	if os.Getenv("IMAPSRC_SERVER_LOG") != "" {
		fmt.Fprintf(os.Stderr, f+"\n", a...)
	}
}

func (s *memServer) append(t *testing.T, mailbox string, raw []byte) {
	t.Helper()
	if _, err := s.user.Append(mailbox, bytes.NewReader(raw), &imap.AppendOptions{Time: time.Now()}); err != nil {
		t.Fatalf("append to %s: %v", mailbox, err)
	}
}

// pdf returns a small PDF document with random bytes, n bytes long.
func pdf(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	return b
}

// message builds a message with a text body and the attachments given as
// name, content pairs, base64-encoded.
func message(from, subject string, files ...any) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: jobs@example.com\r\nSubject: %s\r\nDate: Mon, 02 Jan 2026 15:04:05 +0000\r\n", from, subject)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain\r\n\r\nPlease find my CV attached.\r\n")
	for i := 0; i+1 < len(files); i += 2 {
		name, data := files[i].(string), files[i+1].([]byte)
		typ := "application/pdf"
		if !bytes.HasPrefix(data, []byte("%PDF")) {
			typ = "application/octet-stream"
		}
		fmt.Fprintf(&b, "--b1\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", typ, name, name)
		enc := base64.StdEncoding.EncodeToString(data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--b1--\r\n")
	return []byte(b.String())
}

func openStore(t *testing.T, dir string) *state.Store { return openStoreTB(t, dir) }

func openStoreTB(t testing.TB, dir string) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(dir, state.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// recStore is a Store that records the claims made.
type recStore struct {
	*state.Store
	mu     sync.Mutex
	claims []state.Candidate
	res    []state.ClaimResult
}

func (r *recStore) ClaimMail(msgs []state.MailClaim) ([][]state.ClaimResult, error) {
	res, err := r.Store.ClaimMail(msgs)
	if err == nil {
		r.mu.Lock()
		for i, m := range msgs {
			r.claims = append(r.claims, m.Parts...)
			r.res = append(r.res, res[i]...)
		}
		r.mu.Unlock()
	}
	return res, err
}

// counts returns the claims made so far: new items and duplicates.
func (r *recStore) counts() (fresh, dup int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.res {
		if x == state.ClaimNew {
			fresh++
		} else {
			dup++
		}
	}
	return fresh, dup
}

func mailboxConfig(addr string) config.Mailbox {
	return config.Mailbox{
		Name: "jobs", Address: addr, Security: config.SecurityPlain,
		Username: "cvfeed", Password: "secret", Folders: []string{"INBOX"},
		SourceID: strings.Repeat("a", 40), AfterUpload: config.MailNone, NoCVAction: config.MailNone,
		Accept: config.AcceptCV, PollInterval: time.Minute,
	}
}

// testLogger logs to the test at Debug, and keeps the lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func options(t *testing.T, dir string, logs io.Writer) AccountOptions {
	if logs == nil {
		logs = io.Discard
	}
	return AccountOptions{
		Logger: newLogger(logs), SpoolDir: filepath.Join(dir, "spool"),
		Backoff: Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	}
}

// runAccount runs a.Run in the background until the test ends.
func runAccount(t *testing.T, a *Account) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = fmt.Errorf("Run did not return 10 s after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitFor polls cond every 10 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle marks every pending item uploaded (outcome Done), or failed.
func settle(t *testing.T, st *state.Store, outcome state.Outcome) int {
	t.Helper()
	items, _, err := st.Lease(1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	var res []state.Result
	for _, it := range items {
		r := state.Result{Key: it.Key, Outcome: outcome, Attempted: true, FileID: "f-" + it.Key.Hex()[:8]}
		if outcome == state.Fail {
			r.Err = "refused"
		}
		res = append(res, r)
	}
	if err := st.Complete(res); err != nil {
		t.Fatal(err)
	}
	return len(items)
}

// proxy is a TCP proxy to a server that can cut its connections: after
// a number of bytes from the server, or on demand.
type proxy struct {
	target string
	mu     sync.Mutex
	conns  []net.Conn
	// cutAfter > 0 cuts a connection once it has relayed that many bytes
	// from the server; it applies to the next connection only.
	cutAfter atomic.Int64
	dials    atomic.Int64
}

func (p *proxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.dials.Add(1)
	server, err := (&net.Dialer{}).DialContext(ctx, network, p.target)
	if err != nil {
		return nil, err
	}
	client, mine := net.Pipe()
	limit := p.cutAfter.Swap(0)
	p.mu.Lock()
	p.conns = append(p.conns, server, mine)
	p.mu.Unlock()
	go func() {
		io.Copy(server, mine)
		server.Close()
	}()
	go func() {
		var src io.Reader = server
		if limit > 0 {
			src = io.LimitReader(server, limit)
		}
		io.Copy(mine, src)
		mine.Close()
		server.Close()
	}()
	return client, nil
}

// cut closes every connection relayed so far.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
