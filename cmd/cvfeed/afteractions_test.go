package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor waits until cond holds, looking again every 50 ms, and fails
// the test naming what after limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listDir lists the regular files under dir, relative, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// TestRunMovesLaterCopy: with after_upload = "move", a copy of a CV that
// is already uploaded, dropped later, is moved to done_dir within a few
// seconds and never sent.
func TestRunMovesLaterCopy(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	share, done := filepath.Join(dir, "share"), filepath.Join(dir, "done")
	os.MkdirAll(share, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", share, fmt.Sprintf("after_upload = \"move\"\ndone_dir = %q", done))
	d := startRun(t, cfg)
	waitLog(t, d, "cvfeed running", 10*time.Second)

	want := map[string]string{"anna.pdf": writeFile(t, filepath.Join(share, "anna.pdf"), "Anna's CV")}
	waitProfiles(t, sb, 1, 15*time.Second)
	waitFor(t, "anna.pdf in done_dir", 10*time.Second, func() bool { return exists(filepath.Join(done, "anna.pdf")) })

	writeFile(t, filepath.Join(share, "sub", "anna-copy.pdf"), "Anna's CV")
	waitFor(t, "the later copy moved to done_dir", 8*time.Second, func() bool {
		return exists(filepath.Join(done, "sub", "anna-copy.pdf")) && !exists(filepath.Join(share, "sub", "anna-copy.pdf"))
	})
	exactlyOnce(t, sb.profiles(t), want)
	if n := len(logLines(d.log(), "INFO", "duplicate")); n != 1 {
		t.Errorf("%d INFO lines for the duplicate, want 1:\n%s", n, tail(d.log(), 30))
	}
	if code, _ := d.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	exactlyOnce(t, sb.profiles(t), want)
}

// TestRunRetryLeavesFailedDir: CVs that failed for good sit in failed_dir
// with their .error.txt, and cvfeed failed -json points at them there;
// after retry -all against a working API they are uploaded once, end in
// done_dir with no note left, and failed_dir is empty.
func TestRunRetryLeavesFailedDir(t *testing.T) {
	addr := freeAddr(t)
	bad := startSandbox(t, "-listen", addr, "-fail-rate", "1", "-fail-codes", "422")
	dir := t.TempDir()
	share, done, failedDir := filepath.Join(dir, "share"), filepath.Join(dir, "done"), filepath.Join(dir, "failed")
	os.MkdirAll(share, 0o755)
	cfg := runConfig(t, dir, bad.url, "k", share, fmt.Sprintf("after_upload = \"move\"\ndone_dir = %q\nfailed_dir = %q", done, failedDir))
	want := map[string]string{}
	for i := range 4 {
		rel := fmt.Sprintf("team%d/cv%d.pdf", i%2, i)
		want[rel] = writeFile(t, filepath.Join(share, rel), fmt.Sprintf("CV %d, will fail first", i))
	}
	d := startRun(t, cfg)
	waitFor(t, "4 items failed", 20*time.Second, func() bool { return statusOf(t, cfg).Total.Failed == 4 })
	wantFailed := []string{}
	for rel := range want {
		wantFailed = append(wantFailed, rel, rel+".error.txt")
	}
	sort.Strings(wantFailed)
	waitFor(t, "4 CVs and their notes in failed_dir", 10*time.Second, func() bool {
		return strings.Join(listDir(t, failedDir), ",") == strings.Join(wantFailed, ",")
	})
	r := runCvfeed(t, nil, "failed", "-json", "-config", cfg)
	var items []failedItem
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil || len(items) != 4 {
		t.Fatalf("failed -json = %q (%v), want 4 items", r.stdout, err)
	}
	for _, it := range items {
		if rel, err := filepath.Rel(failedDir, it.File); err != nil || want[rel] == "" {
			t.Errorf("failed -json: file %q is not in failed_dir %s", it.File, failedDir)
		}
	}
	if code, _ := d.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	bad.cmd.Process.Kill()
	bad.cmd.Wait()

	good := startSandbox(t, "-listen", addr)
	d = startRun(t, cfg)
	waitLog(t, d, "cvfeed running", 10*time.Second)
	if r := runCvfeed(t, nil, "retry", "-all", "-config", cfg); r.code != 0 || !strings.Contains(r.stdout, "4 items queued again") {
		t.Fatalf("retry -all: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	waitProfiles(t, good, 4, 20*time.Second)
	waitFor(t, "the 4 CVs in done_dir, failed_dir empty", 10*time.Second, func() bool {
		return len(listDir(t, failedDir)) == 0 && len(listDir(t, done)) == 4
	})
	for rel := range want {
		if !exists(filepath.Join(done, rel)) {
			t.Errorf("%s not in done_dir: %v", rel, listDir(t, done))
		}
	}
	if code, _ := d.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	exactlyOnce(t, good.profiles(t), want)
	if s := statusOf(t, cfg); s.Total.Uploaded != 4 || s.Total.Failed != 0 {
		t.Errorf("status after the retry: %+v, want 4 uploaded, 0 failed", s.Total)
	}
}
