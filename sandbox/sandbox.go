// Package sandbox is a local fake of the Riminder v1.0 API and of its
// successor HrFlow v1, for tests, the benchmark and the quickstart.
//
// It follows riminder-api.md on its own and shares no code with cvfeed's
// client, so that a bug in one is caught by the other. It serves the v1.0
// paths at its root (POST /profile, GET /profile, /profiles, /sources,
// /source, /filters, /filter, POST /webhook/check) with the JSON envelope
// {code, message, data}, Content-Type exactly application/json and dates as
// PHP DateTime objects; and the HrFlow v1 paths under /v1/ (POST
// /v1/profile/parsing/file, GET /v1/profile/indexing, /v1/profile/parsing,
// /v1/sources, /v1/source, POST /v1/webhook/check), which also want
// X-USER-EMAIL and write dates in ISO 8601. Both sets share one store: a
// HrFlow source key is a source id, a reference is unique in its source
// whichever API stored it, and /_sandbox/profiles lists uploads of both
// (for a /v1 upload: source_id is the source key, profile_reference the
// reference, training_metadata the labels array as received, and
// timestamp_reception created_at in Unix seconds).
//
// Uploads are streamed: the file part is hashed (and, with Options.Dir,
// written to a temporary file) while it is read, so memory per upload is
// bounded whatever the file size. Uniqueness of profile_reference is checked
// under a short lock only once the whole body has been read.
//
// For tests it injects faults (statuses and connection resets, including
// "accepted, then the response was lost" on uploads), adds latency, sends
// signed webhooks, and exposes what it received under /_sandbox/ (no key
// needed, never faulted).
package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvfeed/cvfeed/internal/termsafe"
)

// Options configures a Server. The zero value is an open sandbox: any
// non-empty key, any 40-hex source id and any filter reference are accepted.
type Options struct {
	// Keys are the accepted API keys. Empty: any non-empty key is accepted
	// with both permissions.
	Keys []Key
	// Sources are the existing source ids (HrFlow: source keys). Empty:
	// any 40-hex id is a source.
	Sources []string
	// Filters are the existing filter references, which are also the
	// job references HrFlow labels may name. Empty: any non-empty
	// reference exists.
	Filters []string
	// Dir, when set, receives each accepted file as Dir/<sha256>. Empty:
	// only metadata is kept.
	Dir string
	// FailRate is the probability, 0..1, that an API request gets a fault.
	FailRate float64
	// FailCodes are the faults to pick from, uniformly. Empty with a
	// FailRate: 500, 503, 429 and reset.
	FailCodes []Fault
	// Latency is added before each API response.
	Latency time.Duration
	// WebhookURL receives a signed profile.parse.success event after each
	// accepted upload; WebhookSecret signs it.
	WebhookURL, WebhookSecret string
	// Logger receives request and webhook logs. Nil discards them.
	Logger *slog.Logger
	// Seed seeds the fault injector. Zero picks a random seed.
	Seed int64
}

// Key is an API key and its permissions, as on the Riminder dashboard.
type Key struct {
	Value       string
	Read, Write bool
}

// ParseKey parses "KEY" (read and write), "KEY:r" (read-only), "KEY:w"
// (write-only) or "KEY:rw". The split is at the last colon, so a key that
// contains colons needs an explicit suffix.
func ParseKey(s string) (Key, error) {
	value, perm := s, "rw"
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		value, perm = s[:i], s[i+1:]
	}
	if value == "" {
		return Key{}, errors.New("empty api key")
	}
	switch perm {
	case "rw", "wr":
		return Key{Value: value, Read: true, Write: true}, nil
	case "r":
		return Key{Value: value, Read: true}, nil
	case "w":
		return Key{Value: value, Write: true}, nil
	}
	// The key itself is a secret: name only the suffix.
	return Key{}, fmt.Errorf("api key permission %q: want r, w or rw", perm)
}

// Fault is an injected failure: an HTTP status, or a connection reset when
// Status is 0.
type Fault struct{ Status int }

// String returns the status code, or "reset".
func (f Fault) String() string {
	if f.Status == 0 {
		return "reset"
	}
	return strconv.Itoa(f.Status)
}

// ParseFaults parses a comma-separated list such as "500,503,429,reset".
// Statuses must be 400..599. An empty string is an empty list.
func ParseFaults(s string) ([]Fault, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var faults []Fault
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if strings.EqualFold(item, "reset") {
			faults = append(faults, Fault{})
			continue
		}
		n, err := strconv.Atoi(item)
		if err != nil || n < 400 || n > 599 {
			return nil, fmt.Errorf("fault %q: want a status 400..599 or reset", item)
		}
		faults = append(faults, Fault{Status: n})
	}
	return faults, nil
}

