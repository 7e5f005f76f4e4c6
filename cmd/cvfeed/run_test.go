package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/control"
)

// daemonProc is a `cvfeed run` in its own process.
type daemonProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (d *daemonProc) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.Write(p)
}

func (d *daemonProc) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

func startRun(t *testing.T, cfg string, env ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{done: make(chan struct{})}
	d.cmd = exec.Command(cvfeedBin(t), "run", "-config", cfg, "-log-level", "debug")
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stderr = d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("cvfeed run log:\n%s", tail(d.log(), 60))
		}
	})
	return d
}

// stop sends sig and waits for the exit, failing after limit.
func (d *daemonProc) stop(t *testing.T, sig syscall.Signal, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(limit):
		t.Fatalf("cvfeed run did not stop within %v of %v", limit, sig)
	}
	return d.cmd.ProcessState.ExitCode(), time.Since(start)
}

// waitProfiles waits until the sandbox holds n profiles (or fails).
func waitProfiles(t *testing.T, sb *sandboxProc, n int, limit time.Duration) []profile {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		p := sb.profiles(t)
		if len(p) >= n {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox holds %d profiles after %v, want %d", len(p), limit, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func shaHex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func writeFile(t *testing.T, p, content string) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return shaHex([]byte(content))
}

// runConfig writes a config for `cvfeed run` with one folder; extra goes
// into [[folder]].
func runConfig(t *testing.T, dir, url, key, cvDir, extra string) string {
	t.Helper()
	if !strings.Contains(extra, "settle") {
		extra = "settle = \"1s\"\n" + extra
	}
	cfg := fmt.Sprintf(`state_dir = "state"
shutdown_timeout = "5s"
[api]
url = %q
api_key = %q
workers = 4
retry_initial = "100ms"
retry_max = "1s"
[[folder]]
name = "inbox"
path = %q
source_id = %q
rescan_interval = "1h"
%s
`, url, key, cvDir, e2eSource, extra)
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunWatchesFolder covers the acceptance lines of `cvfeed run`: files
// dropped are uploaded once each; a file written in two halves 3 s apart is
// uploaded once, complete; lock, partial and dot files are ignored; a new
// nested folder's files are uploaded; with after_upload = "move" every
// uploaded file ends in done_dir; SIGTERM stops it within 10 s.
func TestRunWatchesFolder(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	done := filepath.Join(dir, "done")
	os.MkdirAll(cvDir, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", cvDir, fmt.Sprintf("after_upload = \"move\"\ndone_dir = %q", done))
	d := startRun(t, cfg)
	waitWatching(t, d)

	want := map[string]string{}
	for i := range 5 {
		n := fmt.Sprintf("cv%d.pdf", i)
		want[n] = writeFile(t, filepath.Join(cvDir, n), "CV number "+fmt.Sprint(i))
	}
	writeFile(t, filepath.Join(cvDir, "~$cv0.docx"), "lock")
	writeFile(t, filepath.Join(cvDir, "big.pdf.part"), "partial")
	writeFile(t, filepath.Join(cvDir, ".hidden.pdf"), "hidden")
	// A new nested folder.
	want["Data Scientist/2024/deep.pdf"] = writeFile(t, filepath.Join(cvDir, "Data Scientist", "2024", "deep.pdf"), "deep CV")
	// A slow writer: half, 3 s pause (longer than settle), the rest.
	f, err := os.Create(filepath.Join(cvDir, "scan.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	first, second := strings.Repeat("page one ", 2000), strings.Repeat("page two ", 2000)
	f.WriteString(first)
	time.Sleep(3 * time.Second)
	f.WriteString(second)
	f.Close()
	want["scan.pdf"] = shaHex([]byte(first + second))
	// A copy tool writing a temp name, then renaming.
	writeFile(t, filepath.Join(cvDir, "copied.pdf.part"), "copied CV")
	os.Rename(filepath.Join(cvDir, "copied.pdf.part"), filepath.Join(cvDir, "copied.pdf"))
	want["copied.pdf"] = shaHex([]byte("copied CV"))

	waitProfiles(t, sb, len(want), 20*time.Second)
	waitSettled(t, cfg, len(want))
	profiles := sb.profiles(t)
	exactlyOnce(t, profiles, want)
	// Every uploaded file is in done_dir, under its relative path.
	deadline := time.Now().Add(5 * time.Second)
	for rel := range want {
		for !exists(filepath.Join(done, rel)) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !exists(filepath.Join(done, rel)) || exists(filepath.Join(cvDir, rel)) {
			t.Errorf("%s not moved to done_dir", rel)
		}
	}
	for _, n := range []string{"~$cv0.docx", "big.pdf.part", ".hidden.pdf"} {
		if !exists(filepath.Join(cvDir, n)) {
			t.Errorf("%s was touched", n)
		}
	}
	code, took := d.stop(t, syscall.SIGTERM, 10*time.Second)
	if code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	t.Logf("stopped in %v", took)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestRunCatchesUpAfterRestart: files copied in while cvfeed was stopped
// are uploaded after it starts, and nothing is sent twice.
func TestRunCatchesUpAfterRestart(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	want := map[string]string{"a.pdf": writeFile(t, filepath.Join(cvDir, "a.pdf"), "a")}
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "")
	d := startRun(t, cfg)
	waitProfiles(t, sb, 1, 10*time.Second)
	d.stop(t, syscall.SIGTERM, 10*time.Second)
	for i := range 20 {
		n := fmt.Sprintf("while-down-%d.docx", i)
		want[n] = writeFile(t, filepath.Join(cvDir, "sub", n), "down "+fmt.Sprint(i))
	}
	startRun(t, cfg)
	waitProfiles(t, sb, 21, 15*time.Second)
	waitSettled(t, cfg, 21)
	exactlyOnce(t, sb.profiles(t), relKeys(want, "sub"))
}

// relKeys prefixes the names that live in sub (for exactlyOnce's messages).
func relKeys(m map[string]string, sub string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, "while-down") {
			k = filepath.Join(sub, k)
		}
		out[k] = v
	}
	return out
}

// TestRunPollMode: a folder in poll mode picks files up.
func TestRunPollMode(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "nfs")
	os.MkdirAll(cvDir, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "watch = \"poll\"\npoll_interval = \"300ms\"")
	d := startRun(t, cfg)
	waitWatching(t, d)
	want := map[string]string{}
	for i := range 3 {
		n := fmt.Sprintf("p%d.pdf", i)
		want[n] = writeFile(t, filepath.Join(cvDir, n), "polled "+fmt.Sprint(i))
	}
	waitProfiles(t, sb, 3, 15*time.Second)
	exactlyOnce(t, sb.profiles(t), want)
	if !strings.Contains(d.log(), "poll") {
		t.Error("the log does not say the folder is polled")
	}
}

