package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackfillUploadsEachOnce: 300 distinct CVs and 20 byte-identical
// copies are uploaded once each, with the configured training metadata; a
// second backfill uploads nothing; status -json agrees.
func TestBackfillUploadsEachOnce(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	want := cvFiles(t, cvDir, 300)
	// 20 copies, in another sub-folder, with other names and mtimes.
	i := 0
	for rel := range want {
		if i == 20 {
			break
		}
		b, _ := os.ReadFile(filepath.Join(cvDir, rel))
		p := filepath.Join(cvDir, "copies", "copy "+strconv.Itoa(i)+filepath.Ext(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
		i++
	}
	mtime := time.Date(2024, 3, 10, 8, 30, 0, 0, time.UTC)
	for rel := range want {
		os.Chtimes(filepath.Join(cvDir, rel), mtime, mtime)
	}
	cfg := writeConfig(t, dir, sb.url, "any-key", cvDir, "")

	r := runCvfeed(t, nil, "backfill", "-config", cfg)
	if r.code != 0 {
		t.Fatalf("backfill exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "uploaded 300, duplicates 20, failed 0") {
		t.Errorf("summary = %q, want uploaded 300, duplicates 20, failed 0", r.stdout)
	}
	profiles := sb.profiles(t)
	exactlyOnce(t, profiles, want)
	byHash := map[string]string{}
	for rel, h := range want {
		byHash[h] = rel
	}
	for _, p := range profiles {
		if p.SourceID != e2eSource || p.ProfileReference != p.SHA256 {
			t.Errorf("profile %s: source %s, reference %q", p.FileName, p.SourceID, p.ProfileReference)
		}
		var md []map[string]any
		if err := json.Unmarshal(p.TrainingMetadata, &md); err != nil || len(md) != 1 {
			t.Fatalf("training_metadata = %s", p.TrainingMetadata)
		}
		m := md[0]
		if m["filter_reference"] != "data-scientist" || m["stage"] != "NEW" || m["rating"] != 3.0 {
			t.Errorf("training_metadata = %s", p.TrainingMetadata)
		}
		for _, k := range []string{"stage_timestamp", "rating_timestamp"} {
			if v, ok := m[k]; !ok || v != nil {
				t.Errorf("training_metadata %s = %v (present %v), want null", k, v, ok)
			}
		}
		rel := byHash[p.SHA256]
		if rel != "" && filepath.Base(rel) != p.FileName && !strings.HasPrefix(p.FileName, "copy ") {
			t.Errorf("file_name = %q, want %q", p.FileName, filepath.Base(rel))
		}
		if rel != "" && !strings.HasPrefix(p.FileName, "copy ") && (p.TimestampReception == nil || *p.TimestampReception != mtime.Unix()) {
			t.Errorf("%s: timestamp_reception = %v, want the file's mtime %d", p.FileName, p.TimestampReception, mtime.Unix())
		}
	}
	st := statusOf(t, cfg)
	if got := st.Sources["inbox"]; got.Uploaded != 300 || got.Duplicate != 20 || got.Pending != 0 || got.Failed != 0 {
		t.Errorf("status = %+v, want 300 uploaded, 20 duplicates", got)
	}
	if st.Total != st.Sources["inbox"] {
		t.Errorf("total = %+v, want %+v", st.Total, st.Sources["inbox"])
	}

	// A second run sends nothing.
	before := sb.stats(t)
	r = runCvfeed(t, nil, "backfill", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "uploaded 0, duplicates 0, failed 0") || !strings.Contains(r.stdout, "unchanged 320") {
		t.Errorf("second backfill: exit %d, summary %q", r.code, r.stdout)
	}
	after := sb.stats(t)
	if after.Accepted != before.Accepted || after.ByStatus["201"] != before.ByStatus["201"] {
		t.Errorf("second backfill uploaded: stats before %+v, after %+v", before, after)
	}
	if got := statusOf(t, cfg).Sources["inbox"]; got.Uploaded != 300 || got.Duplicate != 20 {
		t.Errorf("status after the second run = %+v", got)
	}
}

// TestBackfillWrongKey: a refused key stops the backfill with one clear
// line, exit 1, nothing failed, the key not printed.
func TestBackfillWrongKey(t *testing.T) {
	sb := startSandbox(t, "-api-key", "right-key")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	cvFiles(t, cvDir, 40)
	cfg := writeConfig(t, dir, sb.url, "wrong-key-123456", cvDir, "")
	r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "wrong-key-123456") {
		t.Errorf("the API key appears in the output:\n%s", r.stderr)
	}
	var lines []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "cvfeed: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "refused the key") || !strings.Contains(lines[0], "401") {
		t.Errorf("stderr lines from cvfeed = %q, want one naming the refused key (401)", lines)
	}
	st := statusOf(t, cfg).Sources["inbox"]
	if st.Failed != 0 || st.Uploaded != 0 || st.Pending == 0 {
		t.Errorf("status = %+v, want items pending and none failed", st)
	}
	if n := len(sb.profiles(t)); n != 0 {
		t.Errorf("sandbox holds %d profiles", n)
	}
	// With the right key, the next run uploads them all.
	cfg = writeConfig(t, dir, sb.url, "right-key", cvDir, "")
	if r := runCvfeed(t, nil, "backfill", "-config", cfg); r.code != 0 {
		t.Fatalf("with the right key: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(sb.profiles(t)); n != 40 {
		t.Errorf("sandbox holds %d profiles, want 40", n)
	}
}

// TestBackfillFaults: with 30% of requests failing (500, 503, 429,
// connection resets, half of them after the upload was stored), every file
// ends up uploaded exactly once.
func TestBackfillFaults(t *testing.T) {
	sb := startSandbox(t, "-fail-rate", "0.3", "-fail-codes", "500,503,429,reset", "-seed", "7")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	want := cvFiles(t, cvDir, 400)
	cfg := writeConfig(t, dir, sb.url, "k", cvDir, `retry_initial = "50ms"
retry_max = "1s"`)
	r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	exactlyOnce(t, sb.profiles(t), want)
	st := sb.stats(t)
	if st.ByStatus["500"]+st.ByStatus["503"]+st.ByStatus["429"]+st.ByStatus["reset"] < 50 {
		t.Errorf("few faults were injected: %+v", st)
	}
	if got := statusOf(t, cfg).Sources["inbox"]; got.Uploaded != 400 {
		t.Errorf("status = %+v, want 400 uploaded", got)
	}
}

// TestBackfillCrashes kills the backfill with SIGKILL at random moments,
// restarts it, and checks that the sandbox holds each file exactly once —
// with a read-write key and with a write-only key (no GET to confirm).
func TestBackfillCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("a long crash loop; skipped with -short (CI runs it)")
	}
	for _, mode := range []string{"read-write", "write-only"} {
		t.Run(mode, func(t *testing.T) {
			// 1,500 uploads of 15 ms by 4 workers take about 6 s: the
			// kills, 50 to 900 ms after each start, land mid-way.
			args := []string{"-latency", "15ms"}
			if mode == "write-only" {
				args = append(args, "-api-key", "wkey:w")
			}
			sb := startSandbox(t, args...)
			dir := t.TempDir()
			cvDir := filepath.Join(dir, "cvs")
			want := cvFiles(t, cvDir, 1500)
			cfg := writeConfig(t, dir, sb.url, "wkey", cvDir, "workers = 4")
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
			kills := 0
			for round := range 12 {
				cmd := exec.Command(cvfeedBin(t), "backfill", "-config", cfg, "-no-progress")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				wait := time.Duration(50+rng.IntN(850)) * time.Millisecond
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				select {
				case <-exited:
					t.Logf("round %d: finished before the kill at %v", round, wait)
				case <-time.After(wait):
					cmd.Process.Signal(syscall.SIGKILL)
					<-exited
					kills++
				}
			}
			t.Logf("%d kills; %d profiles before the final run", kills, len(sb.profiles(t)))
			r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
			if r.code != 0 {
				t.Fatalf("final run: exit %d\n%s", r.code, tail(r.stderr, 20))
			}
			exactlyOnce(t, sb.profiles(t), want)
			if got := statusOf(t, cfg).Sources["inbox"]; got.Uploaded != 1500 || got.Pending != 0 {
				t.Errorf("status = %+v, want 1500 uploaded", got)
			}
			if kills < 6 {
				t.Errorf("only %d of 12 runs were killed mid-way; the test proves little", kills)
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestBackfillHrFlow: with flavor = "hrflow" against the sandbox's /v1,
// each file is uploaded once, with faults injected, and a rerun sends
// nothing.
func TestBackfillHrFlow(t *testing.T) {
	sb := startSandbox(t, "-fail-rate", "0.2", "-seed", "3")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	want := cvFiles(t, cvDir, 60)
	cfg := writeConfig(t, dir, sb.url+"/v1", "k", cvDir, `flavor = "hrflow"
user_email = "hr@example.com"
retry_initial = "50ms"
retry_max = "500ms"`)
	r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	profiles := sb.profiles(t)
	exactlyOnce(t, profiles, want)
	for _, p := range profiles {
		var labels []map[string]any
		if err := json.Unmarshal(p.TrainingMetadata, &labels); err != nil || len(labels) != 1 || labels[0]["job_reference"] != "data-scientist" || labels[0]["stage"] != "new" {
			t.Fatalf("labels = %s, want the folder's metadata as HrFlow labels", p.TrainingMetadata)
		}
	}
	before := sb.stats(t)
	if r := runCvfeed(t, nil, "backfill", "-config", cfg); r.code != 0 || !strings.Contains(r.stdout, "uploaded 0,") {
		t.Errorf("rerun: exit %d, %q", r.code, r.stdout)
	}
	if after := sb.stats(t); after.Accepted != before.Accepted {
		t.Errorf("the rerun uploaded %d more", after.Accepted-before.Accepted)
	}
}

// TestCheck: exit 0 on a good config, 1 naming an unknown source_id or
// filter, 2 on a broken config.
func TestCheck(t *testing.T) {
	sb := startSandbox(t, "-source", e2eSource, "-filter", "data-scientist")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	cvFiles(t, cvDir, 3)
	cfg := writeConfig(t, dir, sb.url, "k", cvDir, "")
	r := runCvfeed(t, nil, "check", "-config", cfg)
	if r.code != 0 || strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "OK    source   inbox") {
		t.Errorf("check of a good config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	const unknown = "0123456789abcdef0123456789abcdef01234567"
	bad := strings.Replace(readFile(t, cfg), e2eSource, unknown, 1)
	bad = strings.Replace(bad, `filter_reference = "data-scientist"`, `filter_reference = "no-such-job"`, 1)
	os.WriteFile(cfg, []byte(bad), 0o644)
	r = runCvfeed(t, nil, "check", "-config", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  source   inbox: source_id "+unknown) || !strings.Contains(r.stdout, `"no-such-job" is not a filter`) {
		t.Errorf("check with an unknown source_id: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.WriteFile(cfg, []byte(bad+"\nbogus = 1\n"), 0o644)
	if r := runCvfeed(t, nil, "check", "-config", cfg); r.code != 2 || !strings.Contains(r.stderr, "bogus") {
		t.Errorf("check of a broken config: exit %d\n%s", r.code, r.stderr)
	}
	// A wrong key: one clear line.
	os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), "\nbogus = 1\n", "", 1)), 0o644)
	sb2 := startSandbox(t, "-api-key", "right")
	os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), sb.url, sb2.url, 1)), 0o644)
	if r := runCvfeed(t, nil, "check", "-config", cfg); r.code != 1 || !strings.Contains(r.stdout, "refused the key") {
		t.Errorf("check with a wrong key: exit %d\n%s", r.code, r.stdout)
	}
}

