package ops

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	m := NewMetrics("test", nil)
	h := NewHealth()
	w, rec := newTestWebhook(t, []string{vectorSecret}, nil)
	srv := NewServer("127.0.0.1:0", Handlers{Metrics: m, Health: h, Webhook: w}, nil)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	base := "http://" + srv.Addr().String()

	do := func(method, path, header string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(vectorEvent))
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set(SignatureHeader, header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	tests := []struct {
		method, path, header string
		want                 int
		wantBody             string
	}{
		{"GET", "/metrics", "", 200, `cvfeed_build_info{version="test"} 1`},
		{"POST", "/metrics", "", 405, ""},
		{"GET", "/healthz", "", 200, `{"status":"ok"}`},
		{"POST", "/webhook", vectorSigB + "." + vectorPayload, 200, `"code":200`},
		{"POST", "/webhook", "bad.sig", 401, `"code":401`},
		{"GET", "/webhook", "", 405, ""},
		{"GET", "/", "", 404, ""},
	}
	for _, tt := range tests {
		code, body := do(tt.method, tt.path, tt.header)
		if code != tt.want || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s %s = %d %q, want %d with %q", tt.method, tt.path, code, body, tt.want, tt.wantBody)
		}
	}
	h.Report("mailbox jobs", errors.New("login refused"))
	if code, body := do("GET", "/healthz", ""); code != 503 || !strings.Contains(body, `"mailbox jobs: login refused"`) {
		t.Errorf("GET /healthz = %d %q, want 503 with the reason", code, body)
	}
	if n := len(rec.got()); n != 1 {
		t.Errorf("%d webhook events, want 1", n)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		t.Error("still listening after Run returned")
	}
}

func TestServerListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	srv := NewServer(addr, Handlers{}, nil)
	if err := srv.Run(t.Context()); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Run on a taken address = %v, want an error naming %s", err, addr)
	}
	if srv.Addr() != nil {
		t.Errorf("Addr() = %v after a failed Listen, want nil", srv.Addr())
	}
}

// Handlers left nil are not served.
func TestServerPartial(t *testing.T) {
	srv := NewServer("127.0.0.1:0", Handlers{Health: NewHealth()}, nil)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 404, "/webhook": 404} {
		resp, err := http.Get("http://" + srv.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
}
