package confine

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tree makes:
//
//	out/secret.txt, out/dir/x.txt         (outside the tree)
//	share/a.txt, share/sub/b.txt
//	share/rel-in -> sub/b.txt             share/abs-in -> DIR/share/sub/b.txt
//	share/via-parent -> ../share/sub/b.txt
//	share/rel-out -> ../out/secret.txt    share/abs-out -> DIR/out/secret.txt
//	share/dir-in -> sub                   share/dir-out -> ../out
//	share/abs-dir-in -> DIR/share/sub     share/chain -> rel-in
//	share/loop1 -> loop2 -> loop1         share/broken -> nothing
//	share/sub/up -> ..                    share/sub/deep-out -> ../../out/dir
//
// and returns DIR and the share's path.
func tree(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	write(t, filepath.Join(dir, "out", "secret.txt"), "secret")
	write(t, filepath.Join(dir, "out", "dir", "x.txt"), "outside x")
	write(t, filepath.Join(share, "a.txt"), "a")
	write(t, filepath.Join(share, "sub", "b.txt"), "b")
	links := map[string]string{
		"rel-in":        "sub/b.txt",
		"abs-in":        filepath.Join(share, "sub", "b.txt"),
		"via-parent":    "../share/sub/b.txt",
		"rel-out":       "../out/secret.txt",
		"abs-out":       filepath.Join(dir, "out", "secret.txt"),
		"dir-in":        "sub",
		"dir-out":       "../out",
		"abs-dir-in":    filepath.Join(share, "sub"),
		"chain":         "rel-in",
		"loop1":         "loop2",
		"loop2":         "loop1",
		"broken":        "nothing",
		"sub/up":        "..",
		"sub/deep-out":  "../../out/dir",
		"sub/chain-out": "../rel-out",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(share, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, share
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func openRoot(t *testing.T, path string, p Policy) *Root {
	t.Helper()
	r, err := New(path, p).OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestResolve(t *testing.T) {
	dir, share := tree(t)
	r := openRoot(t, share, Inside)
	tests := []struct {
		rel    string
		inside bool
		to     string // Rel when inside, Abs when outside
		link   string
	}{
		{"a.txt", true, "a.txt", ""},
		{"sub/b.txt", true, "sub/b.txt", ""},
		{"rel-in", true, "sub/b.txt", "rel-in"},
		{"abs-in", true, "sub/b.txt", "abs-in"},
		{"via-parent", true, "sub/b.txt", "via-parent"},
		{"chain", true, "sub/b.txt", "rel-in"},
		{"dir-in/b.txt", true, "sub/b.txt", "dir-in"},
		{"abs-dir-in/b.txt", true, "sub/b.txt", "abs-dir-in"},
		{"sub/up/a.txt", true, "a.txt", "sub/up"},
		{"rel-out", false, filepath.Join(dir, "out", "secret.txt"), "rel-out"},
		{"abs-out", false, filepath.Join(dir, "out", "secret.txt"), "abs-out"},
		{"dir-out/secret.txt", false, filepath.Join(dir, "out", "secret.txt"), "dir-out"},
		{"sub/deep-out/x.txt", false, filepath.Join(dir, "out", "dir", "x.txt"), "sub/deep-out"},
		{"sub/chain-out", false, filepath.Join(dir, "out", "secret.txt"), "rel-out"},
	}
	for _, tt := range tests {
		got, err := r.Resolve(tt.rel)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.rel, err)
			continue
		}
		to := got.Rel
		if !got.Inside {
			to = got.Abs
		}
		if got.Inside != tt.inside || to != tt.to || got.Link != tt.link {
			t.Errorf("Resolve(%q) = inside %v, %q, link %q; want inside %v, %q, link %q", tt.rel, got.Inside, to, got.Link, tt.inside, tt.to, tt.link)
		}
	}
	if _, err := r.Resolve("loop1"); !errors.Is(err, fs.ErrNotExist) && !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("Resolve(loop1) = %v, want too many levels of symbolic links", err)
	}
	if _, err := r.Resolve("broken"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Resolve(broken) = %v, want not exist", err)
	}
}

// TestOSRootRules pins what os.Root does in this Go version, which is why
// this package resolves links itself: an absolute link, or one climbing
// above the root, is refused even when it leads inside.
func TestOSRootRules(t *testing.T) {
	_, share := tree(t)
	root, err := os.OpenRoot(share)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, name := range []string{"abs-in", "via-parent", "abs-dir-in/b.txt"} {
		f, err := root.Open(name)
		if err == nil {
			f.Close()
			t.Logf("os.Root now opens %s, a link that leads inside: Root could replace the resolution here", name)
			continue
		}
		r := openRoot(t, share, Inside)
		f, err = r.Open(name)
		if err != nil {
			t.Errorf("Root.Open(%q) = %v; want the file: the link leads inside", name, err)
			continue
		}
		f.Close()
	}
}

func TestOpenByPolicy(t *testing.T) {
	_, share := tree(t)
	type want struct {
		content string
		err     error // ErrOutside, ErrNotFollowed, fs.ErrNotExist or nil
	}
	in, out, never := func(c string) want { return want{content: c} }, want{err: ErrOutside}, want{err: ErrNotFollowed}
	tests := []struct {
		rel              string
		inside, nev, all want
	}{
		{"a.txt", in("a"), in("a"), in("a")},
		{"sub/b.txt", in("b"), in("b"), in("b")},
		{"rel-in", in("b"), never, in("b")},
		{"abs-in", in("b"), never, in("b")},
		{"via-parent", in("b"), never, in("b")},
		{"dir-in/b.txt", in("b"), never, in("b")},
		{"rel-out", out, never, in("secret")},
		{"abs-out", out, never, in("secret")},
		{"dir-out/secret.txt", out, never, in("secret")},
		{"sub/deep-out/x.txt", out, never, in("outside x")},
		// Nested paths go through one openat2 first: a link in the
		// middle or at the end still takes the policy's way.
		{"sub/up/a.txt", in("a"), never, in("a")},
		{"sub/up/sub/b.txt", in("b"), never, in("b")},
		{"sub/chain-out", out, never, in("secret")},
		{"sub/missing.txt", want{err: fs.ErrNotExist}, want{err: fs.ErrNotExist}, want{err: fs.ErrNotExist}},
		{"broken", want{err: fs.ErrNotExist}, never, want{err: fs.ErrNotExist}},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			p Policy
			w want
		}{{Inside, tt.inside}, {Never, tt.nev}, {All, tt.all}} {
			r := openRoot(t, share, c.p)
			f, err := r.Open(tt.rel)
			got := ""
			if err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				got = string(b)
			}
			switch {
			case c.w.err == nil && (err != nil || got != c.w.content):
				t.Errorf("%v: Open(%q) = %q, %v; want %q", c.p, tt.rel, got, err, c.w.content)
			case c.w.err != nil && !errors.Is(err, c.w.err):
				t.Errorf("%v: Open(%q) = %q, %v; want %v", c.p, tt.rel, got, err, c.w.err)
			}
			fi, err := r.Stat(tt.rel)
			switch {
			case c.w.err == nil && (err != nil || fi.Size() != int64(len(c.w.content)) || !fi.Mode().IsRegular()):
				t.Errorf("%v: Stat(%q) = %v, %v; want a file of %d bytes", c.p, tt.rel, fi, err, len(c.w.content))
			case c.w.err != nil && !errors.Is(err, c.w.err):
				t.Errorf("%v: Stat(%q) = %v; want %v", c.p, tt.rel, err, c.w.err)
			}
		}
	}
}

