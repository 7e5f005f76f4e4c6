package uploader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// HrFlowClient talks to the HrFlow.ai v1 API, Riminder's successor
// (riminder-api.md 7): uploads go to POST profile/parsing/file, lookups to
// GET profile/indexing. It has the methods of Client, so the pool (retries,
// duplicate confirmation, auth pause, write-only keys) works the same with
// either. It is safe for concurrent use.
type HrFlowClient struct {
	conn
	email string
}

// HrFlowOptions configures NewHrFlowClient.
type HrFlowOptions struct {
	// BaseURL is the API root, e.g. https://api.hrflow.ai/v1 (the
	// sandbox serves it under /v1).
	BaseURL string
	// Key is the API secret key, sent as X-API-KEY.
	Key string
	// UserEmail is the HrFlow user the key belongs to, sent as
	// X-USER-EMAIL on every request.
	UserEmail string
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

// NewHrFlowClient returns a client for the HrFlow v1 API. It does no I/O.
func NewHrFlowClient(o HrFlowOptions) (*HrFlowClient, error) {
	email := strings.TrimSpace(o.UserEmail)
	if email == "" {
		return nil, errors.New("api user_email is empty: the hrflow flavour sends it as X-USER-EMAIL")
	}
	if strings.ContainsAny(email, "\r\n") {
		return nil, errors.New("api user_email: a header value cannot hold a line break")
	}
	c := &HrFlowClient{email: email}
	err := c.init(connOptions{base: o.BaseURL, key: o.Key, timeout: o.Timeout, maxConns: o.MaxConns,
		transport: o.Transport, agent: o.UserAgent, observe: o.Observe, open: o.Open, log: o.Logger})
	if err != nil {
		return nil, err
	}
	c.auth = func(h http.Header) {
		// Spelled as py-hf and js-hf send them; header names are
		// case-insensitive, but a server in between may not know it.
		h["X-API-KEY"] = []string{c.key}
		h["X-USER-EMAIL"] = []string{c.email}
	}
	c.bodyCode = true
	return c, nil
}

// PostProfile uploads a file with POST profile/parsing/file, streamed from
// disk like Client.PostProfile. A 201 (parsed at once) and a 202 (queued
// for parsing, data []) are both success.
//
// Fields, in order: source_key (u.SourceID), reference, created_at (ISO
// 8601 of u.Received, UTC, "2006-01-02T15:04:05+00:00"; left out when
// zero), labels (u.TrainingMetadata turned into HrFlow labels, see
// hrflowLabels), tags and metadatas ([]), sync_parsing "0", then file.
// Training metadata that cannot be turned into labels is an *InputError.
func (c *HrFlowClient) PostProfile(ctx context.Context, u Upload) (Uploaded, error) {
	labels, err := hrflowLabels(u.TrainingMetadata)
	if err != nil {
		return Uploaded{}, &InputError{Field: "training_metadata", Err: fmt.Errorf("as hrflow labels: %w", err)}
	}
	var raw json.RawMessage
	fields := func(u Upload) []formField { return hrflowFields(u, labels) }
	if err := c.postFile(ctx, "profile/parsing/file", fields, u, &raw); err != nil {
		return Uploaded{}, err
	}
	out := Uploaded{ProfileReference: u.Reference, FileName: u.FileName}
	// A sync parse answers {parsing, profile}. Only the profile's key and
	// reference are of use, and a shape other than documented is no
	// reason to doubt an upload the API accepted.
	var d struct {
		Profile struct {
			Key       string `json:"key"`
			Reference string `json:"reference"`
		} `json:"profile"`
	}
	if len(raw) > 0 && json.Unmarshal(raw, &d) == nil {
		out.FileID = d.Profile.Key
		if d.Profile.Reference != "" {
			out.ProfileReference = d.Profile.Reference
		}
	}
	return out, nil
}

// hrflowFields are the text parts of POST profile/parsing/file, in the
// order they go out.
func hrflowFields(u Upload, labels []byte) []formField {
	fields := make([]formField, 0, 7)
	fields = append(fields, formField{"source_key", u.SourceID})
	if u.Reference != "" {
		fields = append(fields, formField{"reference", u.Reference})
	}
	if !u.Received.IsZero() {
		fields = append(fields, formField{"created_at", isoTime(u.Received)})
	}
	return append(fields,
		formField{"labels", string(labels)},
		formField{"tags", "[]"},
		formField{"metadatas", "[]"},
		// Async, the default: sync parsing must be enabled on the
		// source by HrFlow, and cvfeed does not wait for the parse.
		formField{"sync_parsing", "0"},
	)
}

// isoTime formats t as ISO 8601 in UTC with a numeric offset, the form
// Python's datetime.isoformat() writes for an aware UTC time: parsed by
// every ISO 8601 reader, where a "Z" suffix is not (Python < 3.11).
func isoTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05") + "+00:00"
}

// trainingElement is an element of the Riminder training_metadata array
// as cvfeed writes it (riminder-api.md 2.2).
type trainingElement struct {
	FilterReference string          `json:"filter_reference"`
	Stage           *string         `json:"stage"`
	StageTimestamp  *int64          `json:"stage_timestamp"`
	Rating          json.RawMessage `json:"rating"`
	RatingTimestamp *int64          `json:"rating_timestamp"`
}

// hrflowLabel is an HrFlow profile label in the shape of py-hf's
// schemas.py Label, without board_key and job_key, which cvfeed does not
// know: the job is named by its reference. Every key is sent, null when
// unset, as for training_metadata (riminder-api.md 10.2).
type hrflowLabel struct {
	JobReference string  `json:"job_reference"`
	Stage        *string `json:"stage"`
	DateStage    *string `json:"date_stage"`
	Rating       *int    `json:"rating"`
	DateRating   *string `json:"date_rating"`
}

