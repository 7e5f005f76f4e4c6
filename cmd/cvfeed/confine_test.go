package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// confineShare is a share whose links lead inside and outside it:
//
//	share/team/a.pdf, share/b.docx                 regular files
//	share/private/t.pdf, share/private/d/u.pdf     excluded: reached only by links
//	share/inside-link.pdf -> private/t.pdf         a link to a file inside
//	share/abs-dir -> SHARE/private/d               an absolute link to a directory inside
//	share/cv.pdf -> OUT/secret.pdf                 an absolute link to a file outside
//	share/jobs -> ../outside/dir                   a relative link to a directory outside
//	outside/secret.pdf, outside/dir/x.pdf, y.pdf
type confineShare struct {
	share, outside string
	sha            map[string]string // content hash by name: a, b, t, u, secret, x, y
}

func newConfineShare(t *testing.T, dir string) *confineShare {
	t.Helper()
	c := &confineShare{share: filepath.Join(dir, "share"), outside: filepath.Join(dir, "outside"), sha: map[string]string{}}
	files := map[string][2]string{
		"a":      {filepath.Join(c.share, "team", "a.pdf"), "%PDF-1.4 a inside"},
		"b":      {filepath.Join(c.share, "b.docx"), "docx b inside"},
		"t":      {filepath.Join(c.share, "private", "t.pdf"), "%PDF-1.4 t behind an inside link"},
		"u":      {filepath.Join(c.share, "private", "d", "u.pdf"), "%PDF-1.4 u behind an absolute inside link"},
		"secret": {filepath.Join(c.outside, "secret.pdf"), "%PDF-1.4 secret OUTSIDE"},
		"x":      {filepath.Join(c.outside, "dir", "x.pdf"), "%PDF-1.4 x OUTSIDE"},
		"y":      {filepath.Join(c.outside, "dir", "y.pdf"), "%PDF-1.4 y OUTSIDE"},
	}
	for k, f := range files {
		if err := os.MkdirAll(filepath.Dir(f[0]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[0], []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(f[1]))
		c.sha[k] = hex.EncodeToString(sum[:])
	}
	for name, target := range map[string]string{
		"inside-link.pdf": "private/t.pdf",
		"abs-dir":         filepath.Join(c.share, "private", "d"),
		"cv.pdf":          filepath.Join(c.outside, "secret.pdf"),
		"jobs":            "../outside/dir",
	} {
		if err := os.Symlink(target, filepath.Join(c.share, name)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// want is what a backfill or run must upload, by name.
func (c *confineShare) want(names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = c.sha[n]
	}
	return m
}

// treeListing lists every entry under dir with its type, mode, size,
// mtime and content hash, following no link.
func treeListing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeConfineConfig(t *testing.T, dir, url, share, after, policy string) string {
	t.Helper()
	done := ""
	if after == "move" {
		done = fmt.Sprintf("done_dir = %q\n", filepath.Join(dir, "done"))
	}
	cfg := fmt.Sprintf(`state_dir = "state"
[api]
url = %q
api_key = "any-key"
workers = 4
[[folder]]
name = "inbox"
path = %q
source_id = %q
after_upload = %q
follow_symlinks = %q
exclude = ["private"]
settle = "200ms"
rescan_interval = "1h"
%s`, url, share, e2eSource, after, policy, done)
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// logLines returns the JSON log lines of stderr with the level, whose
// message holds msg, as maps.
func logLines(stderr, level, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["level"] == level && strings.Contains(fmt.Sprint(m["msg"]), msg) {
			out = append(out, m)
		}
	}
	return out
}

func gone(p string) bool {
	_, err := os.Lstat(p)
	return os.IsNotExist(err)
}

// confineCase is one combination of after_upload and follow_symlinks.
type confineCase struct {
	after, policy string
	uploads       []string // names of confineShare.sha
	// handled are the paths of the share that the after-action takes
	// away; kept are those it must leave.
	handled, kept []string
}

var confineCases = []confineCase{
	{"delete", "inside", []string{"a", "b", "t", "u"},
		[]string{"team/a.pdf", "b.docx", "inside-link.pdf", "private/d/u.pdf"}, []string{"cv.pdf", "jobs", "private/t.pdf"}},
	{"move", "inside", []string{"a", "b", "t", "u"},
		[]string{"team/a.pdf", "b.docx", "inside-link.pdf", "private/d/u.pdf"}, []string{"cv.pdf", "jobs", "private/t.pdf"}},
	{"delete", "never", []string{"a", "b"},
		[]string{"team/a.pdf", "b.docx"}, []string{"inside-link.pdf", "abs-dir", "cv.pdf", "jobs", "private/t.pdf", "private/d/u.pdf"}},
	{"move", "never", []string{"a", "b"},
		[]string{"team/a.pdf", "b.docx"}, []string{"inside-link.pdf", "abs-dir", "cv.pdf", "jobs", "private/t.pdf", "private/d/u.pdf"}},
	// all: read wherever links lead; a link is moved or deleted itself, a
	// file behind a directory link to outside is left.
	{"delete", "all", []string{"a", "b", "t", "u", "secret", "x", "y"},
		[]string{"team/a.pdf", "b.docx", "inside-link.pdf", "private/d/u.pdf", "cv.pdf"}, []string{"jobs", "private/t.pdf"}},
	{"move", "all", []string{"a", "b", "t", "u", "secret", "x", "y"},
		[]string{"team/a.pdf", "b.docx", "inside-link.pdf", "private/d/u.pdf", "cv.pdf"}, []string{"jobs", "private/t.pdf"}},
}

// check verifies what a user would after the backfill or run: the uploads,
// the outside untouched, the share and done_dir, the log.
func (cc confineCase) check(t *testing.T, dir string, c *confineShare, sb *sandboxProc, outsideBefore []string, stderr string) {
	t.Helper()
	profiles := sb.profiles(t)
	exactlyOnce(t, profiles, c.want(cc.uploads...))
	if cc.policy != "all" {
		for _, p := range profiles {
			for _, n := range []string{"secret", "x", "y"} {
				if p.SHA256 == c.sha[n] {
					t.Errorf("the sandbox holds %s, a file outside the folder (as %s)", n, p.FileName)
				}
			}
		}
	}
	if after := treeListing(t, c.outside); !slices.Equal(outsideBefore, after) {
		t.Errorf("outside the folder changed:\n%s\nwant\n%s", strings.Join(after, "\n"), strings.Join(outsideBefore, "\n"))
	}
	for _, p := range cc.handled {
		if !gone(filepath.Join(c.share, p)) {
			t.Errorf("share/%s still there after %s", p, cc.after)
		}
	}
	for _, p := range cc.kept {
		if gone(filepath.Join(c.share, p)) {
			t.Errorf("share/%s was moved or deleted", p)
		}
	}
	if cc.after == "move" {
		for _, p := range []string{"team/a.pdf", "b.docx"} {
			if gone(filepath.Join(dir, "done", p)) {
				t.Errorf("done/%s missing", p)
			}
		}
		if !gone(filepath.Join(dir, "done", "jobs")) {
			t.Error("done/jobs made: a file behind a link to outside was moved")
		}
		if cc.policy == "all" {
			if fi, err := os.Lstat(filepath.Join(dir, "done", "cv.pdf")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("done/cv.pdf = %v, %v; want the link itself", fi, err)
			}
		}
	}
	switch cc.policy {
	case "inside":
		for link, target := range map[string]string{"cv.pdf": filepath.Join(c.outside, "secret.pdf"), "jobs": "../outside/dir"} {
			lines := logLines(stderr, "WARN", "outside the folder")
			n := 0
			for _, l := range lines {
				if l["link"] == filepath.Join(c.share, link) && l["target"] == target {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d WARN lines naming %s and %s, want 1; all: %v", n, link, target, lines)
			}
		}
	case "never":
		for _, link := range []string{"inside-link.pdf", "abs-dir", "cv.pdf", "jobs"} {
			n := 0
			for _, l := range logLines(stderr, "INFO", "not followed") {
				if l["link"] == filepath.Join(c.share, link) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d INFO lines naming %s, want 1", n, link)
			}
		}
	case "all":
		if l := logLines(stderr, "WARN", "symbolic link"); len(l) > 0 {
			t.Errorf("warnings about links under follow_symlinks = all: %v", l)
		}
		if len(logLines(stderr, "INFO", "outside the folder: not moved or deleted")) == 0 {
			t.Error("no log line says that the files behind jobs were left as they are")
		}
	}
}

func TestBackfillConfinement(t *testing.T) {
	for _, cc := range confineCases {
		t.Run(cc.after+"/"+cc.policy, func(t *testing.T) {
			sb := startSandbox(t)
			dir := t.TempDir()
			c := newConfineShare(t, dir)
			before := treeListing(t, c.outside)
			cfg := writeConfineConfig(t, dir, sb.url, c.share, cc.after, cc.policy)
			r := runCvfeed(t, nil, "backfill", "-config", cfg, "-no-progress")
			if r.code != 0 {
				t.Errorf("backfill exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			cc.check(t, dir, c, sb, before, r.stderr)
			if t.Failed() {
				t.Logf("stderr:\n%s", r.stderr)
			}
		})
	}
}

func TestRunConfinement(t *testing.T) {
	for _, cc := range confineCases {
		t.Run(cc.after+"/"+cc.policy, func(t *testing.T) {
			sb := startSandbox(t)
			dir := t.TempDir()
			c := newConfineShare(t, dir)
			before := treeListing(t, c.outside)
			cfg := writeConfineConfig(t, dir, sb.url, c.share, cc.after, cc.policy)
			d := startRun(t, cfg)
			waitProfiles(t, sb, len(cc.uploads), 30*time.Second)
			deadline := time.Now().Add(30 * time.Second)
			for _, p := range cc.handled {
				for !gone(filepath.Join(c.share, p)) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if code, _ := d.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Errorf("run exit %d after SIGTERM", code)
			}
			cc.check(t, dir, c, sb, before, d.log())
		})
	}
}

// TestMoveAcrossKilled: kill -9 in the middle of moving a 400 MB CV to a
// done_dir on another file system (a tmpfs), then a second backfill: the
// file is in done_dir once, with its mode and mtime, and no temporary copy
// is left.
func TestMoveAcrossKilled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if testing.Short() {
		t.Skip("moves 400 MB")
	}
	sb := startSandbox(t)
	dir := t.TempDir()
	tmpfs := filepath.Join(dir, "tmpfs")
	os.MkdirAll(tmpfs, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", tmpfs).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", tmpfs).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	done := filepath.Join(tmpfs, "done")
	os.MkdirAll(done, 0o755)
	share := filepath.Join(dir, "share")
	os.MkdirAll(share, 0o755)
	big := filepath.Join(share, "big.pdf")
	sum := writeBig(t, big, 400<<20)
	os.Chmod(big, 0o644)
	mtime := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	os.Chtimes(big, mtime, mtime)
	cfg := fmt.Sprintf(`state_dir = "state"
[api]
url = %q
api_key = "any-key"
[[folder]]
name = "inbox"
path = %q
source_id = %q
after_upload = "move"
done_dir = %q
max_size = "1GiB"
`, sb.url, share, e2eSource, done)
	cfgPath := filepath.Join(dir, "config.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(done); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cvfeedBin(t), "backfill", "-config", cfgPath, "-no-progress")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, bufio.NewReader(stderr))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var tmp string
wait:
	for {
		select {
		case ev := <-w.Events:
			if ev.Has(fsnotify.Create) && strings.HasPrefix(filepath.Base(ev.Name), ".cvfeed-move-") {
				tmp = ev.Name
				break wait
			}
		case err := <-w.Errors:
			t.Fatal(err)
		case err := <-exited:
			t.Fatalf("backfill ended (%v) before the copy to done_dir started", err)
		case <-time.After(2 * time.Minute):
			t.Fatal("no temporary copy in done_dir within 2 minutes")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	if gone(tmp) {
		t.Fatalf("the copy was over before the kill: %s is gone; the test proves nothing", tmp)
	}
	if gone(big) {
		t.Fatal("the original is gone after a kill during its copy")
	}

	r := runCvfeed(t, nil, "backfill", "-config", cfgPath, "-no-progress")
	if r.code != 0 {
		t.Fatalf("second backfill: exit %d\n%s", r.code, r.stderr)
	}
	ents, _ := os.ReadDir(done)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"big.pdf"}) {
		t.Errorf("done_dir holds %q, want big.pdf once and no temporary copy", names)
	}
	fi, err := os.Stat(filepath.Join(done, "big.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 || !fi.ModTime().Equal(mtime) || fi.Size() != 400<<20 {
		t.Errorf("done/big.pdf: mode %v, mtime %v, size %d; want 0644, %v, %d", fi.Mode(), fi.ModTime(), fi.Size(), mtime, 400<<20)
	}
	if got := fileSHA(t, filepath.Join(done, "big.pdf")); got != sum {
		t.Error("done/big.pdf does not hold the original content")
	}
	if !gone(big) {
		t.Error("the original is still in the folder")
	}
	exactlyOnce(t, sb.profiles(t), map[string]string{"big.pdf": sum})
}

// writeBig writes size bytes that do not repeat and returns their SHA-256.
func writeBig(t *testing.T, p string, size int) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	buf := make([]byte, 1<<20)
	for i := 0; i < size; i += len(buf) {
		for j := 0; j < len(buf); j += 32 {
			s := sha256.Sum256([]byte(fmt.Sprint(i, j)))
			copy(buf[j:], s[:])
		}
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
