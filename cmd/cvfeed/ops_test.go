package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/ops/notifytest"
)

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRunSystemdNotify runs cvfeed under a fake NOTIFY_SOCKET with a
// watchdog, and checks the messages systemd would get.
func TestRunSystemdNotify(t *testing.T) {
	sock, err := notifytest.Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	os.MkdirAll(cvDir, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "")
	d := &daemonProc{done: make(chan struct{})}
	d.cmd = exec.Command(cvfeedBin(t), "run", "-config", cfg)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.Path(), "WATCHDOG_USEC=2000000")
	d.cmd.Stderr = d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.cmd.Process.Kill(); <-d.done })
	for _, want := range []string{"READY=1", "STATUS=", "WATCHDOG=1"} {
		if _, err := sock.Expect(10*time.Second, want); err != nil {
			t.Fatalf("waiting for %s: %v\nlog:\n%s", want, err, tail(d.log(), 20))
		}
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	for _, want := range []string{"RELOADING=1", "READY=1"} {
		if _, err := sock.Expect(10*time.Second, want); err != nil {
			t.Fatalf("after SIGHUP, waiting for %s: %v", want, err)
		}
	}
	// The watchdog keeps being fed.
	if _, err := sock.Expect(5*time.Second, "WATCHDOG=1"); err != nil {
		t.Fatalf("no WATCHDOG=1 after the reload: %v", err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if _, err := sock.Expect(10*time.Second, "STOPPING=1"); err != nil {
		t.Fatalf("waiting for STOPPING=1: %v", err)
	}
	<-d.done
}

// TestRunHTTPAndWebhooks: cvfeed run serves /healthz and /metrics; the
// sandbox sends a signed profile.parse.success for each upload and
// status -json counts them parsed; a forged signature gets 401.
func TestRunHTTPAndWebhooks(t *testing.T) {
	const secret = "whsec-0123"
	listen := freeAddr(t)
	sb := startSandbox(t, "-webhook", "http://"+listen+"/webhook", "-webhook-secret", secret)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	os.MkdirAll(cvDir, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "")
	b := readFile(t, cfg) + fmt.Sprintf("\n[http]\nlisten = %q\n[webhook]\nsecret = %q\n", listen, secret)
	os.WriteFile(cfg, []byte(b), 0o644)
	d := startRun(t, cfg)
	base := "http://" + listen
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
				t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := map[string]string{}
	for i := range 12 {
		n := fmt.Sprintf("cv%02d.pdf", i)
		want[n] = writeFile(t, filepath.Join(cvDir, n), "CV "+n)
	}
	waitProfiles(t, sb, 12, 20*time.Second)
	exactlyOnce(t, sb.profiles(t), want)
	deadline = time.Now().Add(10 * time.Second)
	var st statusJSON
	for time.Now().Before(deadline) {
		st = statusOf(t, cfg)
		if st.Sources["inbox"].Parsed == 12 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Sources["inbox"].Parsed != 12 || st.Total.Parsed != 12 {
		t.Errorf("status -json = %+v, want parsed: 12", st)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`cvfeed_uploads_total{outcome="uploaded",source="inbox"} 12`, `cvfeed_api_responses_total{code="201"} 12`,
		`cvfeed_queue_items{source="inbox",state="parsed"} 12`, `cvfeed_watcher_mode{folder="inbox",mode="events"} 1`, "cvfeed_upload_duration_seconds_count 12"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	// A forged signature: right shape, wrong key.
	payload := []byte(`{"type":"profile.parse.success","message":"ok","profile":{"profile_id":"x","profile_reference":"y"}}`)
	mac := hmac.New(sha256.New, []byte("not-the-secret"))
	mac.Write(payload)
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil)) + "." + base64.StdEncoding.EncodeToString(payload)
	req, _ := http.NewRequest("POST", base+"/webhook", strings.NewReader(string(payload)))
	req.Header.Set("HTTP-RIMINDER-SIGNATURE", sig)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("forged signature: %d, want 401", resp.StatusCode)
	}
	if strings.Contains(d.log(), secret) {
		t.Error("the webhook secret appears in the log")
	}
}
