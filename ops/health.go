package ops

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
)

// Health serves /healthz from a set of named checks. Each check returns
// nil when its part is healthy, or an error whose text is the reason
// ("login refused"); the reason shown is "NAME: TEXT", so name checks
// after what they watch ("state", "mailbox jobs", "uploads"). Checks may
// be set, replaced and removed at any time, for instance on a reload. The
// zero value is not usable: call NewHealth.
type Health struct {
	mu     sync.Mutex
	checks map[string]func() error
}

// NewHealth returns a Health with no checks, which reports healthy.
func NewHealth() *Health {
	return &Health{checks: make(map[string]func() error)}
}

// Check sets the check called name, pulled on every request; it must be
// quick and must not block (read a value the component keeps up to date).
// A nil fn removes the check.
func (h *Health) Check(name string, fn func() error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fn == nil {
		delete(h.checks, name)
		return
	}
	h.checks[name] = fn
}

// Report pushes the state of name from a hook: a non-nil err makes the
// service unhealthy with that reason until Report(name, nil).
func (h *Health) Report(name string, err error) {
	if err == nil {
		h.Check(name, nil)
		return
	}
	h.Check(name, func() error { return err })
}

// Remove drops the check called name (a source removed by a reload).
func (h *Health) Remove(name string) { h.Check(name, nil) }

// Status runs every check and returns whether all passed, and the reasons
// of those that did not, sorted by name.
func (h *Health) Status() (ok bool, reasons []string) {
	h.mu.Lock()
	names := make([]string, 0, len(h.checks))
	fns := make(map[string]func() error, len(h.checks))
	for name, fn := range h.checks {
		names = append(names, name)
		fns[name] = fn
	}
	h.mu.Unlock()
	// The checks run without the lock: one may call back into Report.
	slices.Sort(names)
	for _, name := range names {
		if err := fns[name](); err != nil {
			reasons = append(reasons, name+": "+err.Error())
		}
	}
	return len(reasons) == 0, reasons
}

// healthBody is the JSON answer of /healthz.
type healthBody struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons,omitempty"`
}

// ServeHTTP answers GET and HEAD: 200 {"status":"ok"} when every check
// passes, else 503 {"status":"unhealthy","reasons":[...]}.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, healthBody{Status: "method not allowed"})
		return
	}
	ok, reasons := h.Status()
	if ok {
		writeJSON(w, http.StatusOK, healthBody{Status: "ok"})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, healthBody{Status: "unhealthy", Reasons: reasons})
}

// writeJSON writes v as the JSON body of a response that no cache keeps.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs of strings and ints come here
		code, b = http.StatusInternalServerError, []byte(`{"status":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