func TestLinkErrorNamesLinkAndTarget(t *testing.T) {
	dir, share := tree(t)
	_, err := New(share, Inside).Open(filepath.Join(share, "dir-out", "secret.txt"))
	var le *LinkError
	if !errors.As(err, &le) {
		t.Fatalf("Open(dir-out/secret.txt) = %v, want a *LinkError", err)
	}
	if le.Link != filepath.Join(share, "dir-out") || le.Target != "../out" || le.Resolved != filepath.Join(dir, "out", "secret.txt") {
		t.Errorf("LinkError = %+v; want link %s, target ../out", le, filepath.Join(share, "dir-out"))
	}
	if msg := err.Error(); !strings.Contains(msg, "dir-out") || !strings.Contains(msg, "../out") {
		t.Errorf("error %q names neither the link nor its target", msg)
	}
}

func TestParentStaysInside(t *testing.T) {
	dir, share := tree(t)
	for _, p := range []Policy{Inside, Never, All} {
		r := openRoot(t, share, p)
		for _, rel := range []string{"dir-out/secret.txt", "sub/deep-out/x.txt"} {
			d, name, err := r.Parent(rel)
			if err == nil {
				d.Close()
				t.Errorf("%v: Parent(%q) = %s, %s; want refused", p, rel, d.Path(), name)
			} else if p != Never && !errors.Is(err, ErrOutside) {
				t.Errorf("%v: Parent(%q) = %v, want ErrOutside", p, rel, err)
			}
		}
	}
	// The name found is changed, never a link's target.
	r := openRoot(t, share, All)
	d, name, err := r.Parent("abs-out")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(share, "abs-out")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link abs-out still there after Remove: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out", "secret.txt")); err != nil || string(b) != "secret" {
		t.Errorf("the link's target: %q, %v; want it untouched", b, err)
	}
	// Through a link inside, the directory is the real one.
	d2, name, err := r.Parent("dir-in/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if fi, err := d2.Lstat(name); err != nil || fi.Size() != 1 {
		t.Errorf("Lstat(b.txt) in Parent(dir-in/b.txt) = %v, %v", fi, err)
	}
}

