package imapsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"

	"github.com/cvfeed/cvfeed/config"
)

// stallTimeout closes a connection on which a command waits and nothing
// has been read for that long: go-imap sets no read deadline between
// responses, and a peer that vanished without a reset would hang forever.
const stallTimeout = 2 * time.Minute

// conn is one logged-in IMAP connection.
type conn struct {
	c    *imapclient.Client
	raw  *countingConn
	caps imap.CapSet
	// selected is the folder selected, readOnly whether by EXAMINE, and
	// uidValidity its UIDVALIDITY.
	selected    string
	readOnly    bool
	uidValidity uint32
	stopWatch   func()
}

// busy marks a command in flight (the stall watchdog applies) or not
// (IDLE: silence is normal).
func (cn *conn) busy(b bool) {
	if b {
		cn.raw.lastRead.Store(time.Now().UnixNano())
	}
	cn.raw.busy.Store(b)
}

func (cn *conn) close() {
	cn.stopWatch()
	cn.c.Close()
}

// logout ends the session politely, with a bound on the wait.
func (cn *conn) logout() error {
	t := time.AfterFunc(10*time.Second, func() { cn.c.Close() })
	defer t.Stop()
	cn.c.Logout().Wait()
	return nil
}

// connect dials the server, secures the connection as configured, logs in
// and reads the capabilities.
func (a *Account) connect(ctx context.Context) (*conn, error) {
	host, _, err := net.SplitHostPort(a.cfg.Address)
	if err != nil {
		return nil, &permanentError{fmt.Errorf("mailbox %s: address %q: %w", a.cfg.Name, a.cfg.Address, err)}
	}
	var tlsConf *tls.Config
	switch a.cfg.Security {
	case config.SecurityPlain:
		// config refuses this already; a source must never send a password
		// in clear over a network, whatever reached it.
		if !isLoopback(host) {
			return nil, &permanentError{fmt.Errorf("mailbox %s: security = \"plain\" is only allowed for a loopback address, not %q", a.cfg.Name, host)}
		}
	case config.SecurityTLS, config.SecurityStartTLS, "":
		if tlsConf, err = a.tlsConfig(host); err != nil {
			return nil, &permanentError{err}
		}
	default:
		return nil, &permanentError{fmt.Errorf("mailbox %s: unknown security %q", a.cfg.Name, a.cfg.Security)}
	}
	dial := a.o.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nc, err := dial(dctx, "tcp", a.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", a.cfg.Address, err)
	}
	raw := &countingConn{Conn: nc, n: &a.stats.BytesRead}
	raw.lastRead.Store(time.Now().UnixNano())
	// Until the login is done, ctx ending or a silent server closes the
	// connection; afterwards the session watches ctx itself.
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	defer stop()

	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					// The reader goroutine must never block.
					select {
					case a.mail <- struct{}{}:
					default:
					}
				}
			},
		},
		WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader},
	}
	if a.o.WireLog != nil {
		opts.DebugWriter = newRedactor(a.o.WireLog)
	}
	var c *imapclient.Client
	switch a.cfg.Security {
	case config.SecurityPlain:
		c = imapclient.New(raw, opts)
	case config.SecurityStartTLS:
		opts.TLSConfig = tlsConf
		c, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", a.cfg.Address, err)
		}
	default:
		tc := tls.Client(raw, tlsConf)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS with %s: %w", a.cfg.Address, err)
		}
		c = imapclient.New(tc, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting of %s: %w", a.cfg.Address, err)
	}
	if err := a.login(dctx, c); err != nil {
		c.Close()
		return nil, err
	}
	caps := c.Caps()
	if caps == nil {
		c.Close()
		return nil, fmt.Errorf("capabilities of %s: no answer", a.cfg.Address)
	}
	cn := &conn{c: c, raw: raw, caps: caps}
	cn.stopWatch = watchStall(c, raw)
	a.log.Debug("logged in", "address", a.cfg.Address, "security", a.cfg.Security,
		"idle", caps.Has(imap.CapIdle), "move", caps.Has(imap.CapMove), "uidplus", caps.Has(imap.CapUIDPlus), "binary", caps.Has(imap.CapBinary))
	return cn, nil
}

func (a *Account) tlsConfig(host string) (*tls.Config, error) {
	conf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if a.cfg.TLSServerName != "" {
		conf.ServerName = a.cfg.TLSServerName
	}
	if a.cfg.CAFile != "" {
		pem, err := os.ReadFile(a.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: ca_file: %w", a.cfg.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mailbox %s: ca_file %s: no PEM certificate in it", a.cfg.Name, a.cfg.CAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// login logs in with the password or XOAUTH2. A refusal is a *LoginError,
// except NO [UNAVAILABLE] (the server's authentication backend is down),
// which is retried like a network error.
func (a *Account) login(ctx context.Context, c *imapclient.Client) error {
	var err error
	if a.cfg.OAuth2 != nil {
		tok, terr := a.token(ctx)
		if terr != nil {
			return terr
		}
		err = c.Authenticate(&xoauth2Client{user: a.cfg.Username, token: tok})
	} else {
		err = c.Login(a.cfg.Username, a.cfg.Password.Reveal()).Wait()
	}
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code != imap.ResponseCodeUnavailable &&
		(ie.Type == imap.StatusResponseTypeNo || ie.Type == imap.StatusResponseTypeBad) {
		return &LoginError{Account: a.cfg.Name, Err: err}
	}
	return fmt.Errorf("log in to %s: %w", a.cfg.Address, err)
}

// countingConn counts the bytes read and when the last ones came.
type countingConn struct {
	net.Conn
	n        *atomic.Int64
	lastRead atomic.Int64
	busy     atomic.Bool
	// stalled: the watchdog closed the connection (see stallError).
	stalled atomic.Bool
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// watchStall closes c when a command is in flight and nothing was read
// for stallTimeout; the returned function stops watching.
func watchStall(c *imapclient.Client, raw *countingConn) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(stallTimeout / 8)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-c.Closed():
				return
			case <-t.C:
				if raw.busy.Load() && time.Since(time.Unix(0, raw.lastRead.Load())) > stallTimeout {
					raw.stalled.Store(true)
					c.Close()
					return
				}
			}
		}
	}()
	var once atomicOnce
	return func() { once.do(func() { close(done) }) }
}

// stallError is a connection cvfeed closed because the server sent
// nothing for stallTimeout while a command waited: said so, rather than
// the "unexpected EOF" the close causes.
type stallError struct{ err error }

func (e *stallError) Error() string {
	return fmt.Sprintf("cvfeed closed the connection: the server sent nothing for %v while a command waited (%v)", stallTimeout, e.err)
}

func (e *stallError) Unwrap() error { return e.err }

// explain turns an error of a connection the watchdog closed into a
// *stallError.
func (cn *conn) explain(err error) error {
	if err != nil && cn.raw.stalled.Load() {
		return &stallError{err: err}
	}
	return err
}

type atomicOnce struct{ done atomic.Bool }

func (o *atomicOnce) do(f func()) {
	if o.done.CompareAndSwap(false, true) {
		f()
	}
}