// TestRunReloadAndAuthPause: a refused key pauses uploads without failing
// anything; a SIGHUP with the right key resumes them; a folder added by the
// reload is watched.
func TestRunReloadAndAuthPause(t *testing.T) {
	sb := startSandbox(t, "-api-key", "good-key")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	want := map[string]string{"a.pdf": writeFile(t, filepath.Join(cvDir, "a.pdf"), "a")}
	cfg := runConfig(t, dir, sb.url, "bad-key-0123", cvDir, "")
	d := startRun(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.log(), "uploads paused") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(d.log(), "uploads paused") {
		t.Fatal("no 'uploads paused' line after a 401")
	}
	if strings.Contains(d.log(), "bad-key-0123") {
		t.Error("the key appears in the log")
	}
	// Fix the key and add a folder, then reload.
	second := filepath.Join(dir, "second")
	want["b.pdf"] = writeFile(t, filepath.Join(second, "b.pdf"), "b")
	os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), "bad-key-0123", "good-key", 1)+fmt.Sprintf(`
[[folder]]
name = "second"
path = %q
source_id = %q
settle = "1s"
`, second, "0000000000000000000000000000000000000002")), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	profiles := waitProfiles(t, sb, 2, 15*time.Second)
	exactlyOnce(t, profiles, want)
	if code, _ := d.stop(t, syscall.SIGINT, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGINT", code)
	}
}

