package uploader

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestNoResponseReason classifies the errors of real requests: a server
// that resets the connection, one that closes it without an answer, one
// that answers too late, and a port nobody listens on.
func TestNoResponseReason(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reset", "/close":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			if tc, ok := conn.(*net.TCPConn); ok && r.URL.Path == "/reset" {
				tc.SetLinger(0) // close with RST
			}
			conn.Close()
		case "/slow":
			<-release
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handlers
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	hc := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tc := range []struct{ url, want string }{
		{srv.URL + "/reset", NoResponseReset},
		{srv.URL + "/close", NoResponseReset},
		{srv.URL + "/slow", NoResponseTimeout},
		{refused, NoResponseNetwork},
	} {
		resp, err := hc.Get(tc.url)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s: no error", tc.url)
			continue
		}
		if got := NoResponseReason(err); got != tc.want {
			t.Errorf("NoResponseReason(%v) = %q, want %q", err, got, tc.want)
		}
	}
}
