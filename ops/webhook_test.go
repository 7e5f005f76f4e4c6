package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is an EventFunc that keeps what it gets and fails with err.
type recorder struct {
	mu     sync.Mutex
	events []Event
	err    error
}

func (r *recorder) handle(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return r.err
}

func (r *recorder) got() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func newTestWebhook(t *testing.T, secrets []string, log *slog.Logger) (*Webhook, *recorder) {
	t.Helper()
	rec := &recorder{}
	w, err := NewWebhook(secrets, rec.handle, log)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return w, rec
}

// post sends header (when not empty) and body to h, and returns the code
// and the decoded envelope.
func post(t *testing.T, h http.Handler, header, body string) (int, envelope) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
	if header != "" {
		req.Header.Set(SignatureHeader, header)
	}
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if ct := rr.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var env envelope
	if err := json.Unmarshal(rr.Body.Bytes(), &env); err != nil || env.Code != rr.Code {
		t.Errorf("body %q: %v, want the envelope of %d", rr.Body, err, rr.Code)
	}
	return rr.Code, env
}

func signed(t *testing.T, scheme, secret, event string) string {
	t.Helper()
	h, err := Sign(scheme, []byte(secret), []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var vectorWant = Event{Type: EventParseSuccess, ProfileID: "id", ProfileReference: "reference", Message: "The parsing succeeded"}

func TestWebhookVectors(t *testing.T) {
	cSig := signed(t, SchemeC, vectorSecret, vectorEvent)
	urlPayload := urlSafe(vectorPayload)
	tests := []struct {
		name, header string
	}{
		{"A", vectorSigA + "." + vectorPayload},
		{"B", vectorSigB + "." + vectorPayload},
		{"C", vectorSigC + "." + vectorPayload},
		{"A url-safe", urlSafe(vectorSigA) + "." + urlPayload},
		{"B url-safe", urlSafe(vectorSigB) + "." + urlPayload},
		{"C url-safe signature", urlSafe(vectorSigC) + "." + vectorPayload},
		{"C over a url-safe payload", urlSafe(base64.StdEncoding.EncodeToString(
			hmacSHA256([]byte(vectorSecret), []byte(urlPayload)))) + "." + urlPayload},
		{"A with trailing space", vectorSigA + "." + vectorPayload + " "},
		{"C from Sign", cSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, rec := newTestWebhook(t, []string{vectorSecret}, nil)
			code, env := post(t, w, tt.header, vectorEvent) // the body may repeat the event
			if code != http.StatusOK {
				t.Fatalf("POST = %d %q, want 200", code, env.Message)
			}
			if got := rec.got(); len(got) != 1 || got[0] != vectorWant {
				t.Errorf("events = %+v, want [%+v]", got, vectorWant)
			}
		})
	}
}

func TestWebhookRejects(t *testing.T) {
	good := vectorSigA + "." + vectorPayload
	forged := "5zOFKZVTswNQMwuFVxIhyEo+zPGcTXxlNDG/j7aNvgE=." + vectorPayload
	notJSON := signed(t, SchemeA, vectorSecret, "not json")
	noType := signed(t, SchemeA, vectorSecret, `{"message":"x"}`)
	badID := signed(t, SchemeA, vectorSecret, `{"type":"profile.parse.success","profile":{"profile_id":{}}}`)
	// Scheme C signs the text as sent, so a signed payload may not decode.
	cNotBase64 := base64.StdEncoding.EncodeToString(hmacSHA256([]byte(vectorSecret), []byte("%%%"))) + ".%%%"
	tests := []struct {
		name, header string
		secrets      []string
		want         int
	}{
		{"missing header", "", nil, 401},
		{"forged signature", forged, nil, 401},
		{"wrong secret", good, []string{"webhook_kez"}, 401},
		{"no dot", vectorSigA + vectorPayload, nil, 401},
		{"empty payload", vectorSigA + ".", nil, 401},
		{"truncated payload", good[:len(good)-10], nil, 401},
		{"truncated signature", good[10:], nil, 401},
		{"payload not base64, unsigned", vectorSigA + ".%%%", nil, 401},
		{"B signature of another payload", vectorSigB + "." + b64(`{"type":"profile.parse.error"}`), nil, 401},
		{"payload not base64, signed (C)", cNotBase64, nil, 400},
		{"payload not JSON, signed", notJSON, nil, 400},
		{"event without type, signed", noType, nil, 400},
		{"profile_id an object, signed", badID, nil, 400},
		{"header too large", strings.Repeat("a", maxSignatureBytes) + "." + vectorPayload, nil, 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{vectorSecret}
			}
			w, rec := newTestWebhook(t, secrets, nil)
			if code, env := post(t, w, tt.header, ""); code != tt.want {
				t.Errorf("POST = %d %q, want %d", code, env.Message, tt.want)
			}
			if got := rec.got(); len(got) != 0 {
				t.Errorf("events = %+v, want none", got)
			}
		})
	}
}