// TestDirSwappedForLink is the race of a walk: a directory listed, then
// replaced by a symbolic link to outside before its file is opened or
// removed. Neither follows the link, and nothing outside changes.
func TestDirSwappedForLink(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	write(t, filepath.Join(share, "d", "cv.pdf"), "inside cv")
	write(t, filepath.Join(dir, "out", "cv.pdf"), "outside cv")
	for _, p := range []Policy{Inside, Never, All} {
		r := openRoot(t, share, p)
		// The walk found d as a directory; now it is swapped.
		if err := os.Rename(filepath.Join(share, "d"), filepath.Join(share, "d.old")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../out", filepath.Join(share, "d")); err != nil {
			t.Fatal(err)
		}
		if p != All { // All reads through links by design
			if f, err := r.Open("d/cv.pdf"); err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				t.Errorf("%v: Open(d/cv.pdf) after the swap read %q", p, b)
			}
			if _, err := r.Stat("d/cv.pdf"); err == nil {
				t.Errorf("%v: Stat(d/cv.pdf) after the swap succeeded", p)
			}
		}
		if d, name, err := r.Parent("d/cv.pdf"); err == nil {
			d.Remove(name)
			d.Close()
			t.Errorf("%v: Parent(d/cv.pdf) after the swap succeeded", p)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "out", "cv.pdf")); err != nil || string(b) != "outside cv" {
			t.Fatalf("%v: outside file now %q, %v", p, b, err)
		}
		os.Remove(filepath.Join(share, "d"))
		os.Rename(filepath.Join(share, "d.old"), filepath.Join(share, "d"))
	}
	// A directory opened before the swap keeps naming the real one.
	r := openRoot(t, share, Inside)
	d, name, err := r.Parent("d/cv.pdf")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	os.Rename(filepath.Join(share, "d"), filepath.Join(share, "d.old"))
	os.Symlink("../out", filepath.Join(share, "d"))
	if err := d.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(share, "d.old", "cv.pdf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file removed was not the one found: d.old/cv.pdf %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out", "cv.pdf")); err != nil || string(b) != "outside cv" {
		t.Errorf("outside file now %q, %v", b, err)
	}
}

func TestMkdirAllFollowsNoLink(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, "done")
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(done, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../out", filepath.Join(done, "lnk")); err != nil {
		t.Fatal(err)
	}
	r := openRoot(t, done, Inside)
	d, err := r.MkdirAll("a/b/c", 0o750)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if fi, err := os.Stat(filepath.Join(done, "a", "b", "c")); err != nil || !fi.IsDir() {
		t.Errorf("a/b/c: %v, %v", fi, err)
	}
	if d, err := r.MkdirAll("lnk/x", 0o750); err == nil {
		d.Close()
		t.Error("MkdirAll(lnk/x) went through a link")
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("out/x was made: %v", err)
	}
}

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), "a")
	write(t, filepath.Join(dir, "b"), "b")
	r := openRoot(t, dir, Inside)
	d, err := r.OpenDir("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := Rename(d, "a", d, "b"); !IsExist(err) {
		t.Errorf("Rename(a, b) over an existing b = %v, want exists", err)
	}
	if err := Rename(d, "a", d, "c"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b")); string(b) != "b" {
		t.Errorf("b = %q, overwritten", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c")); string(b) != "a" {
		t.Errorf("c = %q, want a", b)
	}
}

func TestSetTimes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	write(t, p, "x")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mt := time.Date(2001, 2, 3, 4, 5, 6, 789012345, time.UTC)
	if err := SetTimes(f, mt, mt); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(mt) {
		t.Errorf("mtime = %v, want %v", fi.ModTime(), mt)
	}
}

func TestRelRefusesEscapes(t *testing.T) {
	tr := New("/srv/share", Inside)
	for _, abs := range []string{"/srv/share/../etc/passwd", "/srv/shared/x", "/etc/passwd", "/srv/share//x", "/srv/share/./x"} {
		if rel, err := tr.Rel(abs); err == nil {
			t.Errorf("Rel(%q) = %q, want an error", abs, rel)
		}
	}
	for abs, want := range map[string]string{"/srv/share": "", "/srv/share/a/b.pdf": "a/b.pdf", "/srv/share/..x": "..x"} {
		if rel, err := tr.Rel(abs); err != nil || rel != want {
			t.Errorf("Rel(%q) = %q, %v; want %q", abs, rel, err, want)
		}
	}
}
