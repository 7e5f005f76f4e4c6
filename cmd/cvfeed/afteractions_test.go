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

// waitWatching waits until the daemon's first rescan of its folder is
// done: its watches are set (events mode) and what was there is found.
func waitWatching(t *testing.T, d *daemonProc) {
	t.Helper()
	waitFor(t, "the first rescan done", 15*time.Second, func() bool {
		for _, l := range logLines(d.log(), "INFO", "walk done") {
			if l["kind"] == "rescan" {
				return true
			}
		}
		return false
	})
}

// waitSettled waits until the state holds n uploaded items and nothing
// pending: nothing more is going to be sent.
func waitSettled(t *testing.T, cfg string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d uploaded, none pending", n), 15*time.Second, func() bool {
		s := statusOf(t, cfg)
		return s.Total.Uploaded == n && s.Total.Pending == 0
	})
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
	waitWatching(t, d)

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

// TestBackfillAuditLog: at the default log level, the log names every
// uploaded CV (file, size, reference, file_id) and every skipped file with
// its reason, once; the summary names the skipped files; the progress
// lines' counts move while it uploads.
func TestBackfillAuditLog(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads for about 12 s to see progress lines; skipped with -short")
	}
	sb := startSandbox(t, "-latency", "200ms")
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	want := map[string]string{}
	for i := range 60 {
		rel := fmt.Sprintf("cv%02d.pdf", i)
		want[rel] = writeFile(t, filepath.Join(share, rel), fmt.Sprintf("CV %d for the audit", i))
	}
	writeFile(t, filepath.Join(share, "README"), "no extension")
	writeFile(t, filepath.Join(share, "huge.pdf"), strings.Repeat("x", 4096))
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state_dir = "state"
[api]
url = %q
api_key = "k"
workers = 1
[[folder]]
name = "inbox"
path = %q
source_id = %q
max_size = "1KiB"
`, sb.url, share, e2eSource)), 0o644)
	r := runCvfeed(t, nil, "backfill", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "uploaded 60,") {
		t.Fatalf("backfill: exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	ids := map[string]string{}
	for _, p := range sb.profiles(t) {
		ids[p.SHA256] = p.ProfileReference
	}
	uploaded := logLines(r.stderr, "INFO", "uploaded")
	named := map[string]bool{}
	for _, l := range uploaded {
		file, _ := l["file"].(string)
		rel, _ := filepath.Rel(share, file)
		if want[rel] == "" || l["reference"] != ids[want[rel]] || l["file_id"] == "" || l["file_id"] == nil || l["size"] == nil {
			t.Errorf("uploaded line %v: want a file of the share, its reference %s, a file_id and a size", l, ids[want[rel]])
		}
		named[rel] = true
	}
	if len(named) != 60 || len(uploaded) != 60 {
		t.Errorf("%d uploaded lines naming %d files, want 60", len(uploaded), len(named))
	}
	for name, reason := range map[string]string{"README": "include", "huge.pdf": "max_size"} {
		var lines []map[string]any
		for _, l := range logLines(r.stderr, "INFO", "skipped") {
			if l["file"] == filepath.Join(share, name) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(fmt.Sprint(lines[0]["reason"]), reason) {
			t.Errorf("skipped lines for %s: %v, want one with a reason about %s", name, lines, reason)
		}
		if !strings.Contains(r.stdout, filepath.Join(share, name)) {
			t.Errorf("the summary does not name the skipped %s:\n%s", name, r.stdout)
		}
	}
	// Progress lines: "... uploaded N, failed F, pending P; ...".
	var ups, pends []int
	for _, l := range strings.Split(r.stderr, "\n") {
		var up, failed, pend int
		if i := strings.Index(l, "uploaded "); strings.HasPrefix(l, "backfill ") && i > 0 {
			if _, err := fmt.Sscanf(l[i:], "uploaded %d, failed %d, pending %d", &up, &failed, &pend); err == nil {
				ups, pends = append(ups, up), append(pends, pend)
			}
		}
	}
	if len(ups) < 2 || ups[0] >= ups[len(ups)-1] || pends[0] <= pends[len(pends)-1] || ups[0]+pends[0] > 60 {
		t.Errorf("progress lines: uploaded %v, pending %v; want both to move (and add up to at most 60)", ups, pends)
	}
}
