package pipeline

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/cvfeed/cvfeed/uploader"
)

// e2eSource is a source id as the sandbox accepts any 40-hex one.
const e2eSource = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestProbeReadSaysWhich: at start-up, GET sources refused with 403 is a
// key without read access; 401 and 402 are logged as what they are.
func TestProbeReadSaysWhich(t *testing.T) {
	for _, tt := range []struct {
		status   int
		read     bool
		want     string
		mustNot  string
		logLevel string
	}{
		{http.StatusForbidden, false, "no read access", "", "WARN"},
		{http.StatusUnauthorized, true, "refused the key (GET sources: 401: wrong or revoked key", "read access", "ERROR"},
		{http.StatusPaymentRequired, true, "quota is spent (GET sources: 402)", "read access", "ERROR"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tt.status)
			fmt.Fprintf(w, `{"code":%d,"message":"no","data":null}`, tt.status)
		}))
		c, err := uploader.NewClient(uploader.ClientOptions{BaseURL: srv.URL, Key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		read := ProbeRead(t.Context(), c, slog.New(slog.NewTextHandler(&logs, nil)))
		srv.Close()
		out := logs.String()
		if read != tt.read || !strings.Contains(out, tt.want) || !strings.Contains(out, "level="+tt.logLevel) ||
			tt.mustNot != "" && strings.Contains(out, tt.mustNot) {
			t.Errorf("%d: ProbeRead = %v, log %q; want %v and %q", tt.status, read, out, tt.read, tt.want)
		}
	}
}