// hrflowLabels turns the JSON text of a Riminder training_metadata array
// into the JSON text of an HrFlow labels array (riminder-api.md 7.1):
//
//	filter_reference  → job_reference
//	stage             → stage, lowercased: NEW, YES, LATER, NO → "new", "yes",
//	                    "later", "no" (the lowercase values of the HrFlow docs'
//	                    examples and of HrFlow's stage filters; null stays null)
//	stage_timestamp   → date_stage, ISO 8601 in UTC (py-hf's newer schema,
//	                    rather than the docs' older stage_timestamp seconds)
//	rating            → rating (1..4 fits HrFlow's 1..5)
//	rating_timestamp  → date_rating, ISO 8601 in UTC
//
// nil, empty or [] metadata is the empty array "[]", which py-hf also sends
// when there are no labels.
func hrflowLabels(md []byte) ([]byte, error) {
	labels := []hrflowLabel{}
	if s := strings.TrimSpace(string(md)); s != "" && s != "null" {
		var elems []trainingElement
		if err := json.Unmarshal([]byte(s), &elems); err != nil {
			return nil, fmt.Errorf("not a JSON array of training_metadata objects: %v", err)
		}
		for i, e := range elems {
			l, err := hrflowLabelOf(e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %v", i, err)
			}
			labels = append(labels, l)
		}
	}
	return json.Marshal(labels)
}

func hrflowLabelOf(e trainingElement) (hrflowLabel, error) {
	if e.FilterReference == "" {
		return hrflowLabel{}, errors.New("filter_reference is empty")
	}
	l := hrflowLabel{JobReference: e.FilterReference}
	if e.Stage != nil {
		switch st := strings.ToLower(*e.Stage); st {
		case "new", "yes", "later", "no":
			l.Stage = &st
		default:
			return l, fmt.Errorf("stage %q: want NEW, YES, LATER, NO or null", *e.Stage)
		}
	}
	if r := strings.TrimSpace(string(e.Rating)); r != "" && r != "null" {
		n, err := strconv.Atoi(r)
		if err != nil {
			return l, fmt.Errorf("rating %s: want an integer or null", r)
		}
		l.Rating = &n
	}
	if e.StageTimestamp != nil {
		s := isoTime(time.Unix(*e.StageTimestamp, 0))
		l.DateStage = &s
	}
	if e.RatingTimestamp != nil {
		s := isoTime(time.Unix(*e.RatingTimestamp, 0))
		l.DateRating = &s
	}
	return l, nil
}

// GetProfile asks GET profile/indexing for the profile with this reference
// in the source (the source key). A profile that does not exist is an
// *APIError with status 404 or 400, which the pool reads as "absent".
// Profile.ProfileID is the HrFlow profile key.
//
// An asynchronous upload (202) is only found here once HrFlow has parsed
// and indexed it.
func (c *HrFlowClient) GetProfile(ctx context.Context, sourceID, reference string) (Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	q := url.Values{"source_key": {sourceID}, "reference": {reference}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("profile/indexing", q), nil)
	if err != nil {
		return Profile{}, fmt.Errorf("get profile/indexing: %w", err)
	}
	var raw json.RawMessage
	if err := c.do(req, &raw); err != nil {
		return Profile{}, err
	}
	p := Profile{ProfileReference: reference, SourceID: sourceID}
	var d struct {
		Key       string `json:"key"`
		Reference string `json:"reference"`
	}
	if len(raw) > 0 && json.Unmarshal(raw, &d) == nil {
		p.ProfileID = d.Key
		if d.Reference != "" {
			p.ProfileReference = d.Reference
		}
	}
	return p, nil
}

// hrflowPageSize is the limit asked of GET sources: py-hf's default, which
// the API surely accepts.
const hrflowPageSize = 30

// Sources lists the sources the key can see, with GET sources, page by
// page. Source.SourceID is the source key.
func (c *HrFlowClient) Sources(ctx context.Context) ([]Source, error) {
	var out []Source
	seen := make(map[string]bool)
	for page := 1; page <= 1000; page++ {
		list, maxPage, err := c.sourcesPage(ctx, page)
		if err != nil {
			return nil, err
		}
		added := 0
		for _, s := range list {
			if !seen[s.SourceID] {
				seen[s.SourceID] = true
				out = append(out, s)
				added++
			}
		}
		// Stop at the last page the API announces (meta.maxPage), and in
		// any case at a short page or one with nothing new (a server that
		// ignores page would otherwise be asked forever).
		if (maxPage > 0 && page >= maxPage) || len(list) < hrflowPageSize || added == 0 {
			break
		}
	}
	if out == nil {
		out = []Source{}
	}
	return out, nil
}

func (c *HrFlowClient) sourcesPage(ctx context.Context, page int) (list []Source, maxPage int, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	q := url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(hrflowPageSize)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("sources", q), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("get sources: %w", err)
	}
	var data []struct {
		Key  string `json:"key"`
		Name string `json:"name"`
		Type string `json:"type"`
	}
	var meta struct {
		MaxPage int `json:"maxPage"`
	}
	if err := c.send(req, &data, &meta); err != nil {
		return nil, 0, err
	}
	for _, s := range data {
		list = append(list, Source{SourceID: s.Key, Name: s.Name, Type: s.Type})
	}
	return list, meta.MaxPage, nil
}

// Source asks for one source by its key (GET source?key=).
func (c *HrFlowClient) Source(ctx context.Context, key string) (Source, error) {
	d, err := getOne[struct {
		Key  string `json:"key"`
		Name string `json:"name"`
		Type string `json:"type"`
	}](ctx, &c.conn, "source", url.Values{"key": {key}})
	return Source{SourceID: d.Key, Name: d.Name, Type: d.Type}, err
}
