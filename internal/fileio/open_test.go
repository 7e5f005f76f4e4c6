package fileio

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cv.pdf")
	if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "content" {
		t.Errorf("read %q, %v", b, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 7 {
		t.Errorf("Stat = %v, %v", fi, err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
	_, err = Open(filepath.Join(t.TempDir(), "missing"))
	var pe *os.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" {
		t.Errorf("Open(missing) = %v, want a *PathError wrapping ErrNotExist", err)
	}
}
