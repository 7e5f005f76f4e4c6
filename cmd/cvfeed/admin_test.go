package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// evilName is a file name that, printed raw, clears the screen and forges
// a line of cvfeed check's output.
const evilName = "\x1b[2J\rOK    api fake\n.pdf"

// rawControl returns the first byte of out that a terminal would act upon
// (a control character other than the newlines that end the output's own
// lines, or DEL), and whether there is one.
func rawControl(out string) (byte, bool) {
	for i := 0; i < len(out); i++ {
		if c := out[i]; (c < 0x20 && c != '\n') || c == 0x7f {
			return c, true
		}
	}
	return 0, false
}

// TestAdminCommandsWithoutSecretsAndEscaped: a CV named with escape
// sequences fails for good (its folder's source_id is not one of the
// sandbox's). Then, in a shell without RIMINDER_API_KEY and with a
// password_file and a webhook secret_file that do not exist, status,
// failed, report and retry -all work, and print no raw control character;
// run, backfill and check still refuse, naming the key.
func TestAdminCommandsWithoutSecretsAndEscaped(t *testing.T) {
	const otherSource = "0123456789abcdef0123456789abcdef01234567"
	sb := startSandbox(t, "-api-key", "right", "-source", e2eSource)
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "cvs"), filepath.Join(dir, "other")
	cvFiles(t, good, 3)
	writeFile(t, filepath.Join(bad, evilName), "%PDF-1.4 a CV with a hostile name")
	base := fmt.Sprintf(`state_dir = "state"
[api]
url = %q
api_key = "${RIMINDER_API_KEY}"
max_attempts = 2
retry_initial = "10ms"
retry_max = "20ms"
[[folder]]
name = "inbox"
path = %q
source_id = %q
[[folder]]
name = "other"
path = %q
source_id = %q
`, sb.url, good, e2eSource, bad, otherSource)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCvfeed(t, []string{"RIMINDER_API_KEY=right"}, "backfill", "-config", cfg, "-no-progress")
	if r.code != 1 || !strings.Contains(r.stdout, "uploaded 3,") || !strings.Contains(r.stdout, "failed 1,") {
		t.Fatalf("backfill: exit %d, want 1 with 3 uploaded and 1 failed\n%s%s", r.code, r.stdout, r.stderr)
	}
	if c, found := rawControl(r.stdout + r.stderr); found {
		t.Errorf("backfill printed the raw byte %#x:\n%q", c, r.stdout+r.stderr)
	}
	// A dry run lists a new such file escaped.
	writeFile(t, filepath.Join(good, "new\x1b]0;title\a.pdf"), "%PDF-1.4 another hostile name")
	r = runCvfeed(t, []string{"RIMINDER_API_KEY=right"}, "backfill", "-dry-run", "-config", cfg)
	if _, found := rawControl(r.stdout + r.stderr); found || r.code != 0 || !strings.Contains(r.stdout, `new\x1b]0;title\a.pdf`) {
		t.Errorf("backfill -dry-run: exit %d, want the new file listed escaped:\n%q", r.code, r.stdout+r.stderr)
	}

	// The admin's shell: no key in the environment, secret files it
	// cannot read (here: absent).
	withSecrets := base + fmt.Sprintf(`[[mailbox]]
name = "jobs"
address = "127.0.0.1:1"
security = "plain"
username = "jobs@example.com"
password_file = %q
source_id = %q
[webhook]
secret_file = %q
`, filepath.Join(dir, "no-such", "jobs_password"), e2eSource, filepath.Join(dir, "no-such", "webhook_secret"))
	if err := os.WriteFile(cfg, []byte(withSecrets), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, set := os.LookupEnv("RIMINDER_API_KEY"); set {
		t.Setenv("RIMINDER_API_KEY", "") // restored after the test
		os.Unsetenv("RIMINDER_API_KEY")
	}
	noKey := func(args ...string) result {
		t.Helper()
		cmd := append(args, "-config", cfg)
		r := runCvfeed(t, nil, cmd...)
		if c, found := rawControl(r.stdout + r.stderr); found {
			t.Errorf("cvfeed %s printed the raw byte %#x:\n%q", strings.Join(args, " "), c, r.stdout+r.stderr)
		}
		return r
	}

	r = noKey("status")
	if r.code != 0 || !strings.Contains(r.stdout, "inbox") {
		t.Errorf("status without the key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = noKey("status", "-json")
	var st statusJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Sources["other"].Failed != 1 || st.Sources["inbox"].Uploaded != 3 {
		t.Errorf("status -json without the key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = noKey("failed")
	if r.code != 0 || !strings.Contains(r.stdout, `\x1b[2J\rOK    api fake\n.pdf`) || strings.Contains(r.stdout, "\nOK    api") {
		t.Errorf("failed without the key: exit %d, want the name escaped\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = noKey("failed", "-json")
	var items []failedItem
	if err := json.Unmarshal([]byte(r.stdout), &items); r.code != 0 || err != nil || len(items) != 1 {
		t.Fatalf("failed -json without the key: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if !strings.HasSuffix(items[0].File, "/"+evilName) || !strings.Contains(items[0].Error, "Invalid source_id") {
		t.Errorf("failed -json: %+v, want the file's real name and the API's error", items[0])
	}
	if r = noKey("report"); r.code != 0 || !strings.Contains(r.stdout, "other") {
		t.Errorf("report without the key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = noKey("retry", "-all"); r.code != 0 || !strings.Contains(r.stdout, "1 items queued again") {
		t.Errorf("retry -all without the key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The commands that talk to the API still need the key.
	for _, args := range [][]string{{"backfill", "-no-progress"}, {"check"}, {"run"}} {
		r := noKey(args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "api.api_key: environment variable RIMINDER_API_KEY is not set") ||
			!strings.Contains(r.stderr, "mailbox[0].password_file: open ") {
			t.Errorf("%s without the key: exit %d, want %d naming api.api_key and the password file\n%s", args[0], r.code, exitUsage, r.stderr)
		}
	}
}

// TestCheckRefusesOverlappingFolders: two folders, one inside the other
// with after_upload = "move", are a config error naming both.
func TestCheckRefusesOverlappingFolders(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "hr", "cvs")
	cvFiles(t, cvDir, 2)
	cfg := writeConfig(t, dir, sb.url, "k", cvDir, "")
	extra := fmt.Sprintf(`[[folder]]
name = "sales"
path = %q
source_id = "0123456789abcdef0123456789abcdef01234567"
after_upload = "move"
done_dir = %q
`, filepath.Join(cvDir, "team1"), filepath.Join(dir, "done"))
	if err := os.WriteFile(cfg, []byte(readFile(t, cfg)+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCvfeed(t, nil, "check", "-config", cfg)
	want := fmt.Sprintf(`folder[1].path: %q is inside folder[0].path %q: both folders would take the same files`, filepath.Join(cvDir, "team1"), cvDir)
	if r.code != exitUsage || !strings.Contains(r.stderr, want) || strings.Contains(r.stdout, "OK ") {
		t.Errorf("check of overlapping folders: exit %d, want %d and %s\n%s%s", r.code, exitUsage, want, r.stdout, r.stderr)
	}
}

// TestCheckRedactsURLPassword: a user:password@ in api.url is never
// printed, whether the API answers or not.
func TestCheckRedactsURLPassword(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	cvFiles(t, cvDir, 1)
	live := strings.Replace(sb.url, "http://", "http://user:secret@", 1)
	dead := "http://user:secret@" + freeAddr(t)
	for _, u := range []string{live, dead} {
		cfg := writeConfig(t, dir, u, "k", cvDir, "")
		r := runCvfeed(t, nil, "check", "-config", cfg, "-log-level", "debug")
		if strings.Contains(r.stdout+r.stderr, "secret") || !strings.Contains(r.stdout, "user:xxxxx@") {
			t.Errorf("check with %s: exit %d, the password shows or the URL is missing:\n%s%s", u, r.code, r.stdout, r.stderr)
		}
	}
}

// TestBackfillBadDates: files dated 1901 and 2100 are uploaded, the first
// without a date, the second dated now, each with a log line naming it.
func TestBackfillBadDates(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	dates := map[string]time.Time{
		"old.pdf":    time.Date(1901, 12, 13, 20, 45, 52, 0, time.UTC),
		"future.pdf": time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		"fine.pdf":   time.Unix(1700000000, 0),
	}
	for name, d := range dates {
		p := filepath.Join(cvDir, name)
		writeFile(t, p, "%PDF-1.4 "+name)
		if err := os.Chtimes(p, d, d); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, dir, sb.url, "k", cvDir, "")
	start := time.Now().Unix()
	r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
	if r.code != 0 || !strings.Contains(r.stdout, "uploaded 3, duplicates 0, failed 0") {
		t.Fatalf("backfill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, p := range sb.profiles(t) {
		ts := p.TimestampReception
		switch p.FileName {
		case "old.pdf":
			if ts != nil {
				t.Errorf("old.pdf: timestamp_reception = %d, want null", *ts)
			}
		case "future.pdf":
			if ts == nil || *ts < start || *ts > time.Now().Unix() {
				t.Errorf("future.pdf: timestamp_reception = %v, want now", ts)
			}
		case "fine.pdf":
			if ts == nil || *ts != 1700000000 {
				t.Errorf("fine.pdf: timestamp_reception = %v, want 1700000000", ts)
			}
		}
	}
	for _, name := range []string{"old.pdf", "future.pdf"} {
		if !strings.Contains(r.stderr, filepath.Join(cvDir, name)) {
			t.Errorf("no log line names %s:\n%s", name, r.stderr)
		}
	}
}

// TestLogHandlersEscape: neither log handler lets a control character of a
// name through raw.
func TestLogHandlersEscape(t *testing.T) {
	for _, text := range []bool{true, false} {
		var b bytes.Buffer
		log := slog.New(newHandler(&b, text, &slog.HandlerOptions{}))
		log.Warn("cannot read "+evilName, "file", "/share/"+evilName, "err", fmt.Errorf("open %s: denied\u009b2J\u202e", evilName))
		out := strings.TrimSuffix(b.String(), "\n")
		if c, found := rawControl(out); found || strings.Contains(out, "\n") || strings.ContainsAny(out, "\u009b\u202e") {
			t.Errorf("text=%v: a raw control character (%#x) in %q", text, c, out)
		}
		if !text {
			var m map[string]any
			if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["file"] != "/share/"+evilName {
				t.Errorf("JSON log line %q: %v, file = %q", out, err, m["file"])
			}
		}
	}
}