// TestRunReloadRejectsBrokenConfig: a SIGHUP with a broken config keeps
// the running one.
func TestRunReloadRejectsBrokenConfig(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	os.MkdirAll(cvDir, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "")
	d := startRun(t, cfg)
	waitWatching(t, d)
	good := readFile(t, cfg)
	os.WriteFile(cfg, []byte(good+"\nbogus_key = 1\n"), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, d, "reload refused", 10*time.Second)
	if !strings.Contains(d.log(), "reload refused") || !strings.Contains(d.log(), "bogus_key") {
		t.Errorf("no clear 'reload refused' line naming the key")
	}
	want := map[string]string{"after.pdf": writeFile(t, filepath.Join(cvDir, "after.pdf"), "after")}
	waitProfiles(t, sb, 1, 10*time.Second)
	exactlyOnce(t, sb.profiles(t), want)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunDrainsOnSIGTERM: an upload in flight when SIGTERM comes is let
// finish (within shutdown_timeout) and recorded: the next start sends
// nothing again.
func TestRunDrainsOnSIGTERM(t *testing.T) {
	sb := startSandbox(t, "-latency", "3s")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	os.MkdirAll(cvDir, 0o755)
	cfgPath := runConfig(t, dir, sb.url, "k", cvDir, "settle = \"200ms\"")
	d := startRun(t, cfgPath)
	waitWatching(t, d)
	want := map[string]string{"slow.pdf": writeFile(t, filepath.Join(cvDir, "slow.pdf"), "a CV the API is slow to take")}
	// Wait until the upload reached the sandbox (which answers 3 s later).
	deadline := time.Now().Add(10 * time.Second)
	for sb.stats(t).Requests < 2 && time.Now().Before(deadline) { // the GET sources probe, then the upload
		time.Sleep(50 * time.Millisecond)
	}
	code, took := d.stop(t, syscall.SIGTERM, 10*time.Second)
	if code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	if took < time.Second {
		t.Errorf("stopped in %v: it did not wait for the upload in flight", took)
	}
	exactlyOnce(t, sb.profiles(t), want)
	// Restarted, it has nothing to send.
	before := sb.stats(t)
	d = startRun(t, cfgPath)
	waitWatching(t, d)
	waitSettled(t, cfgPath, 1)
	d.stop(t, syscall.SIGTERM, 10*time.Second)
	if after := sb.stats(t); after.ByStatus["201"] != before.ByStatus["201"] || after.ByStatus["400"] != before.ByStatus["400"] {
		t.Errorf("the restart sent the file again: %+v → %+v", before, after)
	}
}

// TestControlWhileRunning: status, failed, retry and report work while
// cvfeed run holds the state (through its control socket), and without it.
func TestControlWhileRunning(t *testing.T) {
	// The sandbox knows one filter, not the folder's: every upload is
	// refused for good (400).
	sb := startSandbox(t, "-filter", "another-job")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	writeFile(t, filepath.Join(cvDir, "a.pdf"), "a")
	writeFile(t, filepath.Join(cvDir, "b.pdf"), "b")
	cfg := runConfig(t, dir, sb.url, "k", cvDir, `[[folder.training_metadata]]
filter_reference = "data-scientist"`)
	d := startRun(t, cfg)
	deadline := time.Now().Add(15 * time.Second)
	var st statusJSON
	for time.Now().Before(deadline) {
		st = statusOf(t, cfg)
		if st.Sources["inbox"].Failed == 2 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Sources["inbox"].Failed != 2 {
		t.Fatalf("status while running = %+v, want 2 failed", st)
	}
	r := runCvfeed(t, nil, "failed", "-json", "-config", cfg)
	var failed []failedItem
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &failed) != nil || len(failed) != 2 || !strings.Contains(failed[0].Error, "400") {
		t.Fatalf("failed -json while running: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCvfeed(t, nil, "retry", "-config", cfg, failed[0].ID)
	if r.code != 0 || !strings.Contains(r.stdout, "1 items queued again") || !strings.Contains(r.stdout, "running cvfeed") {
		t.Errorf("retry while running: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCvfeed(t, nil, "report", "-json", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, `"source":"inbox"`) {
		t.Errorf("report while running: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	d.stop(t, syscall.SIGTERM, 10*time.Second)
	if exists(filepath.Join(dir, "state", control.SocketName)) {
		t.Error("the control socket is left behind after the stop")
	}
	// Without the daemon, the same commands read the state file.
	if st := statusOf(t, cfg); st.Sources["inbox"].Failed+st.Sources["inbox"].Pending != 2 {
		t.Errorf("status after the stop = %+v", st)
	}
	r = runCvfeed(t, nil, "retry", "-all", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "next cvfeed run") {
		t.Errorf("retry -all without a daemon: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	if r := runCvfeed(t, nil, "retry", "-config", cfg); r.code != 2 {
		t.Errorf("retry with neither -all nor IDs: exit %d, want 2", r.code)
	}
}
