// Package contrib holds no Go code: its tests check that the monitoring
// files shipped with cvfeed (contrib/prometheus, contrib/grafana) name
// metrics that a running cvfeed serves, and that /metrics passes
// promtool's lint.
package contrib

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

const sourceID = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

// TestMonitoringNamesLiveMetrics runs cvfeed with a folder (one CV) and a
// mailbox against the embedded sandbox, scrapes /metrics once the CV is
// uploaded, and checks that every cvfeed_ metric named by the alerting
// rules and the Grafana dashboard is in the scrape, and that promtool
// check metrics finds nothing to say about the scrape.
func TestMonitoringNamesLiveMetrics(t *testing.T) {
	scrape := liveScrape(t)
	served := map[string]bool{}
	for line := range strings.SplitSeq(scrape, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		served[name] = true
	}
	metricName := regexp.MustCompile(`\bcvfeed_[a-z0-9_]+`)
	for _, file := range []string{"prometheus/alerts.yml", "prometheus/alerts_test.yml", "grafana/cvfeed.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := slices.Compact(slices.Sorted(slices.Values(metricName.FindAllString(string(b), -1))))
		if len(names) == 0 {
			t.Errorf("%s names no cvfeed_ metric", file)
		}
		for _, n := range names {
			if !served[n] {
				t.Errorf("%s names %s, which a running cvfeed does not serve", file, n)
			}
		}
	}

	cmd := exec.Command(promtoolPath(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on a live /metrics: %v\n%s", err, out)
	}
}

// TestAlertingRules: the rules load, and promtool's unit tests of
// alerts_test.yml (each alert fires, and stays quiet) pass.
func TestAlertingRules(t *testing.T) {
	promtool := promtoolPath(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// promtoolPath finds promtool; without it the test fails, or is skipped
// under -short (the quick loop on a machine without it).
func promtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if testing.Short() {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus; bash .ci/run does)")
	}
	t.Fatal("promtool is not installed: apt-get install --no-install-recommends prometheus (bash .ci/run installs it)")
	return ""
}

// liveScrape starts cvfeed run and returns /metrics once the folder's CV
// is uploaded and the mailbox is logged in.
func liveScrape(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "cvfeed")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/cvfeed").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	share := filepath.Join(dir, "share")
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "cv.pdf"), []byte("%PDF-1.4\nJane Doe, data scientist\n%%EOF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	cfg := fmt.Sprintf(`state_dir = "state"
shutdown_timeout = "2s"
[api]
url = "sandbox"
api_key = "sandbox"
[[folder]]
name = "inbox"
path = %q
source_id = %q
settle = "100ms"
[[mailbox]]
name = "jobs"
address = %q
security = "plain"
username = "cvfeed"
password = "secret"
folders = ["INBOX"]
source_id = %q
[http]
listen = %q
`, share, sourceID, memIMAP(t), sourceID, listen)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "run", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	// Wait for the events the scrape must show, bounded in time.
	want := []string{
		`cvfeed_uploads_total{outcome="uploaded",source="inbox"} 1`,
		`cvfeed_mailbox_up{mailbox="jobs"} 1`,
		`cvfeed_folder_up{folder="inbox"} 1`,
	}
	deadline := time.Now().Add(30 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("cvfeed run ended: %v\n%s", err, log.String())
		default:
		}
		resp, err := http.Get("http://" + listen + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(body, w) }) {
				return body
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("after 30 s /metrics still lacks one of %q:\n%s\nlog:\n%s", want, body, log.String())
	return ""
}

// memIMAP starts go-imap's in-process server on 127.0.0.1 with the user
// cvfeed (password secret) and an empty INBOX.
func memIMAP(t *testing.T) string {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("cvfeed", "secret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		// IMAP4rev2 brings IDLE; without it IDLE is refused.
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
