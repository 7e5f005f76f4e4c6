package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestStateCompactWhileRunning: cvfeed state compact while cvfeed run
// holds the state and uploads files (after_upload = "move": the state has
// identities and actions to give back) is done by the daemon; the state is
// no larger after; the daemon goes on: status answers, the files dropped
// after are uploaded, and every file is in the sandbox exactly once.
func TestStateCompactWhileRunning(t *testing.T) {
	// Each answer takes 20 ms: uploads are in flight when the compaction
	// runs.
	sb := startSandbox(t, "-latency", "20ms")
	dir := t.TempDir()
	share, done := filepath.Join(dir, "share"), filepath.Join(dir, "done")
	os.MkdirAll(share, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", share, fmt.Sprintf("after_upload = \"move\"\ndone_dir = %q", done))
	want := map[string]string{}
	batch := func(name string, n int) {
		for i := range n {
			rel := filepath.Join(name, fmt.Sprintf("dir%d", i%7), fmt.Sprintf("CV %04d.pdf", i))
			want[rel] = writeFile(t, filepath.Join(share, rel), fmt.Sprintf("%%PDF-1.4 %s CV %d", name, i))
		}
	}
	batch("first", 600)
	if r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress"); r.code != 0 {
		t.Fatalf("backfill: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	db := filepath.Join(dir, "state", "cvfeed.db")

	d := startRun(t, cfg)
	waitWatching(t, d)
	batch("second", 300)
	waitProfiles(t, sb, 620, 30*time.Second)
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	r := runCvfeed(t, nil, "state", "compact", "-config", cfg)
	m := regexp.MustCompile(`compacted state .*: (\d+) bytes before, (\d+) after \(by the running cvfeed\)`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("state compact while run holds the state: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	before, _ := strconv.ParseInt(m[1], 10, 64)
	after, _ := strconv.ParseInt(m[2], 10, 64)
	if after > before || before < fi.Size() {
		t.Errorf("state compact: %d bytes before, %d after (the file had %d just before); want it no larger", before, after, fi.Size())
	}
	t.Logf("compacted by the daemon: %d bytes before, %d after; %d profiles in the sandbox", before, after, len(sb.profiles(t)))
	waitLog(t, d, "compacted the state (cvfeed state compact)", 5*time.Second)
	if st := statusOf(t, cfg); st.Total.Uploaded < 620 {
		t.Errorf("status after the compaction = %+v, want at least the 620 uploaded before", st.Total)
	}
	batch("third", 100)
	waitProfiles(t, sb, len(want), 60*time.Second)
	waitSettled(t, cfg, len(want))
	exactlyOnce(t, sb.profiles(t), want)
	if got := listDir(t, done); len(got) != len(want) {
		t.Errorf("done_dir holds %d files, want %d", len(got), len(want))
	}
	select {
	case <-d.done:
		t.Fatalf("cvfeed run stopped: %v", d.err)
	default:
	}
	if code, _ := d.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("cvfeed run exit %d after SIGTERM, want 0", code)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "state", ".*compact-*")); len(left) > 0 {
		t.Errorf("left beside the state: %q", left)
	}
	if r := runCvfeed(t, nil, "state", "check", "-config", cfg); r.code != 0 {
		t.Errorf("state check after: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
}
