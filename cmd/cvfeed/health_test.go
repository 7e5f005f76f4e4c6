package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// healthz is one answer of /healthz.
type healthz struct {
	code    int
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
}

func getHealthz(base string) (healthz, error) {
	var h healthz
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	h.code = resp.StatusCode
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// waitHealthz polls /healthz until ok says its answer is the one awaited.
func waitHealthz(t *testing.T, d *daemonProc, base, what string, limit time.Duration, ok func(healthz) bool) healthz {
	t.Helper()
	deadline := time.Now().Add(limit)
	var (
		last healthz
		err  error
	)
	for {
		last, err = getHealthz(base)
		if err == nil && ok(last) {
			return last
		}
		select {
		case <-d.done:
			t.Fatalf("cvfeed run exited while waiting for /healthz %s", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not %s within %v: last %d %+v (%v)", what, limit, last.code, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// withHTTP adds [http] listen to a config and returns the base URL.
func withHTTP(t *testing.T, cfg string) string {
	t.Helper()
	listen := freeAddr(t)
	os.WriteFile(cfg, []byte(readFile(t, cfg)+fmt.Sprintf("\n[http]\nlisten = %q\n", listen)), 0o644)
	return "http://" + listen
}

// logged counts the log lines of d whose message starts with msg.
func logged(d *daemonProc, msg string) int { return strings.Count(d.log(), `"msg":"`+msg) }

// TestRunFolderMissingThenBack: a folder that does not exist (a share that
// did not mount) makes /healthz 503 naming it, cvfeed_folder_up 0, one
// WARN, and check says so on its line; once it appears, cvfeed recovers by
// itself and a file dropped in it is uploaded.
func TestRunFolderMissingThenBack(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "share")
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "")
	base := withHTTP(t, cfg)
	d := startRun(t, cfg)
	want := "folder inbox: " + cvDir + " is missing"
	h := waitHealthz(t, d, base, "unhealthy", 10*time.Second, func(h healthz) bool { return h.code == 503 })
	if h.Status != "unhealthy" || len(h.Reasons) != 1 || h.Reasons[0] != want {
		t.Errorf("/healthz = %d %+v, want 503 with the reason %q", h.code, h, want)
	}
	if m := metricsText(t, base); !strings.Contains(m, `cvfeed_folder_up{folder="inbox"} 0`) {
		t.Errorf("/metrics lacks cvfeed_folder_up{folder=\"inbox\"} 0")
	}
	r := runCvfeed(t, nil, "check", "-config", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  folder   inbox: "+cvDir+" is missing") {
		t.Errorf("check of a missing folder: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	os.Mkdir(cvDir, 0o755)
	sum := writeFile(t, filepath.Join(cvDir, "anna.pdf"), "anna's CV")
	waitHealthz(t, d, base, "ok", 15*time.Second, func(h healthz) bool { return h.code == 200 })
	p := waitProfiles(t, sb, 1, 10*time.Second)
	if len(p) != 1 || p[0].SHA256 != sum {
		t.Errorf("profiles %+v, want anna.pdf once", p)
	}
	if m := metricsText(t, base); !strings.Contains(m, `cvfeed_folder_up{folder="inbox"} 1`) {
		t.Errorf("/metrics lacks cvfeed_folder_up{folder=\"inbox\"} 1 once the folder is back")
	}
	if n := logged(d, "folder is down"); n != 1 {
		t.Errorf("%d \"folder is down\" lines, want 1", n)
	}
	if n := logged(d, "folder is back"); n != 1 {
		t.Errorf("%d \"folder is back\" lines, want 1", n)
	}
}

// mountShare bind-mounts backing on share until the test ends: the share
// then is on backing's file system (a tmpfs), and mounting it again gives
// the same device and inodes, as an NFS share that comes back does.
func mountShare(t *testing.T, backing, share string) {
	t.Helper()
	if err := unix.Mount(backing, share, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s on %s: %v", backing, share, err)
	}
	t.Cleanup(func() { unix.Unmount(share, unix.MNT_DETACH) })
}

func devString(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// TestRunShareNotMounted is the reboot after which the share did not
// mount. cvfeed records the share's device while it holds CVs (their
// uploads paused by a refused key, so that they are still pending, with
// after_upload = "delete" due once uploaded); it stops; the share is
// unmounted, leaving an empty mount point; cvfeed starts with a working
// key: /healthz 503 naming the folder and the device change,
// cvfeed_folder_up 0, check says it, nothing uploaded, failed or
// forgotten. Once the share is mounted again, every CV is uploaded once
// and deleted from the share.
func TestRunShareNotMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	backing, share := filepath.Join(dir, "backing"), filepath.Join(dir, "share")
	os.Mkdir(backing, 0o755)
	os.Mkdir(share, 0o755)
	if err := unix.Mount("tmpfs", backing, "tmpfs", 0, "size=4m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(backing, unix.MNT_DETACH) })
	want := map[string]string{}
	for _, n := range []string{"anna.pdf", "bob.docx", "Data Scientist/carla.pdf"} {
		want[n] = writeFile(t, filepath.Join(backing, n), "the CV of "+n)
	}
	mountShare(t, backing, share)

	sb := startSandbox(t, "-api-key", "right")
	cfg := runConfig(t, dir, sb.url, "wrong", share, `after_upload = "delete"`)
	base := withHTTP(t, cfg)
	d := startRun(t, cfg)
	deadline := time.Now().Add(15 * time.Second)
	for statusOf(t, cfg).Sources["inbox"].Pending != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("status after 15s: %+v, want 3 pending", statusOf(t, cfg))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := d.stop(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("first run: exit %d", code)
	}

	shareDev := devString(t, share)
	if err := unix.Unmount(share, 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), `api_key = "wrong"`, `api_key = "right"`, 1)), 0o644)
	d = startRun(t, cfg)
	reason := fmt.Sprintf("folder inbox: %s is on another device than before (device %s, was %s): is the share mounted?", share, devString(t, share), shareDev)
	h := waitHealthz(t, d, base, "unhealthy", 10*time.Second, func(h healthz) bool { return h.code == 503 })
	if len(h.Reasons) != 1 || h.Reasons[0] != reason {
		t.Errorf("/healthz = %d %+v, want 503 with the reason %q", h.code, h, reason)
	}
	if m := metricsText(t, base); !strings.Contains(m, `cvfeed_folder_up{folder="inbox"} 0`) {
		t.Errorf("/metrics lacks cvfeed_folder_up{folder=\"inbox\"} 0")
	}
	r := runCvfeed(t, nil, "check", "-config", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  folder   "+strings.TrimPrefix(reason, "folder ")) {
		t.Errorf("check of the empty mount point: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The uploads of the missing files would fail at once; over a few
	// seconds (and looks at the folder), they stay pending.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		st := statusOf(t, cfg).Sources["inbox"]
		if st.Pending != 3 || st.Failed != 0 || st.Uploaded != 0 {
			t.Fatalf("status while the share is not mounted: %+v, want 3 pending", st)
		}
	}
	if n := len(sb.profiles(t)); n != 0 {
		t.Fatalf("%d profiles uploaded while the share was not mounted", n)
	}

	mountShare(t, backing, share)
	waitHealthz(t, d, base, "ok", 15*time.Second, func(h healthz) bool { return h.code == 200 })
	exactlyOnce(t, waitProfiles(t, sb, 3, 15*time.Second), want)
	deadline = time.Now().Add(10 * time.Second)
	for left := 3; left > 0; {
		left = 0
		for n := range want {
			if _, err := os.Stat(filepath.Join(backing, n)); err == nil {
				left++
			}
		}
		if left > 0 && time.Now().After(deadline) {
			t.Fatalf("%d files still on the share 10s after their upload, want them deleted", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := statusOf(t, cfg).Sources["inbox"]; st.Uploaded != 3 || st.Pending != 0 || st.Failed != 0 {
		t.Errorf("status after the share came back: %+v, want 3 uploaded", st)
	}
	if m := metricsText(t, base); !strings.Contains(m, `cvfeed_folder_up{folder="inbox"} 1`) {
		t.Errorf("/metrics lacks cvfeed_folder_up{folder=\"inbox\"} 1 once the share is back")
	}
	if n := logged(d, "folder is down"); n != 1 {
		t.Errorf("%d \"folder is down\" lines, want 1", n)
	}
}

// TestBackfillFolderDown: a backfill over a folder that is missing and one
// that is there: the missing one is an error naming it (exit 1), the other
// is uploaded.
func TestBackfillFolderDown(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "cvs")
	want := cvFiles(t, good, 4)
	missing := filepath.Join(dir, "share")
	cfg := writeConfig(t, dir, sb.url, "k", good, "")
	os.WriteFile(cfg, []byte(readFile(t, cfg)+fmt.Sprintf(`
[[folder]]
name = "share"
path = %q
source_id = "0123456789abcdef0123456789abcdef01234567"
`, missing)), 0o644)
	r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
	if line := "cvfeed: folder share: " + missing + " is missing (not scanned; its items stay pending)"; r.code != 1 || !strings.Contains(r.stderr, line) {
		t.Errorf("backfill with a missing folder: exit %d, want 1 and %q in\n%s", r.code, line, r.stderr)
	}
	exactlyOnce(t, sb.profiles(t), want)
}

// TestBackfillShareNotMounted: a backfill records the share's device (its
// uploads refused, so the CVs stay pending); the share is unmounted; a
// backfill with a working key does not take the empty mount point for the
// folder: exit 1 naming the device change, nothing uploaded or failed.
// Mounted again, the next backfill uploads every CV once.
func TestBackfillShareNotMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	backing, share := filepath.Join(dir, "backing"), filepath.Join(dir, "share")
	os.Mkdir(backing, 0o755)
	os.Mkdir(share, 0o755)
	if err := unix.Mount("tmpfs", backing, "tmpfs", 0, "size=4m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(backing, unix.MNT_DETACH) })
	want := cvFiles(t, backing, 5)
	mountShare(t, backing, share)
	sb := startSandbox(t, "-api-key", "right")
	cfg := writeConfig(t, dir, sb.url, "wrong", share, "")
	if r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("backfill with a refused key: exit %d\n%s", r.code, r.stderr)
	}
	if st := statusOf(t, cfg).Sources["inbox"]; st.Pending != 5 {
		t.Fatalf("status after the refused backfill: %+v, want 5 pending", st)
	}

	shareDev := devString(t, share)
	if err := unix.Unmount(share, 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), `api_key = "wrong"`, `api_key = "right"`, 1)), 0o644)
	r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
	why := fmt.Sprintf("%s is on another device than before (device %s, was %s): is the share mounted?", share, devString(t, share), shareDev)
	if line := "cvfeed: folder inbox: " + why + " (not scanned; its items stay pending)"; r.code != 1 || !strings.Contains(r.stderr, line) {
		t.Errorf("backfill over the empty mount point: exit %d, want 1 and %q in\n%s", r.code, line, r.stderr)
	}
	if r := runCvfeed(t, nil, "check", "-config", cfg); r.code != 1 || !strings.Contains(r.stdout, "FAIL  folder   inbox: "+why) {
		t.Errorf("check of the empty mount point: exit %d, want 1 and the reason on the folder's line\n%s%s", r.code, r.stdout, r.stderr)
	}
	if st := statusOf(t, cfg).Sources["inbox"]; st.Pending != 5 || st.Failed != 0 {
		t.Errorf("status after the backfill over the empty mount point: %+v, want 5 pending", st)
	}
	if n := len(sb.profiles(t)); n != 0 {
		t.Errorf("%d profiles uploaded from the empty mount point", n)
	}

	mountShare(t, backing, share)
	if r := runCvfeed(t, nil, "check", "-config", cfg); r.code != 0 || !strings.Contains(r.stdout, "OK    folder   inbox: "+share+" readable") {
		t.Errorf("check once the share is back: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress"); r.code != 0 {
		t.Errorf("backfill once the share is back: exit %d\n%s", r.code, r.stderr)
	}
	exactlyOnce(t, sb.profiles(t), want)
}

// TestRunReloadDropsDownFolder: a down folder removed from the config by a
// reload no longer makes /healthz 503, and its gauge goes.
func TestRunReloadDropsDownFolder(t *testing.T) {
	sb := startSandbox(t)
	dir := t.TempDir()
	cvDir := filepath.Join(dir, "cvs")
	os.Mkdir(cvDir, 0o755)
	cfg := runConfig(t, dir, sb.url, "k", cvDir, "")
	good := readFile(t, cfg)
	os.WriteFile(cfg, []byte(good+fmt.Sprintf(`
[[folder]]
name = "share"
path = %q
source_id = "0123456789abcdef0123456789abcdef01234567"
`, filepath.Join(dir, "share"))), 0o644)
	base := withHTTP(t, cfg)
	d := startRun(t, cfg)
	h := waitHealthz(t, d, base, "unhealthy", 10*time.Second, func(h healthz) bool { return h.code == 503 })
	if len(h.Reasons) != 1 || !strings.HasPrefix(h.Reasons[0], "folder share: ") {
		t.Errorf("/healthz = %+v, want the share down", h)
	}
	if m := metricsText(t, base); !strings.Contains(m, `cvfeed_folder_up{folder="inbox"} 1`) || !strings.Contains(m, `cvfeed_folder_up{folder="share"} 0`) {
		t.Errorf("/metrics lacks inbox up and share down")
	}
	listen := strings.TrimPrefix(base, "http://")
	os.WriteFile(cfg, []byte(good+fmt.Sprintf("\n[http]\nlisten = %q\n", listen)), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitHealthz(t, d, base, "ok after the reload", 10*time.Second, func(h healthz) bool { return h.code == 200 })
	if m := metricsText(t, base); strings.Contains(m, `cvfeed_folder_up{folder="share"}`) || !strings.Contains(m, `cvfeed_folder_up{folder="inbox"} 1`) {
		t.Errorf("/metrics after the reload still has the share, or lacks inbox:\n%s", m)
	}
}