func TestWebhookEvents(t *testing.T) {
	tests := []struct {
		name, event string
		handleErr   error
		want        int
		wantEvent   *Event
	}{
		{"parse error", `{"type":"profile.parse.error","message":"unreadable file","profile":{"profile_id":"p1","profile_reference":"r1"}}`,
			nil, 200, &Event{Type: EventParseError, ProfileID: "p1", ProfileReference: "r1", Message: "unreadable file"}},
		{"numeric profile_id", `{"type":"profile.parse.success","message":"ok","profile":{"profile_id":42,"profile_reference":"r2"}}`,
			nil, 200, &Event{Type: EventParseSuccess, ProfileID: "42", ProfileReference: "r2", Message: "ok"}},
		{"unknown type", `{"type":"filter.train.success","message":"ok","filter":{"filter_id":"f"}}`, nil, 200, nil},
		{"future type", `{"type":"profile.parse.update","message":"ok","profile":{"profile_id":"p","profile_reference":"r"}}`, nil, 200, nil},
		{"no reference", `{"type":"profile.parse.success","message":"ok","profile":{"profile_id":"p","profile_reference":null}}`, nil, 200, nil},
		{"callback fails", vectorEvent, errors.New("state closed"), 500, &vectorWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, rec := newTestWebhook(t, []string{vectorSecret}, nil)
			rec.err = tt.handleErr
			if code, env := post(t, w, signed(t, SchemeA, vectorSecret, tt.event), ""); code != tt.want {
				t.Errorf("POST = %d %q, want %d", code, env.Message, tt.want)
			}
			got := rec.got()
			switch {
			case tt.wantEvent == nil && len(got) != 0:
				t.Errorf("events = %+v, want none", got)
			case tt.wantEvent != nil && (len(got) != 1 || got[0] != *tt.wantEvent):
				t.Errorf("events = %+v, want [%+v]", got, *tt.wantEvent)
			}
		})
	}
}

func TestWebhookRequest(t *testing.T) {
	w, rec := newTestWebhook(t, []string{vectorSecret}, nil)
	header := vectorSigA + "." + vectorPayload

	rr := httptest.NewRecorder()
	w.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/webhook", nil))
	if rr.Code != http.StatusMethodNotAllowed || rr.Header().Get("Allow") != "POST" {
		t.Errorf("GET = %d, Allow %q, want 405, POST", rr.Code, rr.Header().Get("Allow"))
	}

	big := strings.Repeat("x", maxWebhookBody+1)
	if code, _ := post(t, w, header, big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST with a %d-byte body = %d, want 413", len(big), code)
	}

	req := httptest.NewRequest(http.MethodPost, "/webhook", nil)
	req.Header.Add(SignatureHeader, header)
	req.Header.Add(SignatureHeader, header)
	rr = httptest.NewRecorder()
	w.ServeHTTP(rr, req)
	if rr.Code != http.StatusBadRequest {
		t.Errorf("POST with two signature headers = %d, want 400", rr.Code)
	}

	req = httptest.NewRequest(http.MethodPost, "/webhook", nil)
	req.Header.Set("Riminder-Signature", header) // riminder-api.md §9.2
	rr = httptest.NewRecorder()
	w.ServeHTTP(rr, req)
	if rr.Code != http.StatusOK {
		t.Errorf("POST with RIMINDER-SIGNATURE = %d, want 200", rr.Code)
	}
	if n := len(rec.got()); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

// TestWebhookHeaderCase sends the header name as written on the wire in
// several cases, over a real connection.
func TestWebhookHeaderCase(t *testing.T) {
	w, rec := newTestWebhook(t, []string{vectorSecret}, nil)
	srv := httptest.NewServer(w)
	defer srv.Close()
	for _, name := range []string{"HTTP-RIMINDER-SIGNATURE", "http-riminder-signature", "Http-Riminder-Signature"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /webhook HTTP/1.1\r\nHost: x\r\n%s: %s.%s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			name, vectorSigA, vectorPayload)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("header %s: %d, want 200", name, resp.StatusCode)
		}
	}
	if n := len(rec.got()); n != 3 {
		t.Errorf("%d events, want 3", n)
	}
}

