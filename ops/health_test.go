package ops

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestHealth(t *testing.T) {
	errLogin := errors.New("login refused")
	tests := []struct {
		name        string
		setup       func(h *Health)
		wantCode    int
		wantReasons []string
	}{
		{"no checks", func(*Health) {}, 200, nil},
		{"passing checks", func(h *Health) {
			h.Check("state", func() error { return nil })
			h.Report("uploads", nil)
		}, 200, nil},
		{"failing checks, sorted by name", func(h *Health) {
			h.Check("state", func() error { return errors.New("closed") })
			h.Report("mailbox jobs", errLogin)
			h.Report("folder inbox", nil)
		}, 503, []string{"mailbox jobs: login refused", "state: closed"}},
		{"report cleared", func(h *Health) {
			h.Report("uploads", errors.New("paused: API refused the key"))
			h.Report("uploads", nil)
		}, 200, nil},
		{"check removed", func(h *Health) {
			h.Report("mailbox old", errLogin)
			h.Remove("mailbox old")
		}, 200, nil},
		{"check replaced", func(h *Health) {
			h.Check("state", func() error { return errors.New("closed") })
			h.Check("state", func() error { return nil })
		}, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHealth()
			tt.setup(h)
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rr.Code != tt.wantCode {
				t.Errorf("GET /healthz = %d, want %d", rr.Code, tt.wantCode)
			}
			if ct := rr.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var body struct {
				Status  string   `json:"status"`
				Reasons []string `json:"reasons"`
			}
			if err := json.Unmarshal(rr.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rr.Body, err)
			}
			wantStatus := "ok"
			if tt.wantCode != 200 {
				wantStatus = "unhealthy"
			}
			if body.Status != wantStatus || !slices.Equal(body.Reasons, tt.wantReasons) {
				t.Errorf("body = %+v, want status %q, reasons %q", body, wantStatus, tt.wantReasons)
			}
		})
	}
}

func TestHealthMethods(t *testing.T) {
	h := NewHealth()
	for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 405, "DELETE": 405} {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest(method, "/healthz", nil))
		if rr.Code != want {
			t.Errorf("%s /healthz = %d, want %d", method, rr.Code, want)
		}
	}
}

// A check may call back into Health (a hook reporting from inside a
// check) without deadlock.
func TestHealthReentrant(t *testing.T) {
	h := NewHealth()
	h.Check("a", func() error { h.Report("b", nil); return nil })
	if ok, reasons := h.Status(); !ok {
		t.Errorf("Status() = false, %q, want true", reasons)
	}
}
