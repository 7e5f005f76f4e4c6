// Package uploader sends CVs to the Riminder API: a client for each API
// flavour (riminder-api.md: Client for Riminder v1.0, HrFlowClient for its
// successor HrFlow v1) and a bounded worker pool that takes pending items
// from state, uploads them with retry, backoff and a rate limit, and
// records every outcome.
package uploader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/fileio"
	"github.com/cvfeed/cvfeed/internal/termsafe"
)

// Client talks to the Riminder v1.0 API. It is safe for concurrent use.
type Client struct {
	conn
}

// ClientOptions configures NewClient.
type ClientOptions struct {
	// BaseURL is the API root, e.g. https://www.riminder.net/sf/public/api/v1.0.
	BaseURL string
	// Key is the API secret key, sent as X-API-Key.
	Key string
	// Timeout bounds a request without a body; uploads get more time in
	// proportion to their size. Default 2 minutes.
	Timeout time.Duration
	// MaxConns is the number of connections kept open to the API; set it
	// to the number of workers. Default 4.
	MaxConns int
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
	// UserAgent is sent as User-Agent; default "cvfeed".
	UserAgent string
	// Observe, if set, is called with the status of every answer, or the
	// error of a request that got none (metrics).
	Observe func(status int, err error)
	// Open opens the file of an upload (Upload.Path) for reading; nil is
	// a plain open. cvfeed gives one that opens a folder's file inside
	// that folder only (package confine).
	Open func(path string) (*os.File, error)
	// Logger gets the notes on uploads, such as a file's date the API
	// would refuse (default: none).
	Logger *slog.Logger
}

// observer reports every round trip's status to fn.
type observer struct {
	rt http.RoundTripper
	fn func(int, error)
}

func (o observer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := o.rt.RoundTrip(r)
	if err != nil {
		o.fn(0, err)
	} else {
		o.fn(resp.StatusCode, nil)
	}
	return resp, err
}

// NewClient returns a client. It does no I/O.
func NewClient(o ClientOptions) (*Client, error) {
	c := &Client{}
	err := c.init(connOptions{base: o.BaseURL, key: o.Key, timeout: o.Timeout, maxConns: o.MaxConns,
		transport: o.Transport, agent: o.UserAgent, observe: o.Observe, open: o.Open, log: o.Logger})
	if err != nil {
		return nil, err
	}
	c.auth = func(h http.Header) { h.Set("X-API-Key", c.key) }
	return c, nil
}

// conn is what both API flavours share: the HTTP client and its transport,
// the base URL and key, multipart boundaries, and the reading of answers
// into the envelope or a typed *APIError.
type conn struct {
	// boundaryBase is random per client; a counter makes each request's
	// boundary unique without asking the kernel for randomness each time.
	boundaryBase string
	boundaryN    atomic.Uint64
	base         string
	key          string
	hc           *http.Client
	timeout      time.Duration
	agent        string
	// auth sets the flavour's authentication headers.
	auth func(http.Header)
	// bodyCode makes an error code in the envelope of a 2xx answer an
	// *APIError: a server that answers HTTP 200 with {"code":400} has not
	// accepted the request (used by the HrFlow flavour).
	bodyCode bool
	// open opens an upload's file.
	open func(string) (*os.File, error)
	log  *slog.Logger
	// now is the clock the dates sent are checked against (reception).
	now func() time.Time
}

type connOptions struct {
	base, key, agent string
	timeout          time.Duration
	maxConns         int
	transport        http.RoundTripper
	observe          func(status int, err error)
	open             func(string) (*os.File, error)
	log              *slog.Logger
}

// init checks o and sets c up. It does no I/O.
func (c *conn) init(o connOptions) error {
	u, err := url.Parse(o.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Never the password of a user:password@ in the URL.
		return fmt.Errorf("api url \"%s\": want http(s)://host/path", termsafe.URL(o.base))
	}
	if o.key == "" {
		return errors.New("api key is empty")
	}
	if o.timeout <= 0 {
		o.timeout = config.DefaultTimeout
	}
	if o.maxConns <= 0 {
		o.maxConns = config.DefaultWorkers
	}
	if o.agent == "" {
		o.agent = "cvfeed"
	}
	rt := o.transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = o.maxConns * 2
		t.MaxIdleConnsPerHost = o.maxConns * 2
		t.ResponseHeaderTimeout = o.timeout
		// Fewer, larger writes per upload.
		t.WriteBufferSize = 64 << 10
		t.ReadBufferSize = 16 << 10
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &copyConn{Conn: c}, nil
		}
		rt = t
	}
	c.boundaryBase = multipart.NewWriter(io.Discard).Boundary()[:40]
	c.base = strings.TrimRight(o.base, "/")
	c.key = o.key
	if o.observe != nil {
		rt = observer{rt: rt, fn: o.observe}
	}
	c.hc = &http.Client{Transport: rt}
	c.open = o.open
	if c.open == nil {
		c.open = fileio.Open
	}
	c.timeout = o.timeout
	c.agent = o.agent
	c.log = o.log
	if c.log == nil {
		c.log = discardLogger
	}
	c.now = time.Now
	return nil
}

