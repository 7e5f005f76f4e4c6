package fileaction

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cvfeed/cvfeed/internal/confine"
)

// tmpPrefix starts the name of a copy across file systems until it is
// published; what a crash leaves under it is removed at the next start.
const tmpPrefix = ".cvfeed-move-"

// source is the name an action moves or deletes: the entry found (a file,
// or a symbolic link itself), in a directory reached inside its tree.
type source struct {
	dir  *confine.Dir
	name string
	fi   fs.FileInfo // lstat of the name
	link bool        // the name is a symbolic link
}

// moveNoClobber moves src to rel in the tree dst (done_dir or failed_dir),
// or to "rel (1)", "rel (2)"… when that name exists: a file already there
// is never overwritten. The directories on the way are made, following no
// link. It returns the path the file ended at. On one file system this is
// renameat2(RENAME_NOREPLACE) between the two directories; across file
// systems see copyAcross.
func moveNoClobber(src source, dst confine.Tree, rel string, sum [32]byte) (string, error) {
	if err := os.MkdirAll(dst.Path(), 0o750); err != nil {
		return "", err
	}
	root, err := dst.OpenRoot()
	if err != nil {
		return "", err
	}
	defer root.Close()
	dirRel, base := path.Split(rel)
	dir, err := root.MkdirAll(strings.TrimSuffix(dirRel, "/"), 0o750)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	for n := 0; n < 1000; n++ {
		name := withSuffix(base, n)
		err := confine.Rename(src.dir, src.name, dir, name)
		switch {
		case err == nil:
			return filepath.Join(dir.Path(), name), nil
		case confine.IsExist(err):
			continue
		case confine.IsCrossDevice(err):
			return copyAcross(src, dir, base, sum)
		default:
			return "", err
		}
	}
	return "", fmt.Errorf("move %s: 1000 files named like %s already exist", src.name, filepath.Join(dir.Path(), base))
}

// withSuffix returns "name (n).ext" for n > 0.
func withSuffix(p string, n int) string {
	if n == 0 {
		return p
	}
	ext := filepath.Ext(p)
	// "cv.tar.gz" keeps ".gz" only; good enough for CVs.
	return fmt.Sprintf("%s (%d)%s", strings.TrimSuffix(p, ext), n, ext)
}

