package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/internal/dovecottest"
)

// brokenMessage is cvMessage(i) with its base64 damaged in one of the
// ways real senders damage it; kind picks the way.
func brokenMessage(t *testing.T, i, kind int) []byte {
	t.Helper()
	raw, _ := cvMessage(i, 3000)
	s := string(raw)
	start := strings.Index(s, "base64\r\n\r\n") + len("base64\r\n\r\n")
	end := strings.Index(s, "--b--")
	body := strings.TrimRight(s[start:end], "\r\n")
	switch kind % 4 {
	case 0: // the last quantum cut short by one character
		body = strings.TrimRight(body, "=")
		body = body[:len(body)-1]
	case 1: // cut inside a quantum, three characters short
		body = strings.TrimRight(body, "=")
		body = body[:len(body)-3]
	case 2: // stray characters inside lines
		body = body[:100] + "!*" + body[100:200] + "\x7f" + body[200:]
	case 3: // no padding, and the last line is odd
		body = strings.TrimRight(body, "=") + "A"
	}
	return []byte(s[:start] + body + "\r\n" + s[end:])
}

type failedJSON struct {
	ID    string `json:"id"`
	File  string `json:"file"`
	Name  string `json:"name"`
	Error string `json:"error"`
}

func failedOf(t *testing.T, cfg string) []failedJSON {
	t.Helper()
	r := runCvfeed(t, nil, "failed", "-json", "-config", cfg)
	if r.code != 0 {
		t.Fatalf("failed -json: exit %d: %s", r.code, r.stderr)
	}
	var out []failedJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("failed -json: %v\n%s", err, r.stdout)
	}
	return out
}