// copyConn is a connection to the API whose ReadFrom copies through a
// buffer of its own. The transport writes a request body of known length
// with io.Copy from an io.LimitedReader into the connection's ReadFrom;
// a TCP connection's would allocate a new buffer the size of the body for
// every upload (a third of what a backfill allocated). Only the
// connection's write loop calls ReadFrom, one body at a time, so one
// buffer per connection is enough. Over TLS the transport writes through
// its *tls.Conn, and this is not in the way.
type copyConn struct {
	net.Conn
	buf []byte
}

func (c *copyConn) ReadFrom(r io.Reader) (int64, error) {
	if c.buf == nil {
		c.buf = make([]byte, 64<<10)
	}
	return io.CopyBuffer(struct{ io.Writer }{c.Conn}, r, c.buf)
}

// APIError is a non-2xx answer of the API.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the envelope's message (or the start of a non-JSON body),
	// with the API key removed.
	Message string
	// RetryAfter is the Retry-After header, if any.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("api: %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("api: %d %s", e.Status, e.Message)
}

// StatusOf returns the HTTP status of an *APIError in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// envelope is the API's response wrapper (riminder-api.md §1); data is
// decoded straight into the caller's value, in the same pass.
type envelope struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	Data    dataField `json:"data"`
	// Meta is HrFlow's paging block of list answers.
	Meta lenientField `json:"meta"`
}

// dataField decodes "data" into target. The API is PHP: an empty object
// may come as [] (riminder-api.md §1), and errors carry null; both leave
// target as it is.
type dataField struct{ target any }

func (d *dataField) UnmarshalJSON(b []byte) error {
	if d.target == nil || string(b) == "null" || string(b) == "[]" {
		return nil
	}
	return json.Unmarshal(b, d.target)
}

// lenientField decodes into target when it can and is ignored when it
// cannot: for side information such as paging, whose shape is no reason
// to fail a request.
type lenientField struct{ target any }

func (d *lenientField) UnmarshalJSON(b []byte) error {
	if d.target != nil {
		_ = json.Unmarshal(b, d.target)
	}
	return nil
}

// maxResponse bounds what is read of a response body.
const maxResponse = 4 << 20

// do sends req and decodes the envelope, its data into data (nil: not
// wanted). A non-2xx status is an *APIError.
func (c *conn) do(req *http.Request, data any) error { return c.send(req, data, nil) }

// send is do that also decodes the envelope's meta into meta (nil: not
// wanted), as well as it can.
func (c *conn) send(req *http.Request, data, meta any) error {
	c.auth(req.Header)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.redactErr(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		var env envelope
		if json.Unmarshal(body, &env) == nil {
			ae.Message = env.Message
		} else {
			ae.Message = snippet(body)
		}
		ae.Message = c.redact(ae.Message)
		return ae
	}
	env := envelope{Data: dataField{target: data}, Meta: lenientField{target: meta}}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s %s: %d with a body that is not the JSON envelope (%v): %q", req.Method, req.URL.Path, resp.StatusCode, err, c.redact(snippet(body)))
	}
	if c.bodyCode && env.Code >= 300 {
		return &APIError{Status: env.Code, Message: c.redact(env.Message)}
	}
	return nil
}

// redact removes the API key from text the API sends back ("Invalid secret
// key: KEY"), so it never reaches a log.
func (c *conn) redact(s string) string {
	if c.key == "" {
		return s
	}
	return strings.ReplaceAll(s, c.key, "[redacted]")
}

func (c *conn) redactErr(err error) error {
	if strings.Contains(err.Error(), c.key) {
		return errors.New(c.redact(err.Error()))
	}
	return err
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// IsTransient reports whether err is worth retrying: a network failure, a
// timeout, or a 408, 425, 429 or 5xx answer.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		s := ae.Status
		return s == http.StatusRequestTimeout || s == http.StatusTooEarly || s == http.StatusTooManyRequests || s >= 500
	}
	var fe *FileError
	if errors.As(err, &fe) {
		return false
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// Connection resets, unexpected EOFs and the like come as plain errors
	// from the transport: everything that is neither an API answer nor a
	// local file problem is the network's.
	return true
}

// IsAuth reports whether err says the key is refused or out of quota
// (401, 402, 403): every request would fail the same way.
func IsAuth(err error) bool {
	s := StatusOf(err)
	return s == http.StatusUnauthorized || s == http.StatusPaymentRequired || s == http.StatusForbidden
}

// IsDuplicateReference reports whether err is the API refusing a reference
// that is already used in the source: a 400 (or a 409, which no source
// documents but a conflict would be) whose message names the reference as
// already existing or used. That covers the sandbox's "profile_reference
// already exists" and "Profile reference already exists in this source",
// HrFlow's "Cannot create profile with this reference: x. Already used!"
// and hrflow-connectors' "Can't create Profile with reference=x already
// exists" (riminder-api.md 2.4 and 7.1).
func IsDuplicateReference(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusConflict) {
		return false
	}
	m := strings.ToLower(ae.Message)
	return strings.Contains(m, "reference") && (strings.Contains(m, "already exist") || strings.Contains(m, "already used"))
}

// boundary returns a multipart boundary unique to this request.
func (c *conn) boundary() string {
	return c.boundaryBase + strconv.FormatUint(c.boundaryN.Add(1), 36)
}

func (c *conn) url(path string, q url.Values) string {
	u := c.base + "/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}
