package watcher

import (
	"encoding/binary"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// parseDirent reads one linux_dirent64 record (d_ino u64, d_off s64,
// d_reclen u16, d_type u8, d_name NUL-terminated) at the start of b. It
// returns the name, the type and the record's length (0 when b is short).
func parseDirent(b []byte) (name string, typ uint8, reclen int) {
	const nameOff = 19
	if len(b) < nameOff {
		return "", 0, 0
	}
	reclen = int(binary.NativeEndian.Uint16(b[16:18]))
	if reclen < nameOff || reclen > len(b) {
		return "", 0, 0
	}
	typ = b[18]
	nb := b[nameOff:reclen]
	for i, c := range nb {
		if c == 0 {
			nb = nb[:i]
			break
		}
	}
	return string(nb), typ, reclen
}

// statInfo is an fs.FileInfo made from fstatat: os has no constructor
// for its own.
type statInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime int64 // unix nanoseconds
	sys   statSys
}

// statSys is what Sys returns: the identity fields.
type statSys struct{ dev, ino uint64 }

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.size }
func (s *statInfo) Mode() fs.FileMode  { return s.mode }
func (s *statInfo) ModTime() time.Time { return time.Unix(0, s.mtime) }
func (s *statInfo) IsDir() bool        { return s.mode.IsDir() }
func (s *statInfo) Sys() any           { return &s.sys }

// statAt lstats name in the directory open as dirfd, into fi.
func statAt(dirfd int, name string, fi *statInfo) error {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "fstatat", Path: name, Err: err}
		}
		break
	}
	*fi = statInfo{
		name: name, size: int64(st.Size),
		mtime: int64(st.Mtim.Sec)*1e9 + int64(st.Mtim.Nsec),
		sys:   statSys{dev: uint64(st.Dev), ino: uint64(st.Ino)},
		mode:  fs.FileMode(st.Mode & 0o777),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fi.mode |= fs.ModeDir
	case unix.S_IFLNK:
		fi.mode |= fs.ModeSymlink
	case unix.S_IFREG:
	default:
		fi.mode |= fs.ModeIrregular
	}
	return nil
}