// TestBackfillDryRun lists what would be uploaded, and sends and records
// nothing.
func TestBackfillDryRun(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	cvFiles(t, cvDir, 5)
	cfg := writeConfig(t, dir, sb.url, "k", cvDir, "")
	r := runCvfeed(t, nil, "backfill", "-dry-run", "-config", cfg)
	if r.code != 0 || strings.Count(r.stdout, "upload     inbox") != 5 || !strings.Contains(r.stdout, "would upload 5") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(sb.profiles(t)); n != 0 || exists(filepath.Join(dir, "state", "cvfeed.db")) {
		t.Errorf("a dry run sent %d profiles or created the state", n)
	}
	// After a real backfill and one new file, the dry run lists only it.
	runCvfeed(t, nil, "backfill", "-config", cfg)
	writeFile(t, filepath.Join(cvDir, "new.pdf"), "a new CV")
	r = runCvfeed(t, nil, "backfill", "-dry-run", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "would upload 1, duplicates 0") || !strings.Contains(r.stdout, "new.pdf") {
		t.Errorf("dry run after a backfill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(sb.profiles(t)); n != 5 {
		t.Errorf("sandbox holds %d, want the 5 of the real run", n)
	}
}

// TestStatusDuringBackfill: status -json answers while a backfill holds
// the state (through its control socket).
func TestStatusDuringBackfill(t *testing.T) {
	sb := startSandbox(t, "-latency", "50ms")
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	cvFiles(t, cvDir, 200)
	cfg := writeConfig(t, dir, sb.url, "k", cvDir, "workers = 2")
	cmd := exec.Command(cvfeedBin(t), "backfill", "-config", cfg, "-no-progress")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := runCvfeed(t, nil, "status", "-json", "-config", cfg)
		var st statusJSON
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Total.Uploaded > 0 && st.Total.Pending > 0 {
			return // mid-way, and it answered
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("status -json never showed a backfill mid-way")
}
