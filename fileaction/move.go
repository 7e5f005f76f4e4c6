package fileaction

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// moveNoClobber moves src to dst, or to "dst (1)", "dst (2)"… when dst
// exists: a file already in done_dir is never overwritten. It returns the
// path the file ended at. Across file systems the file is copied (and
// synced) to a temporary name beside the target, published without
// overwriting, and only then removed from src.
func moveNoClobber(src, dst string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return "", err
	}
	for n := 0; n < 1000; n++ {
		target := withSuffix(dst, n)
		err := renameNoReplace(src, target)
		switch {
		case err == nil:
			return target, nil
		case errors.Is(err, os.ErrExist):
			continue
		case errors.Is(err, syscall.EXDEV):
			return copyAcross(src, dst)
		default:
			return "", err
		}
	}
	return "", fmt.Errorf("move %s: 1000 files named like %s already exist", src, dst)
}

// withSuffix returns "dir/name (n).ext" for n > 0.
func withSuffix(p string, n int) string {
	if n == 0 {
		return p
	}
	ext := filepath.Ext(p)
	// "cv.tar.gz" keeps ".gz" only; good enough for CVs.
	return fmt.Sprintf("%s (%d)%s", strings.TrimSuffix(p, ext), n, ext)
}

// renameNoReplace renames without ever replacing an existing target:
// renameat2(RENAME_NOREPLACE) where the file system has it, else a hard
// link (which fails on an existing target) and an unlink.
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return os.ErrExist
	case errors.Is(err, unix.EXDEV):
		return syscall.EXDEV
	case !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.ENOTSUP):
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	// No RENAME_NOREPLACE here (some network file systems).
	if err := os.Link(src, dst); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, syscall.EEXIST) {
			return os.ErrExist
		}
		if errors.As(err, &le) && errors.Is(le.Err, syscall.EXDEV) {
			return syscall.EXDEV
		}
		return err
	}
	return os.Remove(src)
}

// copyAcross moves src to another file system: copy to a temporary file
// in the target directory, fsync, publish it under a free name, remove src.
func copyAcross(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".cvfeed-move-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // a no-op once published
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if fi, err := in.Stat(); err == nil {
		_ = os.Chtimes(tmp.Name(), fi.ModTime(), fi.ModTime())
	}
	for n := 0; n < 1000; n++ {
		target := withSuffix(dst, n)
		err := renameNoReplace(tmp.Name(), target)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := os.Remove(src); err != nil {
			return target, fmt.Errorf("copied to %s but could not remove the original: %w", target, err)
		}
		return target, nil
	}
	return "", fmt.Errorf("move %s: 1000 files named like %s already exist", src, dst)
}