// TestBackfillBrokenBase64: 42 mails, 12 of them with base64 broken in
// four ways between good ones. One backfill reads them all within a
// minute; every good CV is uploaded once, every broken one is uploaded
// (as the lenient decoder reads it) or listed by cvfeed failed.
func TestBackfillBrokenBase64(t *testing.T) {
	dv := startDovecot(t)
	sb := startSandbox(t)
	dir := t.TempDir()
	good := map[string]string{}
	broken := map[string]bool{}
	for i := 1; i <= 42; i++ {
		var raw []byte
		if i%7 == 3 || i%7 == 5 { // 12 of 42
			raw = brokenMessage(t, i, len(broken))
			broken[fmt.Sprintf("cv-%d.pdf", i)] = true
		} else {
			var sha string
			raw, sha = cvMessage(i, 3000)
			good[fmt.Sprintf("cv-%d.pdf", i)] = sha
		}
		if _, err := dv.Append("cvfeed", "INBOX", raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(broken) != 12 {
		t.Fatalf("%d broken mails, want 12", len(broken))
	}
	cfg := mailConfig(t, dir, sb.url, dv.Addr, "")
	start := time.Now()
	r := runCvfeed(t, []string{"JOBS_IMAP_PASSWORD=" + mailPassword}, "backfill", "-config", cfg)
	took := time.Since(start)
	if took > time.Minute {
		t.Errorf("backfill took %v, want under a minute", took)
	}
	if !strings.Contains(r.stderr, "decoding it here") {
		t.Error("no BINARY fallback logged: the broken mails did not test it")
	}
	if strings.Contains(r.stderr, "cannot read mailbox") {
		t.Errorf("the mailbox was given up:\n%s", tail(r.stderr, 30))
	}
	got := map[string]int{}
	for _, p := range sb.profiles(t) {
		got[p.FileName]++
		if want, ok := good[p.FileName]; ok && p.SHA256 != want {
			t.Errorf("%s uploaded with sha256 %s, want %s", p.FileName, p.SHA256, want)
		}
	}
	for name := range good {
		if got[name] != 1 {
			t.Errorf("good CV %s uploaded %d times, want once", name, got[name])
		}
	}
	failed := failedOf(t, cfg)
	for name := range broken {
		listed := false
		subject := "Application " + strings.TrimSuffix(strings.TrimPrefix(name, "cv-"), ".pdf")
		for _, f := range failed {
			if f.Name == subject && f.Error != "" {
				listed = true
			}
		}
		if got[name] > 1 || (got[name] == 0 && !listed) {
			t.Errorf("broken CV %s: uploaded %d times, listed by cvfeed failed: %v; want once or listed", name, got[name], listed)
		}
	}
	if t.Failed() {
		t.Logf("backfill (%v, exit %d):\n%s", took, r.code, tail(r.stderr, 40))
	}
	t.Logf("backfill of 42 mails (12 broken) in %v; %d uploads, %d failed listed", took, len(sb.profiles(t)), len(failed))
}

// TestRunBrokenBase64: under cvfeed run, a good mail that comes after a
// broken one is uploaded within seconds.
func TestRunBrokenBase64(t *testing.T) {
	dv := startDovecot(t)
	sb := startSandbox(t)
	dir := t.TempDir()
	cfg := mailConfig(t, dir, sb.url, dv.Addr, `poll_interval = "1m"`)
	d := startRun(t, cfg, "JOBS_IMAP_PASSWORD="+mailPassword)
	waitLog(t, d, "mailbox connected", 10*time.Second)
	if _, err := dv.Append("cvfeed", "INBOX", brokenMessage(t, 1, 0), nil); err != nil {
		t.Fatal(err)
	}
	raw, sha := cvMessage(2, 3000)
	start := time.Now()
	if _, err := dv.Append("cvfeed", "INBOX", raw, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !hasProfile(t, sb, "cv-2.pdf", sha) {
		if time.Now().After(deadline) {
			t.Fatalf("the good mail after a broken one was not uploaded within 15 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("good mail after a broken one uploaded in %v", time.Since(start))
	d.stop(t, syscall.SIGTERM, 10*time.Second)
}

func hasProfile(t *testing.T, sb *sandboxProc, name, sha string) bool {
	for _, p := range sb.profiles(t) {
		if p.FileName == name && p.SHA256 == sha {
			return true
		}
	}
	return false
}

// poison makes the message whose subject is subject unreadable by the
// server (mode 000): Dovecot fails its FETCH ("Permission denied").
func poison(t *testing.T, dv *dovecottest.Server, subject string, mode os.FileMode) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dv.Dir, "home", "cvfeed", "Maildir", "*", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && (strings.Contains(string(b), "Subject: "+subject+"\n") || strings.Contains(string(b), "Subject: "+subject+"\r\n")) {
			if err := os.Chmod(f, mode); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no message %q in the Maildir (%d files: %v)", subject, len(files), files)
}

func logins(dv *dovecottest.Server) int {
	return strings.Count(dv.Log(), "Login: user=<")
}

// TestPoisonMessage: a message the server cannot read. backfill goes
// past it, lists it as failed with its subject, imports the mail after
// it, with a handful of logins; cvfeed retry reads it again once it is
// readable. Then under cvfeed run, the same.
func TestPoisonMessage(t *testing.T) {
	dv := startDovecot(t)
	sb := startSandbox(t)
	dir := t.TempDir()
	env := []string{"JOBS_IMAP_PASSWORD=" + mailPassword}
	want := map[string]string{}
	for i := 1; i <= 3; i++ {
		raw, sha := cvMessage(i, 3000)
		want[fmt.Sprintf("cv-%d.pdf", i)] = sha
		if _, err := dv.Append("cvfeed", "INBOX", raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	poison(t, dv, "Application 2", 0)
	cfg := mailConfig(t, dir, sb.url, dv.Addr, "")
	before := logins(dv)
	r := runCvfeed(t, env, "backfill", "-config", cfg)
	n := logins(dv) - before
	if n == 0 {
		t.Fatal("no login counted in the Dovecot log: the count is wrong")
	}
	if !hasProfile(t, sb, "cv-1.pdf", want["cv-1.pdf"]) || !hasProfile(t, sb, "cv-3.pdf", want["cv-3.pdf"]) {
		t.Fatalf("backfill did not import the mail around the poison message (exit %d):\n%s", r.code, tail(r.stderr, 40))
	}
	if n > 6 {
		t.Errorf("backfill logged in %d times, want a handful", n)
	}
	failed := failedOf(t, cfg)
	// Dovecot cannot read even its header: the subject is unknown.
	if len(failed) != 1 || !strings.Contains(failed[0].Name, "unknown") || !strings.HasPrefix(failed[0].File, "jobs/INBOX/") ||
		!strings.HasSuffix(failed[0].File, "/2") || !strings.Contains(failed[0].Error, "quarantined") {
		t.Fatalf("cvfeed failed lists %+v, want the message of UID 2 with its subject and reason", failed)
	}
	t.Logf("backfill: %d logins; failed: %+v", n, failed[0])

	// Readable again: cvfeed retry, and the next backfill imports it.
	poison(t, dv, "Application 2", 0o600)
	if r := runCvfeed(t, nil, "retry", "-config", cfg, failed[0].ID); r.code != 0 || !strings.Contains(r.stdout, "1 items queued") {
		t.Fatalf("retry: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCvfeed(t, env, "backfill", "-config", cfg); !hasProfile(t, sb, "cv-2.pdf", want["cv-2.pdf"]) {
		t.Fatalf("the retried message was not imported (exit %d):\n%s", r.code, tail(r.stderr, 40))
	}
	if f := failedOf(t, cfg); len(f) != 0 {
		t.Errorf("after the retry, cvfeed failed lists %+v", f)
	}
	exactlyOnce(t, sb.profiles(t), want)

	// cvfeed run: a poison message, then a good one.
	_, want["cv-5.pdf"] = cvMessage(5, 3000)
	d := startRun(t, cfg, env...)
	waitLog(t, d, "mailbox connected", 10*time.Second)
	before = logins(dv)
	raw4, _ := cvMessage(4, 3000)
	if _, err := dv.Append("cvfeed", "INBOX", raw4, nil); err != nil {
		t.Fatal(err)
	}
	poison(t, dv, "Application 4", 0)
	raw5, _ := cvMessage(5, 3000)
	start := time.Now()
	if _, err := dv.Append("cvfeed", "INBOX", raw5, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !hasProfile(t, sb, "cv-5.pdf", want["cv-5.pdf"]) {
		if time.Now().After(deadline) {
			t.Fatalf("under run, the mail after a poison message was not imported within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("run: the mail after the poison one imported in %v, %d logins", time.Since(start), logins(dv)-before)
	if n := logins(dv) - before; n > 6 {
		t.Errorf("run logged in %d times, want a handful", n)
	}
	waitLog(t, d, "quarantined", 5*time.Second)
	if f := failedOf(t, cfg); len(f) != 1 || !strings.HasSuffix(f[0].File, "/4") {
		t.Errorf("under run, cvfeed failed lists %+v, want the message of UID 4", f)
	}
	d.stop(t, syscall.SIGTERM, 10*time.Second)
}

// TestBackfillSummaryCountsSkippedParts: a part over max_attachment_size
// and a file that is no CV are skipped with a log line, and the summary
// counts them.
func TestBackfillSummaryCountsSkippedParts(t *testing.T) {
	dv := startDovecot(t)
	sb := startSandbox(t)
	dir := t.TempDir()
	big, _ := cvMessage(1, 200<<10) // a CV of about 200 KiB
	small, sha := cvMessage(2, 3000)
	other, _ := cvMessage(3, 3000)
	o := string(other)
	start := strings.Index(o, "base64\r\n\r\n") + len("base64\r\n\r\n")
	notCV := o[:start] + base64.StdEncoding.EncodeToString([]byte("meeting notes, no CV here\n")) + "\r\n" + o[strings.Index(o, "--b--"):]
	for _, raw := range [][]byte{big, small, []byte(notCV)} {
		if _, err := dv.Append("cvfeed", "INBOX", raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg := mailConfig(t, dir, sb.url, dv.Addr, `max_attachment_size = "100KiB"`)
	r := runCvfeed(t, []string{"JOBS_IMAP_PASSWORD=" + mailPassword}, "backfill", "-config", cfg)
	exactlyOnce(t, sb.profiles(t), map[string]string{"cv-2.pdf": sha})
	if !strings.Contains(r.stdout, "skipped 2,") {
		t.Errorf("summary %q, want skipped 2 (one too large, one no CV)\n%s", r.stdout, tail(r.stderr, 20))
	}
}
