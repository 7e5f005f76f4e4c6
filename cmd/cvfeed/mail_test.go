package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cvfeed/cvfeed/internal/dovecottest"
	"github.com/cvfeed/cvfeed/mailpart"
)

// The mailbox end-to-end tests run a real Dovecot (internal/dovecottest;
// .ci/run installs dovecot-imapd), most of them a real Cyrus too
// (internal/cyrustest, forEachServer; .ci/cyrus.sh), and drive the cvfeed
// binary.

const mailPassword = "s3cret-imap-Pa55"

// mailConfig writes a config with one [[mailbox]] on the Dovecot at addr;
// the password comes from the environment (JOBS_IMAP_PASSWORD).
func mailConfig(t *testing.T, dir, url, addr, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir = "state"
shutdown_timeout = "5s"
[api]
url = %q
api_key = "k"
workers = 4
retry_initial = "100ms"
retry_max = "1s"
[[mailbox]]
name = "jobs"
address = %q
security = "plain"
username = "cvfeed"
password = "${JOBS_IMAP_PASSWORD}"
folders = ["INBOX"]
source_id = %q
%s
`, url, addr, e2eSource, extra)
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startDovecot(t *testing.T) *dovecottest.Server {
	t.Helper()
	return dovecottest.StartWith(t, dovecottest.Options{Users: map[string]string{"cvfeed": mailPassword}})
}

// fixtureExpect is the part of mailpart/testdata/eml/expected.json the
// end-to-end test checks.
type fixtureExpect struct {
	File     string `json:"file"`
	Expected []struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
		Type   string `json:"content_type"`
	} `json:"expected_uploads"`
}

// TestBackfillMailbox: real-world messages in a real Dovecot, and in a
// real Cyrus; a backfill with accept = ["all"] uploads every file part
// once, marks the messages with CVs \Seen, and a rerun uploads nothing;
// the password never shows in the output.
func TestBackfillMailbox(t *testing.T) { forEachServer(t, testBackfillMailbox) }

func testBackfillMailbox(t *testing.T, dv *mailServer) {
	emlDir := filepath.Join("..", "..", "mailpart", "testdata", "eml")
	var fixtures []fixtureExpect
	b, err := os.ReadFile(filepath.Join(emlDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fixtures); err != nil {
		t.Fatal(err)
	}
	// Dovecot serves a bare-LF message with CRLF line ends, which changes
	// the bytes of text parts: append every message CRLF already, and
	// take the files a careful MIME reading finds in those bytes (the
	// imapsrc tests check that reading against expected.json).
	distinct := map[string]bool{}
	withFiles := map[int]bool{}
	for i, f := range fixtures {
		raw, err := os.ReadFile(filepath.Join(emlDir, f.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte("\r\n")) {
			raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
		}
		if _, err := dv.Append("cvfeed", "INBOX", raw, nil); err != nil {
			t.Fatalf("append %s: %v", f.File, err)
		}
		var visit func(ref mailpart.PartRef, r io.Reader) error
		visit = func(ref mailpart.PartRef, r io.Reader) error {
			b, err := io.ReadAll(r)
			if err == nil && mailpart.IsTNEF(b) { // winmail.dat: its files, not it
				_, err = mailpart.UnpackTNEF(ref, bytes.NewReader(b), t.TempDir(), 0, visit)
				return err
			}
			if err == nil && len(b) > 0 {
				distinct[shaHex(b)] = true
				withFiles[i+1] = true
			}
			return err
		}
		err = mailpart.ParseMessage(bytes.NewReader(raw), mailpart.Policy{All: true}, visit)
		if err != nil {
			t.Fatalf("parse %s: %v", f.File, err)
		}
	}
	// expected.json: 34 files, 26 distinct and not empty; of them two
	// winmail.dat, which give one picture (and nothing).
	if len(distinct) != 25 {
		t.Fatalf("%d distinct files found in the fixtures, want 25", len(distinct))
	}
	sb := startSandbox(t)
	dir := t.TempDir()
	cfg := mailConfig(t, dir, sb.url, dv.Addr, `accept = ["all"]
after_upload = "seen"
poll_interval = "2s"`)
	env := []string{"JOBS_IMAP_PASSWORD=" + mailPassword}
	r := runCvfeed(t, env, "backfill", "-config", cfg, "-no-progress", "-log-level", "debug")
	if r.code != 0 {
		t.Fatalf("backfill exit %d\n%s", r.code, tail(r.stderr, 30))
	}
	if strings.Contains(r.stdout+r.stderr, mailPassword) {
		t.Error("the IMAP password appears in the output")
	}
	profiles := sb.profiles(t)
	got := map[string]int{}
	for _, p := range profiles {
		got[p.SHA256]++
		if p.ProfileReference != p.SHA256 || p.SourceID != e2eSource || p.FileName == "" || strings.ContainsAny(p.FileName, "/\\") {
			t.Errorf("profile %+v", p)
		}
	}
	for sha, n := range got {
		if n > 1 {
			t.Errorf("%s uploaded %d times", sha[:16], n)
		}
	}
	for sha := range distinct {
		if got[sha] == 0 {
			t.Errorf("file %s of the fixtures not uploaded", sha[:16])
		}
	}
	for sha := range got {
		if !distinct[sha] {
			t.Errorf("uploaded %s, which is no file of the fixtures", sha[:16])
		}
	}
	// Every message with a file is \Seen, the others are not.
	c, err := dv.Client("cvfeed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(allMessages(), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		seen := false
		for _, f := range m.Flags {
			seen = seen || f == imap.FlagSeen
		}
		if seen != withFiles[int(m.SeqNum)] {
			t.Errorf("message %d (%s): \\Seen = %v, want %v (it carries files: %v)", m.SeqNum, fixtures[m.SeqNum-1].File, seen, withFiles[int(m.SeqNum)], withFiles[int(m.SeqNum)])
		}
	}
	if t.Failed() {
		t.Logf("backfill output:\n%s\n%s", r.stdout, tail(r.stderr, 80))
	}
	// A rerun uploads nothing.
	before := sb.stats(t)
	if r := runCvfeed(t, env, "backfill", "-config", cfg); r.code != 0 || !strings.Contains(r.stdout, "uploaded 0,") {
		t.Errorf("rerun: exit %d, %q\n%s", r.code, r.stdout, tail(r.stderr, 10))
	}
	if after := sb.stats(t); after.Accepted != before.Accepted {
		t.Errorf("the rerun uploaded %d more", after.Accepted-before.Accepted)
	}
}

// cvMessage is a message with one PDF attachment of distinct content.
func cvMessage(i int, size int) ([]byte, string) {
	pdf := []byte(fmt.Sprintf("%%PDF-1.4\n%% CV of candidate %d\n%s\n%%%%EOF\n", i, strings.Repeat(fmt.Sprintf("line %d ", i), size/8)))
	body := base64.StdEncoding.EncodeToString(pdf)
	var wrapped strings.Builder
	for len(body) > 76 {
		wrapped.WriteString(body[:76] + "\r\n")
		body = body[76:]
	}
	wrapped.WriteString(body + "\r\n")
	raw := fmt.Sprintf("From: Candidate %d <c%d@example.com>\r\nTo: jobs@example.com\r\nSubject: Application %d\r\nDate: Mon, 30 Nov 2026 09:%02d:00 +0000\r\nMessage-ID: <%d@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find my CV attached.\r\n--b\r\nContent-Type: application/pdf; name=\"cv-%d.pdf\"\r\nContent-Disposition: attachment; filename=\"cv-%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b--\r\n",
		i, i, i, i%60, i, i, i, wrapped.String())
	return []byte(raw), shaHex(pdf)
}

// TestRunMailboxIDLE: a message appended while cvfeed run is up is
// uploaded within seconds, then marked \Seen; the password is never logged.
// On Cyrus, whose IDLE notifies after about a minute, the poll brings it.
func TestRunMailboxIDLE(t *testing.T) { forEachServer(t, testRunMailboxIDLE) }

func testRunMailboxIDLE(t *testing.T, dv *mailServer) {
	sb := startSandbox(t)
	dir := t.TempDir()
	poll := "1m"
	if !dv.IdleNotifies {
		poll = "2s"
	}
	cfg := mailConfig(t, dir, sb.url, dv.Addr, `after_upload = "seen"
poll_interval = "`+poll+`"`)
	d := startRun(t, cfg, "JOBS_IMAP_PASSWORD="+mailPassword)
	waitLog(t, d, "first run for this folder", 15*time.Second) // read; IDLE is next
	raw, sha := cvMessage(1, 3000)
	start := time.Now()
	if _, err := dv.Append("cvfeed", "INBOX", raw, nil); err != nil {
		t.Fatal(err)
	}
	waitProfiles(t, sb, 1, 10*time.Second)
	took := time.Since(start)
	exactlyOnce(t, sb.profiles(t), map[string]string{"cv-1.pdf": sha})
	if took > 5*time.Second {
		t.Errorf("uploaded %v after the append; IDLE should bring it within seconds", took)
	}
	t.Logf("appended → uploaded in %v", took)
	d.stop(t, syscall.SIGTERM, 10*time.Second)
	if strings.Contains(d.log(), mailPassword) {
		t.Error("the IMAP password appears in the log")
	}
}

// TestBackfillMailboxCrashes kills a mailbox backfill with SIGKILL at
// random moments and restarts it: each attachment reaches the sandbox
// exactly once, and no message is marked \Seen before its CV was uploaded.
func TestBackfillMailboxCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("a long crash loop; skipped with -short (CI runs it)")
	}
	dv := startDovecot(t)
	const n = 300
	want := map[string]string{}
	for i := range n {
		raw, sha := cvMessage(i, 1000+i%2000)
		if err := dv.Deliver("cvfeed", raw); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("cv-%d.pdf", i)] = sha
	}
	sb := startSandbox(t, "-latency", "20ms")
	dir := t.TempDir()
	cfg := mailConfig(t, dir, sb.url, dv.Addr, `after_upload = "seen"
poll_interval = "2s"`)
	env := append(os.Environ(), "JOBS_IMAP_PASSWORD="+mailPassword)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	kills := 0
	for round := range 8 {
		cmd := exec.Command(cvfeedBin(t), "backfill", "-config", cfg, "-no-progress")
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// The kill lands after a random number (5..30) of new uploads,
		// so that it hits the backfill in the middle of its work however
		// fast or loaded the machine is (8 rounds take at most 240 of
		// the 300), or after a random delay when uploads do not move.
		before, step := len(sb.profiles(t)), 5+rng.IntN(26)
		deadline := time.After(time.Duration(200+rng.IntN(800)) * time.Millisecond * 10)
	wait:
		for {
			select {
			case <-exited:
				t.Logf("round %d finished before the kill", round)
				break wait
			case <-deadline:
			case <-time.After(20 * time.Millisecond):
				if len(sb.profiles(t)) < before+step {
					continue
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
			break
		}
		checkSeenAfterUpload(t, dv, sb)
	}
	cmd := exec.Command(cvfeedBin(t), "backfill", "-config", cfg, "-no-progress")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, tail(string(out), 20))
	}
	exactlyOnce(t, sb.profiles(t), want)
	if seen := checkSeenAfterUpload(t, dv, sb); seen != n {
		t.Errorf("%d messages \\Seen after the final run, want %d", seen, n)
	}
	if kills < 4 {
		t.Errorf("only %d of 8 runs were killed mid-way", kills)
	}
}

// checkSeenAfterUpload fails the test if a \Seen message's CV is not in
// the sandbox; it returns how many messages are \Seen.
func checkSeenAfterUpload(t *testing.T, dv *dovecottest.Server, sb *sandboxProc) int {
	t.Helper()
	uploaded := map[string]bool{}
	for _, p := range sb.profiles(t) {
		uploaded[p.FileName] = true
	}
	c, err := dv.Client("cvfeed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(allMessages(), &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, m := range msgs {
		for _, f := range m.Flags {
			if f != imap.FlagSeen {
				continue
			}
			seen++
			var i int
			fmt.Sscanf(m.Envelope.Subject, "Application %d", &i)
			if !uploaded[fmt.Sprintf("cv-%d.pdf", i)] {
				t.Errorf("message %q is \\Seen but its CV is not uploaded", m.Envelope.Subject)
			}
		}
	}
	return seen
}

// allMessages is the sequence set 1:*.
func allMessages() imap.SeqSet {
	var ss imap.SeqSet
	ss.AddRange(1, 0)
	return ss
}
