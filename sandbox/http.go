package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// handler answers one API request. It returns the reply instead of writing
// it, so that a fault injected after processing can replace it.
type handler func(r *http.Request) reply

// reply is an API response: the envelope {code, message, data} with code =
// status, plus extra headers.
type reply struct {
	status  int
	message string
	data    any
	meta    any // HrFlow list paging; nil leaves "meta" out
	header  http.Header
}

// envelope is the body of every API response.
type envelope struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Meta    any    `json:"meta,omitempty"`
	Data    any    `json:"data"`
}

func ok(status int, message string, data any) reply {
	return reply{status: status, message: message, data: data}
}

func fail(status int, message string) reply {
	return reply{status: status, message: message}
}

func badRequest(message string) reply { return fail(http.StatusBadRequest, message) }

// routeTable is the route table: path, then method. The Riminder v1.0 paths
// are at the root, the HrFlow v1 paths under hrflowPrefix.
func (s *Server) routeTable() map[string]map[string]handler {
	return map[string]map[string]handler{
		"/profile":       {http.MethodGet: s.getProfile, http.MethodPost: s.postProfile},
		"/profiles":      {http.MethodGet: s.getProfiles},
		"/sources":       {http.MethodGet: s.getSources},
		"/source":        {http.MethodGet: s.getSource},
		"/filters":       {http.MethodGet: s.getFilters},
		"/filter":        {http.MethodGet: s.getFilter},
		"/webhook/check": {http.MethodPost: s.checkWebhook},

		hrflowPrefix + "profile/parsing/file": {http.MethodPost: s.postParsingFile},
		hrflowPrefix + "profile/indexing":     {http.MethodGet: s.getIndexing},
		hrflowPrefix + "profile/parsing":      {http.MethodGet: s.getParsing},
		hrflowPrefix + "sources":              {http.MethodGet: s.getHrFlowSources},
		hrflowPrefix + "source":               {http.MethodGet: s.getHrFlowSource},
		hrflowPrefix + "webhook/check":        {http.MethodPost: s.checkHrFlowWebhook},
	}
}

// hrflowPrefix is where the HrFlow v1 API is served: a client's base URL
// is http://HOST:PORT/v1, as https://api.hrflow.ai/v1 is the real one's.
const hrflowPrefix = "/v1/"

// isUpload reports whether r is a file upload of either API: the requests
// where an injected 5xx or reset may come after the upload was recorded.
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && (r.URL.Path == "/profile" || r.URL.Path == hrflowPrefix+"profile/parsing/file")
}

// ServeHTTP serves the API and the /_sandbox/ test endpoints.
//
// For an API request it counts the request, waits Options.Latency, draws a
// fault, routes, checks the key and runs the handler. A fault drawn for
// "after" (uploads only) replaces the handler's reply once the upload has
// been processed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
		s.serveInspect(w, r)
		return
	}
	s.requests.Add(1)
	if !sleepCtx(r.Context(), s.opts.Latency) {
		return // the client went away
	}
	d := s.faults.draw(isUpload(r))
	if d.hit && !d.after {
		s.inject(w, r, d.fault)
		return
	}
	rep := s.dispatch(r)
	if d.hit {
		s.log.Debug("fault after processing", "path", r.URL.Path, "lost_status", rep.status, "fault", d.fault.String())
		s.inject(w, r, d.fault)
		return
	}
	s.write(w, r, rep)
}

// dispatch routes r and checks its key.
func (s *Server) dispatch(r *http.Request) reply {
	methods, found := s.routes[r.URL.Path]
	if !found {
		return fail(http.StatusNotFound, "Not found: "+r.URL.Path)
	}
	h, found := methods[r.Method]
	if !found {
		allowed := make([]string, 0, len(methods))
		for m := range methods {
			allowed = append(allowed, m)
		}
		slices.Sort(allowed)
		rep := fail(http.StatusMethodNotAllowed, "Method not allowed: "+r.Method+" "+r.URL.Path)
		rep.header = http.Header{"Allow": {strings.Join(allowed, ", ")}}
		return rep
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if rep, allowed := s.authorize(r, write); !allowed {
		return rep
	}
	return h(r)
}

// authorize checks the X-API-Key header (any case) for the permission a
// request needs: write for POST, read for GET. The HrFlow paths also need
// X-USER-EMAIL, checked once the key is known and before its permission.
func (s *Server) authorize(r *http.Request, write bool) (reply, bool) {
	perm := "read"
	if write {
		perm = "write"
	}
	key := r.Header.Get("X-Api-Key")
	// The real API echoes the key in the message; so do we, and the client
	// is the one that must redact it.
	unauthorized := fail(http.StatusUnauthorized, "Unauthorized. Invalid secret key: "+key+" for permission: "+perm)
	if key == "" {
		return unauthorized, false
	}
	k := Key{Value: key, Read: true, Write: true}
	if len(s.keys) > 0 {
		var found bool
		if k, found = s.keys[key]; !found {
			return unauthorized, false
		}
	}
	if strings.HasPrefix(r.URL.Path, hrflowPrefix) {
		if rep, ok := checkUserEmail(r.Header.Get("X-User-Email")); !ok {
			return rep, false
		}
	}
	if (write && !k.Write) || (!write && !k.Read) {
		return fail(http.StatusForbidden, "Forbidden. This secret key has no "+perm+" permission"), false
	}
	return reply{}, true
}

// write sends rep as the JSON envelope and counts its status.
func (s *Server) write(w http.ResponseWriter, r *http.Request, rep reply) {
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	writeJSON(w, rep.status, envelope{Code: rep.status, Message: rep.message, Meta: rep.meta, Data: rep.data})
	s.count(strconv.Itoa(rep.status))
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rep.status)
}

// writeJSON writes v with Content-Type exactly application/json: py-hf
// treats any other value (even with "; charset=utf-8") as an error.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(envelope{Code: status, Message: "Internal error: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client may be gone; nothing to do
}

// count adds one response to the statistics under key (a status or "reset").
func (s *Server) count(key string) {
	s.statMu.Lock()
	s.byStatus[key]++
	s.statMu.Unlock()
}

// sleepCtx waits d, or less if ctx ends; it reports whether it waited all of d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// phpDate is a PHP DateTime object as json_encode writes it.
type phpDate struct {
	Date         string `json:"date"`
	TimezoneType int    `json:"timezone_type"`
	Timezone     string `json:"timezone"`
}

func newPHPDate(t time.Time) phpDate {
	return phpDate{Date: t.UTC().Format("2006-01-02 15:04:05.000000"), TimezoneType: 3, Timezone: "UTC"}
}
