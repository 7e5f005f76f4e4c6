package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cvfeed.toml")
	data := "state_dir = \"/var/lib/cvfeed/\"\n" + strings.Replace(minimal, "%s", `url = "sandbox"`, 1)
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatalf("Load(%q): %v", file, err)
	}
	if cfg.File != file || cfg.StateDir != "/var/lib/cvfeed" || cfg.Folders[0].Path != filepath.Join(dir, "cvs") {
		t.Errorf("Load(%q) = File %q, StateDir %q, Folders[0].Path %q", file, cfg.File, cfg.StateDir, cfg.Folders[0].Path)
	}

	missing := filepath.Join(dir, "missing.toml")
	_, err = Load(missing)
	if want := "read config: open " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("Load(%q) = %v, want %s", missing, err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%q) = %v, want an fs.ErrNotExist", missing, err)
	}
}

func TestParseWithoutPath(t *testing.T) {
	data := strings.Replace(minimal, "%s", `url = "sandbox"`, 1)
	cfg, err := Parse([]byte(data), "", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "" || cfg.StateDir != filepath.Join(wd, "var") {
		t.Errorf("Parse(_, \"\") = File %q, StateDir %q; want \"\", %q", cfg.File, cfg.StateDir, filepath.Join(wd, "var"))
	}
	_, err = Parse([]byte("x = 1\n"), "", nil)
	want := lines("line 1: x: unknown key", "api.url: required", "api.api_key: required (or api.api_key_file)", "folder: at least one [[folder]] or [[mailbox]] is required")
	if err == nil || err.Error() != want {
		t.Errorf("Parse(x = 1) = %v, want %s", err, want)
	}
}

// TestErrorValues checks that the joined error holds *Error values a
// caller can inspect.
func TestErrorValues(t *testing.T) {
	data := strings.Replace(minimal, "%s", "url = \"sandbox\"\nworkers = 0", 1) + "settle = \"x\"\n"
	_, err := Parse([]byte(data), "c.toml", nil)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Parse error %T is not joined", err)
	}
	var got []string
	for _, e := range joined.Unwrap() {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %v is a %T, want *Error", e, e)
		}
		got = append(got, ce.Key)
	}
	if want := []string{"api.workers", "folder[0].settle"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys of the errors = %q, want %q", got, want)
	}
}