// copyAcross moves src into dir on another file system: copy to a
// temporary name in dir (tmpPrefix…), keep the mode, the times and the
// group (where allowed), fsync, publish under a free name, fsync dir, and
// only then remove src. A copy published by an earlier attempt that
// stopped before removing src (same size, mtime and content) is taken as
// done. A symbolic link is made again in dir, holding the same text.
func copyAcross(src source, dir *confine.Dir, base string, sum [32]byte) (string, error) {
	if src.link {
		return relinkAcross(src, dir, base)
	}
	in, err := src.dir.OpenFile(src.name, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || !sameInode(fi, src.fi) {
		return "", fmt.Errorf("%w: it was replaced", errChanged)
	}
	if done := earlierCopy(dir, base, fi, sum); done != "" {
		return done, removeSource(src, fi, done)
	}
	tmpName, out, err := createTemp(dir)
	if err != nil {
		return "", err
	}
	published := false
	defer func() {
		if !published {
			dir.Remove(tmpName)
		}
	}()
	if err := copyFile(out, in, fi); err != nil {
		out.Close()
		return "", fmt.Errorf("copy %s to %s: %w", in.Name(), out.Name(), err)
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	target := ""
	for n := 0; n < 1000 && target == ""; n++ {
		name := withSuffix(base, n)
		err := confine.Rename(dir, tmpName, dir, name)
		switch {
		case err == nil:
			target = name
		case !confine.IsExist(err):
			return "", err
		}
	}
	if target == "" {
		return "", fmt.Errorf("move %s: 1000 files named like %s already exist", in.Name(), filepath.Join(dir.Path(), base))
	}
	published = true
	dest := filepath.Join(dir.Path(), target)
	if err := dir.Sync(); err != nil {
		return dest, fmt.Errorf("copied to %s but %w; the original stays", dest, err)
	}
	return dest, removeSource(src, fi, dest)
}

// copyFile copies in to out and gives out in's group (where allowed),
// mode and times, then syncs it.
func copyFile(out, in *os.File, fi fs.FileInfo) error {
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	atime := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		atime = time.Unix(st.Atim.Unix())
		// The group where allowed: an unprivileged owner may only give
		// a group it is in. A chown clears set-id bits: before chmod.
		_ = out.Chown(-1, int(st.Gid))
	}
	if err := out.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	// Last: writing sets the mtime.
	if err := confine.SetTimes(out, atime, fi.ModTime()); err != nil {
		return err
	}
	return out.Sync()
}

// createTemp makes a new temporary file in dir.
func createTemp(dir *confine.Dir) (string, *os.File, error) {
	for range 100 {
		var b [8]byte
		rand.Read(b[:])
		name := tmpPrefix + hex.EncodeToString(b[:])
		f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if confine.IsExist(err) {
			continue
		}
		return name, f, err
	}
	return "", nil, fmt.Errorf("create a temporary file in %s: too many tries", dir.Path())
}

// earlierCopy returns the path of a copy of the file (fi, sum) already
// published in dir as base or one of its no-clobber variants, or "".
func earlierCopy(dir *confine.Dir, base string, fi fs.FileInfo, sum [32]byte) string {
	for n := 0; n < 1000; n++ {
		name := withSuffix(base, n)
		got, err := dir.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if err == nil && got.Mode().IsRegular() && got.Size() == fi.Size() && got.ModTime().Equal(fi.ModTime()) && hashIs(dir, name, sum) {
			return filepath.Join(dir.Path(), name)
		}
	}
	return ""
}

// hashIs reports whether name in dir holds the content whose SHA-256 is
// sum.
func hashIs(dir *confine.Dir, name string, sum [32]byte) bool {
	f, err := dir.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	var got [32]byte
	h.Sum(got[:0])
	return got == sum
}

// removeSource removes the original once it is published at dest, unless
// its name now holds another file than the one copied (fi).
func removeSource(src source, fi fs.FileInfo, dest string) error {
	now, err := src.dir.Lstat(src.name)
	if err == nil && !sameInode(now, fi) {
		return fmt.Errorf("copied to %s but the original was replaced meanwhile; it stays", dest)
	}
	if err == nil {
		err = src.dir.Remove(src.name)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("copied to %s but could not remove the original: %w", dest, err)
	}
	return nil
}

// relinkAcross moves a symbolic link to another file system: the same
// link made in dir under a free name, then the original removed.
func relinkAcross(src source, dir *confine.Dir, base string) (string, error) {
	text, err := src.dir.Readlink(src.name)
	if err != nil {
		return "", err
	}
	for n := 0; n < 1000; n++ {
		name := withSuffix(base, n)
		err := dir.Symlink(text, name)
		if confine.IsExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		dest := filepath.Join(dir.Path(), name)
		if err := dir.Sync(); err != nil {
			return dest, fmt.Errorf("linked at %s but %w; the original stays", dest, err)
		}
		return dest, removeSource(src, src.fi, dest)
	}
	return "", fmt.Errorf("move %s: 1000 files named like %s already exist", src.name, filepath.Join(dir.Path(), base))
}

// isTemp reports whether name is one of cvfeed's temporary copies.
func isTemp(name string) bool {
	rest, ok := strings.CutPrefix(name, tmpPrefix)
	return ok && rest != ""
}

// devIno returns the device and inode of a stat from os or from package
// confine.
func devIno(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return uint64(st.Dev), st.Ino, true
	case *unix.Stat_t:
		return uint64(st.Dev), st.Ino, true
	}
	return 0, 0, false
}

// sameInode reports whether two stats are of one file.
func sameInode(a, b fs.FileInfo) bool {
	da, ia, oka := devIno(a)
	db, ib, okb := devIno(b)
	return oka && okb && da == db && ia == ib
}
