package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

// setFolderKeys replaces the rescan_interval of runConfig's folder with
// keys, and appends tail (tables after [[folder]]).
func setFolderKeys(t *testing.T, cfg, keys, tail string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "rescan_interval = \"1h\"\n", keys+"\n", 1)
	if err := os.WriteFile(cfg, []byte(s+tail), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A file removed from the share by hand is forgotten by the daemon once
// it has been gone for forget_missing; the file still there is not.
func TestRunForgetsMissingFiles(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	kept, removed := filepath.Join(share, "kept.pdf"), filepath.Join(share, "sub", "removed.pdf")
	writeFile(t, kept, "kept CV")
	writeFile(t, removed, "removed CV")
	cfg := runConfig(t, dir, sb.url, "k", share, "")
	setFolderKeys(t, cfg, "rescan_interval = \"1s\"\nforget_missing = \"1s\"", "")
	d := startRun(t, cfg)
	waitSettled(t, cfg, 2)
	if err := os.Remove(removed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removed.pdf forgotten (INFO swept ... forgotten=1)", 20*time.Second, func() bool {
		for _, l := range logLines(d.log(), "INFO", "swept the identities of files gone from folder") {
			if l["forgotten"] == float64(1) {
				return true
			}
		}
		return false
	})
	if code, _ := d.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("cvfeed run exit %d", code)
	}
	st, err := state.Open(filepath.Join(dir, "state", state.FileName), &state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok, err := st.LookupFile(e2eSource, removed); err != nil || ok {
		t.Errorf("identity of the removed file: found %v, %v; want forgotten", ok, err)
	}
	if _, ok, err := st.LookupFile(e2eSource, kept); err != nil || !ok {
		t.Errorf("identity of the file still there: found %v, %v; want kept", ok, err)
	}
	if n := len(sb.profiles(t)); n != 2 {
		t.Errorf("sandbox holds %d profiles, want 2", n)
	}
}

// state.keep_uploaded forgets uploaded items; the same files changed on
// disk (touched) and backfilled again are claimed anew, and the API's
// duplicate-reference answer confirms them: no second profile.
func TestBackfillKeepUploaded(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	want := cvFiles(t, share, 4)
	cfg := runConfig(t, dir, sb.url, "k", share, "")
	if r := runCvfeed(t, nil, "backfill", "-config", cfg); r.code != 0 {
		t.Fatalf("first backfill: exit %d:\n%s", r.code, tail(r.stderr, 30))
	}
	exactlyOnce(t, sb.profiles(t), want)
	before := sb.stats(t)

	setFolderKeys(t, cfg, "rescan_interval = \"1h\"", "[state]\nkeep_uploaded = \"1ms\"\n")
	later := time.Now().Add(time.Hour)
	for rel := range want {
		if err := os.Chtimes(filepath.Join(share, rel), later, later); err != nil {
			t.Fatal(err)
		}
	}
	r := runCvfeed(t, nil, "backfill", "-config", cfg)
	if r.code != 0 {
		t.Fatalf("second backfill: exit %d:\n%s", r.code, tail(r.stderr, 30))
	}
	forgot := logLines(r.stderr, "INFO", "forgot uploaded items older than state.keep_uploaded")
	if len(forgot) != 1 || forgot[0]["forgotten"] != float64(len(want)) {
		t.Fatalf("second backfill: forgot lines %v, want one with forgotten=%d:\n%s", forgot, len(want), tail(r.stderr, 30))
	}
	exactlyOnce(t, sb.profiles(t), want)
	after := sb.stats(t)
	if dup := after.ByStatus["400"] - before.ByStatus["400"]; dup != int64(len(want)) || after.Accepted != before.Accepted {
		t.Errorf("second backfill: %d answers 400 (duplicate reference), accepted %d → %d; want %d and no new profile",
			dup, before.Accepted, after.Accepted, len(want))
	}
	s := statusOf(t, cfg)
	if s.Total.Uploaded != len(want) || s.Total.Failed != 0 || s.Total.Pending != 0 {
		t.Errorf("status after the second backfill: %+v; want %d uploaded (confirmed), none failed", s.Total, len(want))
	}
}
