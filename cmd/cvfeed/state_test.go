package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/control"
)

// noCrash fails when a command's output shows a Go crash.
func noCrash(t *testing.T, what string, r result) {
	t.Helper()
	for _, s := range []string{"panic", "fatal error", "goroutine ", "SIGSEGV", "SIGBUS"} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("%s crashed (%q in its output):\n%s", what, s, tail(r.stderr, 20))
			return
		}
	}
}

// wantDamageLine checks a command's refusal of a damaged state: exit 1 and
// one line naming the file and the way out.
func wantDamageLine(t *testing.T, what string, r result, db string) {
	t.Helper()
	noCrash(t, what, r)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "cvfeed: ") {
			lines = append(lines, l)
		}
	}
	if r.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], db+" is damaged") || !strings.Contains(lines[0], `"cvfeed state reset"`) {
		t.Errorf("%s: exit %d, lines %q; want exit 1 and one line naming %s and cvfeed state reset\nstderr: %s", what, r.code, lines, db, tail(r.stderr, 10))
	}
}

// runBriefly runs `cvfeed run` and waits for it to exit by itself (a
// damaged state must stop it at once); it is killed after limit.
func runBriefly(t *testing.T, cfg string, limit time.Duration) result {
	t.Helper()
	cmd := exec.Command(cvfeedBin(t), "run", "-config", cfg)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Errorf("cvfeed run on a damaged state was still running after %v", limit)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// TestDamagedStateReset: after a backfill of 1,500 files, a state cut at
// several sizes or overwritten makes status, failed, report, backfill, run
// and state check exit 1 with one line naming the file and "cvfeed state
// reset", never a crash; after the reset, a backfill leaves each file in
// the API exactly once (the API's duplicate-reference answer confirms
// them), with a read-write key and with a write-only one.
func TestDamagedStateReset(t *testing.T) {
	for _, mode := range []string{"read-write", "write-only"} {
		t.Run(mode, func(t *testing.T) {
			var args []string
			if mode == "write-only" {
				args = append(args, "-api-key", "wkey:w")
			}
			// The sandbox outlives every run: it holds what the API
			// holds.
			sb := startSandbox(t, args...)
			dir := t.TempDir()
			cvDir := filepath.Join(dir, "cvs")
			want := cvFiles(t, cvDir, 1500)
			cfg := writeConfig(t, dir, sb.url, "wkey", cvDir, "")
			if r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress"); r.code != 0 {
				t.Fatalf("first backfill: exit %d\n%s", r.code, tail(r.stderr, 20))
			}
			db := filepath.Join(dir, "state", "cvfeed.db")
			good, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if r := runCvfeed(t, nil, "state", "check", "-config", cfg); r.code != 0 || !strings.HasPrefix(r.stdout, "OK    state "+db) {
				t.Errorf("state check of a good state: exit %d, %q %s", r.code, r.stdout, r.stderr)
			}
			rng := rand.New(rand.NewPCG(8, uint64(len(mode))))
			random := make([]byte, len(good))
			for i := range random {
				random[i] = byte(rng.Uint32())
			}
			damages := []struct {
				name string
				data []byte
			}{
				{"truncated at 8 KiB", good[:8<<10]},
				{"truncated at 32 KiB", good[:32<<10]},
				{"truncated at half", good[:len(good)/2]},
				{"overwritten with random bytes", random},
			}
			if mode == "write-only" {
				damages = damages[:1]
			}
			for _, d := range damages {
				if err := os.WriteFile(db, d.data, 0o600); err != nil {
					t.Fatal(err)
				}
				for _, c := range []string{"status", "failed", "report", "backfill"} {
					wantDamageLine(t, d.name+": "+c, runCvfeed(t, nil, c, "-config", cfg), db)
				}
				wantDamageLine(t, d.name+": state check", runCvfeed(t, nil, "state", "check", "-config", cfg), db)
				wantDamageLine(t, d.name+": run", runBriefly(t, cfg, 10*time.Second), db)
				if now, _ := os.ReadFile(db); !bytes.Equal(now, d.data) {
					t.Errorf("%s: a command changed the damaged file", d.name)
				}
			}
			before := sb.stats(t)
			r := runCvfeed(t, nil, "state", "reset", "-config", cfg)
			if r.code != 0 || !strings.Contains(r.stdout, "kept the old state aside as "+db+".damaged-") {
				t.Fatalf("state reset: exit %d, %q %s", r.code, r.stdout, r.stderr)
			}
			aside, _ := filepath.Glob(db + ".damaged-*")
			if len(aside) != 1 {
				t.Fatalf("kept aside: %q, want one file", aside)
			}
			if fi, _ := os.Stat(aside[0]); fi.Mode().Perm() != 0o600 {
				t.Errorf("the file kept aside has mode %v, want 0600", fi.Mode())
			}
			r = runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
			if r.code != 0 || !strings.Contains(r.stdout, "uploaded 1500, duplicates 0, failed 0") {
				t.Fatalf("backfill after the reset: exit %d, %q\n%s", r.code, r.stdout, tail(r.stderr, 20))
			}
			exactlyOnce(t, sb.profiles(t), want)
			after := sb.stats(t)
			if after.Accepted != before.Accepted || after.ByStatus["400"]-before.ByStatus["400"] != 1500 {
				t.Errorf("after the reset the API accepted %d more and answered 400 to %d, want 0 and 1500", after.Accepted-before.Accepted, after.ByStatus["400"]-before.ByStatus["400"])
			}
			if st := statusOf(t, cfg).Sources["inbox"]; st.Uploaded != 1500 || st.Pending+st.Failed != 0 {
				t.Errorf("status after the reset and backfill = %+v, want 1500 uploaded", st)
			}
		})
	}
}