// defaultFaults is used when FailRate is set without FailCodes.
var defaultFaults = []Fault{{500}, {503}, {429}, {0}}

// Server is the fake API. It is an http.Handler; create it with New and
// release it with Close.
type Server struct {
	opts    Options
	log     *slog.Logger
	keys    map[string]Key
	sources map[string]bool   // nil in open mode
	filters map[string]string // reference -> filter_id; nil in open mode
	byFID   map[string]string // filter_id -> reference, for the -filter list
	routes  map[string]map[string]handler
	started time.Time
	faults  *injector
	hooks   *webhooks // nil without WebhookURL

	requests atomic.Int64
	statMu   sync.Mutex
	byStatus map[string]int64

	mu       sync.Mutex
	profiles []Profile
	byRef    map[refKey]int         // (source, reference) -> index in profiles
	byID     map[string]int         // profile_id -> index in profiles
	seen     []seenSource           // sources in order of first upload
	counts   map[string]int         // source_id -> profiles
	stages   map[string]*stageCount // filter reference -> stage counts
	refOrder []string               // filter references in order of first use
}

type refKey struct{ source, reference string }

type seenSource struct {
	id      string
	created time.Time
}

type stageCount struct {
	created        time.Time
	yes, later, no int
}

// New checks opts and returns a Server. It does no I/O; with a WebhookURL it
// starts the delivery goroutines, which Close stops.
func New(opts Options) (*Server, error) {
	if math.IsNaN(opts.FailRate) || opts.FailRate < 0 || opts.FailRate > 1 {
		return nil, fmt.Errorf("fail rate %v: want 0..1", opts.FailRate)
	}
	for _, f := range opts.FailCodes {
		if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
			return nil, fmt.Errorf("fault %d: want a status 400..599 or reset", f.Status)
		}
	}
	if opts.Latency < 0 {
		return nil, fmt.Errorf("latency %v: must not be negative", opts.Latency)
	}
	opts.Sources = slices.Clone(opts.Sources) // the caller may reuse its slices
	opts.Filters = slices.Clone(opts.Filters)
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		keys:     make(map[string]Key),
		started:  time.Now().UTC(),
		byStatus: make(map[string]int64),
		byRef:    make(map[refKey]int),
		byID:     make(map[string]int),
		counts:   make(map[string]int),
		stages:   make(map[string]*stageCount),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for i, k := range opts.Keys {
		if k.Value == "" || !(k.Read || k.Write) {
			return nil, fmt.Errorf("api key %d: empty value or no permission", i+1)
		}
		old := s.keys[k.Value] // a key given twice gets both permissions
		s.keys[k.Value] = Key{Value: k.Value, Read: k.Read || old.Read, Write: k.Write || old.Write}
	}
	if len(opts.Sources) > 0 {
		s.sources = make(map[string]bool)
		for _, id := range opts.Sources {
			if strings.TrimSpace(id) == "" {
				return nil, errors.New("empty source id")
			}
			s.sources[id] = true
		}
	}
	if len(opts.Filters) > 0 {
		s.filters = make(map[string]string)
		s.byFID = make(map[string]string)
		for _, ref := range opts.Filters {
			if ref == "" {
				return nil, errors.New("empty filter reference")
			}
			s.filters[ref] = filterID(ref)
			s.byFID[filterID(ref)] = ref
		}
	}
	codes := opts.FailCodes
	if len(codes) == 0 {
		codes = defaultFaults
	}
	s.faults = newInjector(opts.FailRate, codes, opts.Seed)
	if opts.WebhookURL != "" {
		u, err := url.Parse(opts.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook url \"%s\": want an http or https URL", termsafe.URL(opts.WebhookURL))
		}
		if opts.WebhookSecret == "" {
			return nil, errors.New("webhook url without a webhook secret")
		}
		s.hooks = newWebhooks(opts.WebhookURL, opts.WebhookSecret, s.log)
	}
	s.routes = s.routeTable()
	return s, nil
}

// Close stops webhook delivery; events still queued are dropped. The Server
// still answers requests afterwards, without sending webhooks.
func (s *Server) Close() error {
	if s.hooks != nil {
		s.hooks.close()
	}
	return nil
}
