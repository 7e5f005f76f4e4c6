package sandbox

import (
	"bytes"
	"maps"
	"net/http"
)

// Stats counts API requests (not /_sandbox/ ones). Its JSON form is the body
// of GET /_sandbox/stats.
type Stats struct {
	// Requests is every API request, faulted ones included.
	Requests int64 `json:"requests"`
	// Accepted is the number of profiles stored.
	Accepted int64 `json:"accepted"`
	// ByStatus counts responses by status ("201", "429", ...); injected
	// connection resets count under "reset".
	ByStatus map[string]int64 `json:"by_status"`
}

// Profiles returns a copy of the accepted uploads, in order of arrival.
func (s *Server) Profiles() []Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Profile, len(s.profiles))
	for i, p := range s.profiles {
		p.TrainingMetadata = bytes.Clone(p.TrainingMetadata)
		p.tags, p.metadatas = bytes.Clone(p.tags), bytes.Clone(p.metadatas)
		if p.TimestampReception != nil {
			ts := *p.TimestampReception
			p.TimestampReception = &ts
		}
		out[i] = p
	}
	return out
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	accepted := int64(len(s.profiles))
	s.mu.Unlock()
	s.statMu.Lock()
	defer s.statMu.Unlock()
	return Stats{Requests: s.requests.Load(), Accepted: accepted, ByStatus: maps.Clone(s.byStatus)}
}

// serveInspect serves the test endpoints: no key, no latency, no faults, and
// plain JSON rather than the API envelope.
func (s *Server) serveInspect(w http.ResponseWriter, r *http.Request) {
	var body any
	switch r.URL.Path {
	case "/_sandbox/profiles":
		body = s.Profiles()
	case "/_sandbox/stats":
		body = s.Stats()
	default:
		writeJSON(w, http.StatusNotFound, envelope{Code: http.StatusNotFound, Message: "Not found: " + r.URL.Path})
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, envelope{Code: http.StatusMethodNotAllowed,
			Message: "Method not allowed: " + r.Method + " " + r.URL.Path})
		return
	}
	writeJSON(w, http.StatusOK, body)
}
