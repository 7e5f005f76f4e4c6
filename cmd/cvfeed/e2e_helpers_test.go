package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The end-to-end tests drive the cvfeed binary from outside, through the
// contract of DESIGN.md: commands, flags, config keys, the sandbox's test
// endpoints and exit codes.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// cvfeedBin builds the binary once per test run.
func cvfeedBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cvfeed-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "cvfeed")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// sandboxProc is a `cvfeed sandbox` in its own process.
type sandboxProc struct {
	url string
	cmd *exec.Cmd
}

// startSandbox starts `cvfeed sandbox -listen 127.0.0.1:0 ARGS...` and
// reads its URL from the first line of its output.
func startSandbox(t *testing.T, args ...string) *sandboxProc {
	t.Helper()
	cmd := exec.Command(cvfeedBin(t), append([]string{"sandbox", "-listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, r)
	}()
	select {
	case u := <-line:
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Fatalf("sandbox printed %q, stderr: %s", u, stderr.String())
		}
		return &sandboxProc{url: u, cmd: cmd}
	case <-time.After(10 * time.Second):
		t.Fatalf("sandbox did not start: %s", stderr.String())
	}
	return nil
}

// profile is an element of GET /_sandbox/profiles.
type profile struct {
	SourceID           string          `json:"source_id"`
	ProfileReference   string          `json:"profile_reference"`
	FileName           string          `json:"file_name"`
	FileSize           int64           `json:"file_size"`
	SHA256             string          `json:"sha256"`
	TrainingMetadata   json.RawMessage `json:"training_metadata"`
	TimestampReception *int64          `json:"timestamp_reception"`
	ReceivedAt         time.Time       `json:"received_at"`
}

type sandboxStats struct {
	Requests int64            `json:"requests"`
	Accepted int64            `json:"accepted"`
	ByStatus map[string]int64 `json:"by_status"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func (s *sandboxProc) profiles(t *testing.T) []profile {
	var p []profile
	getJSON(t, s.url+"/_sandbox/profiles", &p)
	return p
}

func (s *sandboxProc) stats(t *testing.T) sandboxStats {
	var st sandboxStats
	getJSON(t, s.url+"/_sandbox/stats", &st)
	return st
}

// cvFiles writes n distinct small CV files under dir (in sub-folders) and
// returns their hashes by relative path.
func cvFiles(t *testing.T, dir string, n int) map[string]string {
	t.Helper()
	out := map[string]string{}
	exts := []string{".pdf", ".docx", ".doc", ".odt", ".rtf"}
	for i := range n {
		rel := filepath.Join(fmt.Sprintf("team%d", i%5), fmt.Sprintf("Candidate %04d CV%s", i, exts[i%len(exts)]))
		content := fmt.Sprintf("%%PDF-1.4 fake CV %d %s\n", i, strings.Repeat("x", i%97))
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		out[rel] = hex.EncodeToString(sum[:])
	}
	return out
}

const e2eSource = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

// writeConfig writes a config for one folder and returns its path; extra
// goes into [api] (default workers = 8).
func writeConfig(t *testing.T, dir, url, key, cvDir, extra string) string {
	t.Helper()
	if !strings.Contains(extra, "workers") {
		extra += "\nworkers = 8"
	}
	cfg := fmt.Sprintf(`state_dir = "state"
[api]
url = %q
api_key = %q
%s
[[folder]]
name = "inbox"
path = %q
source_id = %q
[[folder.training_metadata]]
filter_reference = "data-scientist"
stage = "NEW"
rating = 3
`, url, key, extra, cvDir, e2eSource)
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

func runCvfeed(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(cvfeedBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// statusJSON runs `cvfeed status -json`.
func statusOf(t *testing.T, cfg string) statusJSON {
	t.Helper()
	r := runCvfeed(t, nil, "status", "-json", "-config", cfg)
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	var s statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status -json: %v: %q", err, r.stdout)
	}
	return s
}

// exactlyOnce checks that the sandbox holds each expected hash exactly
// once, and nothing else.
func exactlyOnce(t *testing.T, profiles []profile, want map[string]string) {
	t.Helper()
	seen := map[string]int{}
	for _, p := range profiles {
		seen[p.SHA256]++
	}
	missing, twice := 0, 0
	for rel, sha := range want {
		switch seen[sha] {
		case 0:
			missing++
			if missing <= 5 {
				t.Errorf("missing: %s", rel)
			}
		case 1:
		default:
			twice++
			if twice <= 5 {
				t.Errorf("uploaded %d times: %s", seen[sha], rel)
			}
		}
		delete(seen, sha)
	}
	if len(seen) > 0 {
		t.Errorf("%d profiles of unknown content", len(seen))
	}
	if missing+twice > 0 {
		t.Errorf("%d of %d files missing, %d uploaded more than once", missing, len(want), twice)
	}
}
