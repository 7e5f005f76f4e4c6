package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunReloadAppliesSettings: a SIGHUP applies api.max_attempts (an item
// retrying against a failing API fails at the new bound) and names in a
// WARN each setting that needs a restart (api.workers).
func TestRunReloadAppliesSettings(t *testing.T) {
	sb := startSandbox(t, "-fail-rate", "1", "-fail-codes", "500")
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	writeFile(t, filepath.Join(share, "a.pdf"), "a CV the API keeps refusing")
	cfg := runConfig(t, dir, sb.url, "k", share, "")
	// Many attempts, a short backoff: without the reload it retries for
	// minutes.
	text := strings.Replace(readFile(t, cfg), "retry_initial", "max_attempts = 1000\nretry_initial", 1)
	os.WriteFile(cfg, []byte(text), 0o644)
	d := startRun(t, cfg)
	waitLog(t, d, "will retry", 15*time.Second)

	text = strings.Replace(text, "max_attempts = 1000", "max_attempts = 2", 1)
	text = strings.Replace(text, "workers = 4", "workers = 2", 1)
	os.WriteFile(cfg, []byte(text), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, d, `"msg":"config reloaded"`, 10*time.Second)
	reloaded := logLines(d.log(), "INFO", "config reloaded")
	if len(reloaded) != 1 || !strings.Contains(toString(reloaded[0]["changed"]), "api.max_attempts") {
		t.Errorf("config reloaded lines: %v, want one naming api.max_attempts", reloaded)
	}
	if w := logLines(d.log(), "WARN", "api.workers changes only with a restart"); len(w) != 1 {
		t.Errorf("%d WARN lines naming api.workers, want 1", len(w))
	}
	waitFor(t, "the item failed at the reloaded max_attempts", 15*time.Second, func() bool { return statusOf(t, cfg).Total.Failed == 1 })
	if code, _ := d.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case []any:
		var parts []string
		for _, e := range v {
			parts = append(parts, toString(e))
		}
		return strings.Join(parts, ",")
	case string:
		return v
	}
	return ""
}