// waitLog waits until the daemon's log holds s.
func waitLog(t *testing.T, d *daemonProc, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(d.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("cvfeed run did not log %q within %v", s, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStateBackupCheckAndPermissions: a state_dir of mode 0755 becomes
// 0700; state check passes; state backup writes a copy that opens with the
// same counts, offline and while cvfeed run holds the state (through its
// control socket, FILE relative to the caller's directory); state reset
// refuses while run holds the state; state compact works offline.
func TestStateBackupCheckAndPermissions(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	cvFiles(t, cvDir, 200)
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(stateDir, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "")
	if r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress"); r.code != 0 {
		t.Fatalf("backfill: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	for p, want := range map[string]os.FileMode{stateDir: 0o700, filepath.Join(stateDir, "cvfeed.db"): 0o600} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != want {
			t.Errorf("mode of %s = %v, want %04o", p, fi.Mode(), want)
		}
	}
	want := statusOf(t, cfg)
	if want.Total.Uploaded != 200 {
		t.Fatalf("status = %+v, want 200 uploaded", want.Total)
	}
	// copyCounts opens a backup as the state of another config.
	copyCounts := func(backup string) statusJSON {
		t.Helper()
		d2 := t.TempDir()
		os.Mkdir(filepath.Join(d2, "state"), 0o700)
		if err := os.Rename(backup, filepath.Join(d2, "state", "cvfeed.db")); err != nil {
			t.Fatal(err)
		}
		cfg2 := runConfig(t, d2, sb.url, "k", cvDir, "")
		if r := runCvfeed(t, nil, "state", "check", "-config", cfg2); r.code != 0 {
			t.Errorf("state check of the backup: exit %d, %q %s", r.code, r.stdout, r.stderr)
		}
		return statusOf(t, cfg2)
	}

	offline := filepath.Join(t.TempDir(), "offline.db")
	r := runCvfeed(t, nil, "state", "backup", "-config", cfg, offline)
	if r.code != 0 || !strings.Contains(r.stdout, "backed up state") {
		t.Fatalf("state backup: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(offline); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if got := copyCounts(offline); got.Total != want.Total {
		t.Errorf("the offline backup counts %+v, want %+v", got.Total, want.Total)
	}
	// Compaction, offline: the same counts after (while run holds the
	// state: TestStateCompactWhileRunning).
	r = runCvfeed(t, nil, "state", "compact", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "compacted state") {
		t.Fatalf("state compact: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	if got := statusOf(t, cfg); got.Total != want.Total {
		t.Errorf("status after state compact: %+v, want %+v", got.Total, want.Total)
	}

	d := startRun(t, cfg)
	waitLog(t, d, "cvfeed running", 15*time.Second)
	r = runCvfeed(t, nil, "state", "check", "-config", cfg)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "OK ") {
		t.Errorf("state check while run holds the state: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCvfeed(t, nil, "state", "reset", "-config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "is in use by another cvfeed process") {
		t.Errorf("state reset while run holds the state: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	// FILE is relative to the caller's directory, not the daemon's.
	callerDir := t.TempDir()
	cmd := exec.Command(cvfeedBin(t), "state", "backup", "-config", cfg, "live.db")
	cmd.Dir = callerDir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "written by the running cvfeed") {
		t.Fatalf("state backup while run holds the state: %v\n%s", err, out)
	}
	if got := copyCounts(filepath.Join(callerDir, "live.db")); got.Total != want.Total {
		t.Errorf("the backup made by the running cvfeed counts %+v, want %+v", got.Total, want.Total)
	}
	d.stop(t, syscall.SIGTERM, 10*time.Second)
}

// TestStateBoundToAPI: after a backfill on url = "sandbox", the same
// config pointed at another API (a URL with a password) is refused by
// backfill and run with one line naming both APIs (the password left out)
// and the ways forward, while status still reads it; a new state_dir
// uploads every CV to the new API; state rebind lets the old state run.
func TestStateBoundToAPI(t *testing.T) {
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	want := cvFiles(t, cvDir, 50)
	cfg := writeConfig(t, dir, "sandbox", "k", cvDir, "")
	if r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress"); r.code != 0 {
		t.Fatalf("backfill on the embedded sandbox: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	sb := startSandbox(t)
	withPassword := strings.Replace(sb.url, "http://", "http://hr:s3cret-pw@", 1) + "/"
	cfg = writeConfig(t, dir, withPassword, "k", cvDir, "")
	for _, c := range []string{"backfill", "run"} {
		var r result
		if c == "run" {
			r = runBriefly(t, cfg, 10*time.Second)
		} else {
			r = runCvfeed(t, nil, c, "-config", cfg, "-no-progress")
		}
		noCrash(t, c, r)
		line := strings.TrimSpace(r.stderr)
		if r.code != 1 || strings.Count(line, "\n") != 0 || !strings.Contains(line, `"riminder sandbox"`) ||
			!strings.Contains(line, `"riminder `+sb.url+`"`) || !strings.Contains(line, "new state_dir") || strings.Contains(line, "rebind") {
			t.Errorf("%s with another API: exit %d, stderr %q; want exit 1 and one line naming both APIs and a new state_dir (no rebind from the sandbox)", c, r.code, r.stderr)
		}
		if strings.Contains(r.stderr+r.stdout, "s3cret-pw") {
			t.Errorf("%s printed the URL's password: %s", c, r.stderr)
		}
	}
	if r := runCvfeed(t, nil, "backfill", "-dry-run", "-config", cfg); r.code != 1 || !strings.Contains(r.stderr, "new state_dir") || strings.Contains(r.stdout, "unchanged 50") {
		t.Errorf("backfill -dry-run with another API: exit %d, %q %s; want the refusal, not \"unchanged\"", r.code, r.stdout, r.stderr)
	}
	if n := len(sb.profiles(t)); n != 0 {
		t.Errorf("the new API received %d profiles while the state was refused", n)
	}
	if st := statusOf(t, cfg); st.Total.Uploaded != 50 {
		t.Errorf("status with the other API = %+v, want the 50 uploaded to the sandbox", st.Total)
	}
	// A new state_dir: every CV goes to the new API.
	fresh := strings.Replace(readFile(t, cfg), `state_dir = "state"`, `state_dir = "state-real"`, 1)
	cfgFresh := filepath.Join(dir, "fresh.toml")
	os.WriteFile(cfgFresh, []byte(fresh), 0o644)
	if r := runCvfeed(t, nil, "backfill", "-config", cfgFresh, "-no-progress"); r.code != 0 || !strings.Contains(r.stdout, "uploaded 50,") {
		t.Fatalf("backfill with a new state_dir: exit %d, %q\n%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	exactlyOnce(t, sb.profiles(t), want)
	// No rebind from the embedded sandbox: its uploads reached no real API.
	if r := runCvfeed(t, nil, "state", "rebind", "-config", cfg); r.code != 1 || !strings.Contains(r.stderr, "embedded sandbox") {
		t.Errorf("state rebind from the sandbox: exit %d, %q %s; want it refused", r.code, r.stdout, r.stderr)
	}
	// The real API under a new address (the same sandbox as localhost):
	// refused naming rebind, then rebind lets the state run.
	moved := strings.Replace(readFile(t, cfgFresh), "127.0.0.1", "localhost", 1)
	cfgMoved := filepath.Join(dir, "moved.toml")
	os.WriteFile(cfgMoved, []byte(moved), 0o644)
	if r := runCvfeed(t, nil, "backfill", "-config", cfgMoved, "-no-progress"); r.code != 1 || !strings.Contains(r.stderr, `"cvfeed state rebind"`) {
		t.Errorf("backfill at the API's new address: exit %d, %q %s; want refused naming the rebind", r.code, r.stdout, r.stderr)
	}
	r := runCvfeed(t, nil, "state", "rebind", "-config", cfgMoved)
	if r.code != 0 || !strings.Contains(r.stdout, `API was "riminder `+sb.url+`", now "riminder `+strings.Replace(sb.url, "127.0.0.1", "localhost", 1)+`"`) {
		t.Fatalf("state rebind: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	if r := runCvfeed(t, nil, "backfill", "-config", cfgMoved, "-no-progress"); r.code != 0 || !strings.Contains(r.stdout, "unchanged 50") {
		t.Errorf("backfill after the rebind: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	exactlyOnce(t, sb.profiles(t), want)
}

// TestRunReloadToAnotherAPI: a SIGHUP pointing cvfeed run at another API
// is refused (the log names both); state rebind through the running
// daemon's socket, then a SIGHUP, moves it to the new address.
func TestRunReloadToAnotherAPI(t *testing.T) {
	sb1, sb2 := startSandbox(t), startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	writeFile(t, filepath.Join(cvDir, "a.pdf"), "CV a")
	cfg := runConfig(t, dir, sb1.url, "k", cvDir, "")
	d := startRun(t, cfg)
	waitProfiles(t, sb1, 1, 15*time.Second)
	os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), sb1.url, sb2.url, 1)), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, d, "reload refused", 10*time.Second)
	if l := d.log(); !strings.Contains(l, "riminder "+sb1.url) || !strings.Contains(l, "riminder "+sb2.url) || !strings.Contains(l, "cvfeed state rebind") {
		t.Errorf("the refused reload does not name both APIs and rebind:\n%s", tail(l, 5))
	}
	r := runCvfeed(t, nil, "state", "rebind", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, `API was "riminder `+sb1.url+`", now "riminder `+sb2.url+`"`) {
		t.Fatalf("state rebind while running: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, d, "config reloaded", 10*time.Second)
	writeFile(t, filepath.Join(cvDir, "b.pdf"), "CV b")
	waitProfiles(t, sb2, 1, 15*time.Second)
	if n := len(sb1.profiles(t)); n != 1 {
		t.Errorf("the first API holds %d profiles, want 1", n)
	}
	d.stop(t, syscall.SIGTERM, 10*time.Second)
}

// TestStatusZeroLengthLocked: a zero-length state whose lock another
// process holds (a cvfeed starting) is "in use", not an error: status
// waits for the control socket, says the daemon is starting when none
// appears, and answers through the socket once it does; unlocked, the
// empty file reads as an empty state.
func TestStatusZeroLengthLocked(t *testing.T) {
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	cvFiles(t, cvDir, 1)
	cfg := writeConfig(t, dir, "sandbox", "k", cvDir, "")
	stateDir := filepath.Join(dir, "state")
	os.Mkdir(stateDir, 0o700)
	db := filepath.Join(stateDir, "cvfeed.db")
	f, err := os.OpenFile(db, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := runCvfeed(t, nil, "status", "-config", cfg)
	noCrash(t, "status", r)
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another cvfeed process") || !strings.Contains(r.stderr, "the daemon is starting") || strings.Contains(r.stderr, "bad file descriptor") {
		t.Errorf("status on a locked empty state without a socket: exit %d, %q", r.code, r.stderr)
	}
	if took := time.Since(start); took < 4*time.Second || took > 15*time.Second {
		t.Errorf("status gave up after %v, want about 5 s of waiting for the socket", took)
	}

	// The "daemon" serves its socket: status answers through it.
	ln, err := net.Listen("unix", filepath.Join(stateDir, control.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode("pong") })
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]map[string]int{"inbox": {"pending": 7}})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	if st := statusOf(t, cfg); st.Sources["inbox"].Pending != 7 {
		t.Errorf("status through the socket = %+v, want the daemon's 7 pending", st)
	}
	srv.Close()

	// Nobody holds it: an empty file is an empty state.
	f.Close()
	if st := statusOf(t, cfg); st.Total.Pending+st.Total.Uploaded != 0 {
		t.Errorf("status of an empty, unlocked state = %+v, want zeros", st)
	}
}