func TestWebhookSecrets(t *testing.T) {
	rec := &recorder{}
	for _, secrets := range [][]string{nil, {}, {"a", ""}} {
		if _, err := NewWebhook(secrets, rec.handle, nil); err == nil {
			t.Errorf("NewWebhook(%q) = nil error, want one", secrets)
		}
	}
	if _, err := NewWebhook([]string{"a"}, nil, nil); err == nil {
		t.Error("NewWebhook without handler = nil error, want one")
	}
	w, _ := newTestWebhook(t, []string{"old"}, nil)
	header := vectorSigA + "." + vectorPayload
	if code, _ := post(t, w, header, ""); code != 401 {
		t.Errorf("POST before rotation = %d, want 401", code)
	}
	if err := w.SetSecrets([]string{"old", vectorSecret}); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, w, header, ""); code != 200 {
		t.Errorf("POST after rotation = %d, want 200", code)
	}
	if err := w.SetSecrets(nil); err == nil {
		t.Error("SetSecrets(nil) = nil error, want one")
	}
	if code, _ := post(t, w, header, ""); code != 200 {
		t.Errorf("POST after a refused SetSecrets = %d, want 200 (old secrets kept)", code)
	}
}

// TestWebhookLogsNoSecret runs every kind of request with a Debug logger
// and looks for the secret and the signature in what was logged.
func TestWebhookLogsNoSecret(t *testing.T) {
	const secret = "Zq8-very-secret-webhook-key"
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, rec := newTestWebhook(t, []string{secret}, log)
	good := signed(t, SchemeA, secret, vectorEvent)
	sig, _, _ := strings.Cut(good, ".")
	rec.err = errors.New("state closed")
	for _, h := range []string{
		"", good, vectorSigA + "." + vectorPayload, "nodot", sig + ".%%%",
		signed(t, SchemeA, secret, "not json"),
		signed(t, SchemeA, secret, `{"type":"filter.train.start"}`),
	} {
		post(t, w, h, secret) // the body too
	}
	if err := w.SetSecrets([]string{secret, ""}); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("SetSecrets error %v: want one, without the secret", err)
	}
	logs := buf.String()
	if !strings.Contains(logs, "does not verify") {
		t.Errorf("logs miss the bad signature line:\n%s", logs)
	}
	for _, s := range []string{secret, sig, vectorSigA} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}
}

// FuzzWebhook checks that no header makes the handler panic or act on an
// event whose signature does not verify.
func FuzzWebhook(f *testing.F) {
	f.Add(vectorSigA + "." + vectorPayload)
	f.Add(vectorSigC + "." + vectorPayload)
	f.Add("." + vectorPayload)
	f.Add("a.b.c")
	f.Add("====.====")
	f.Fuzz(func(t *testing.T, header string) {
		if strings.ContainsAny(header, "\r\n\x00") {
			return // not a valid header value
		}
		w, rec := newTestWebhook(t, []string{vectorSecret}, nil)
		req := httptest.NewRequest(http.MethodPost, "/webhook", nil)
		req.Header.Set(SignatureHeader, header)
		rr := httptest.NewRecorder()
		w.ServeHTTP(rr, req)
		sig, payload, err := splitSignature(header)
		if err != nil {
			if rr.Code != 401 {
				t.Errorf("header %q: %d, want 401", header, rr.Code)
			}
			return
		}
		dec, _ := decodeBase64(payload)
		if _, ok := verify([][]byte{[]byte(vectorSecret)}, sig, payload, dec); !ok && (rr.Code != 401 || len(rec.got()) != 0) {
			t.Errorf("header %q: %d with %d events, want 401 and none", header, rr.Code, len(rec.got()))
		}
	})
}
