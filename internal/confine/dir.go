package confine

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dir is an open directory, reached through a Root. Its methods take one
// name (no slash), which they never follow when it is a symbolic link.
type Dir struct {
	fd   int
	path string
	list *os.File // for ReadDir, on a duplicate of fd
}

// Fd is the directory's descriptor, valid until Close.
func (d *Dir) Fd() int { return d.fd }

// Path is the directory's path as it was reached (for messages).
func (d *Dir) Path() string { return d.path }

// Close closes the directory.
func (d *Dir) Close() error {
	if d.list != nil {
		d.list.Close()
	}
	return unix.Close(d.fd)
}

// ReadDir reads the next n entries of the directory (all with n <= 0), as
// (*os.File).ReadDir does.
func (d *Dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.list == nil {
		fd, err := unix.Dup(d.fd)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: err}
		}
		unix.CloseOnExec(fd)
		d.list = os.NewFile(uintptr(fd), d.path)
	}
	return d.list.ReadDir(n)
}

func (d *Dir) join(name string) string { return d.path + "/" + name }

func (d *Dir) check(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return &fs.PathError{Op: op, Path: d.join(name), Err: unix.EINVAL}
	}
	return nil
}

// Stat stats the directory itself.
func (d *Dir) Stat() (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := fstat(d.fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.path, Err: err}
	}
	return newFileInfo(baseName("", d.path), &st), nil
}

// Lstat stats name itself (a link is not followed).
func (d *Dir) Lstat(name string) (fs.FileInfo, error) {
	if err := d.check("lstat", name); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return newFileInfo(name, &st), nil
}

// OpenFile opens name with flag (O_NOFOLLOW and O_CLOEXEC added) and, when
// it is created, perm (before the umask).
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := d.check("open", name); err != nil {
		return nil, err
	}
	fd, err := openat(d.fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// OpenDir opens the sub-directory name (not through a link).
func (d *Dir) OpenDir(name string) (*Dir, error) {
	if err := d.check("open", name); err != nil {
		return nil, err
	}
	fd, err := openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return &Dir{fd: fd, path: d.join(name)}, nil
}

// Remove removes name, a file or a symbolic link (never its target).
func (d *Dir) Remove(name string) error {
	if err := d.check("remove", name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

// Readlink returns what the symbolic link name holds.
func (d *Dir) Readlink(name string) (string, error) {
	if err := d.check("readlink", name); err != nil {
		return "", err
	}
	s, err := readlinkat(d.fd, name)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: d.join(name), Err: err}
	}
	return s, nil
}

// Symlink makes name a symbolic link holding target; an existing name is
// fs.ErrExist.
func (d *Dir) Symlink(target, name string) error {
	if err := d.check("symlink", name); err != nil {
		return err
	}
	if err := unix.Symlinkat(target, d.fd, name); err != nil {
		return &fs.PathError{Op: "symlink", Path: d.join(name), Err: err}
	}
	return nil
}

// Sync makes the directory's entries durable.
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// Rename renames from/fromName to to/toName, never replacing an existing
// name (fs.ErrExist then): renameat2(RENAME_NOREPLACE), or where the file
// system lacks it a hard link and an unlink. Across file systems it fails
// with EXDEV (errors.Is(err, unix.EXDEV)).
func Rename(from *Dir, fromName string, to *Dir, toName string) error {
	if err := from.check("rename", fromName); err != nil {
		return err
	}
	if err := to.check("rename", toName); err != nil {
		return err
	}
	lerr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: from.join(fromName), New: to.join(toName), Err: err}
	}
	err := unix.Renameat2(from.fd, fromName, to.fd, toName, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case err == unix.EINVAL || err == unix.ENOSYS || err == unix.ENOTSUP:
		// No RENAME_NOREPLACE here (some network file systems): a link
		// fails on an existing name.
		if err := unix.Linkat(from.fd, fromName, to.fd, toName, 0); err != nil {
			return lerr(err)
		}
		if err := unix.Unlinkat(from.fd, fromName, 0); err != nil {
			return lerr(err)
		}
		return nil
	}
	return lerr(err)
}

// IsExist reports whether err says a name exists already.
func IsExist(err error) bool { return errors.Is(err, fs.ErrExist) }

// IsCrossDevice reports whether err says a rename crossed file systems.
func IsCrossDevice(err error) bool { return errors.Is(err, unix.EXDEV) }

// SetTimes sets the access and modification times of an open file, to the
// nanosecond (futimens).
func SetTimes(f *os.File, atime, mtime time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		// utimensat(fd, NULL, times, 0) is futimens(2).
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return &fs.PathError{Op: "futimens", Path: f.Name(), Err: errno}
	}
	return nil
}

// fileInfo is an fs.FileInfo from a stat; Sys returns its *unix.Stat_t.
type fileInfo struct {
	name string
	st   unix.Stat_t
}

func newFileInfo(name string, st *unix.Stat_t) *fileInfo { return &fileInfo{name: name, st: *st} }

func (fi *fileInfo) Name() string { return fi.name }
func (fi *fileInfo) Size() int64  { return fi.st.Size }
func (fi *fileInfo) ModTime() time.Time {
	return time.Unix(int64(fi.st.Mtim.Sec), int64(fi.st.Mtim.Nsec))
}
func (fi *fileInfo) IsDir() bool { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any    { return &fi.st }

func (fi *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	}
	if fi.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
