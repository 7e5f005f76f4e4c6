package pipeline

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/confine"
)

func TestItemOpener(t *testing.T) {
	dir := t.TempDir()
	share, failed, out := filepath.Join(dir, "share"), filepath.Join(dir, "failed"), filepath.Join(dir, "out")
	for p, content := range map[string]string{
		filepath.Join(share, "cv.pdf"):                "inside",
		filepath.Join(failed, "bad.pdf"):              "failed",
		filepath.Join(out, "secret.pdf"):              "outside",
		filepath.Join(dir, "var", "spool", "ab.part"): "spooled",
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../out/secret.pdf", filepath.Join(share, "link.pdf"))
	cfg := &config.Config{StateDir: filepath.Join(dir, "var"), Folders: []config.Folder{{Name: "inbox", Path: share, FailedDir: failed, FollowSymlinks: config.FollowInside}}}
	o := newItemOpener(cfg)
	for p, want := range map[string]string{
		filepath.Join(share, "cv.pdf"):                "inside",
		filepath.Join(failed, "bad.pdf"):              "failed",
		filepath.Join(dir, "var", "spool", "ab.part"): "spooled",
	} {
		f, err := o.open(p)
		if err != nil {
			t.Errorf("open(%s): %v", p, err)
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != want {
			t.Errorf("open(%s) read %q, want %q", p, b, want)
		}
	}
	if _, err := o.open(filepath.Join(share, "link.pdf")); !errors.Is(err, confine.ErrOutside) {
		t.Errorf("open(link to outside) = %v, want ErrOutside", err)
	}
	if _, err := o.open(filepath.Join(out, "secret.pdf")); !errors.Is(err, errNotConfigured) {
		t.Errorf("open(a path of no folder) = %v, want refused", err)
	}
	// A reload that adds a folder makes its files readable.
	o.set(append(cfg.Folders, config.Folder{Name: "out", Path: out}))
	if f, err := o.open(filepath.Join(out, "secret.pdf")); err != nil {
		t.Errorf("after set, open(out/secret.pdf): %v", err)
	} else {
		f.Close()
	}
}
