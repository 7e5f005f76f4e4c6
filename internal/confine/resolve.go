package confine

import (
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// symlinkError: a walk without links met one at rel (relative to the
// tree).
type symlinkError struct{ rel string }

func (e *symlinkError) Error() string { return "symbolic link at " + e.rel }

// maxLinks bounds the links one resolution follows, as the kernel's
// ELOOP does (40).
const maxLinks = 40

// Target is where a path of the tree leads once its symbolic links are
// followed.
type Target struct {
	// Link is the last symbolic link followed (the one that led outside,
	// when one did), relative to the tree; "" when there was none. Text is
	// what it holds.
	Link, Text string
	// Inside reports whether the path leads inside the tree; Rel is then
	// where, relative to it, with no link left on the way (when it was
	// resolved).
	Inside bool
	Rel    string
	// Abs is where it leads as an absolute path. Outside the tree it is
	// only the lexical result: nothing there was looked at.
	Abs string
}

// Resolve follows the symbolic links of rel, each relative to the
// directory that holds it (an absolute one from the file system's root),
// as long as they stay inside the tree; the first step outside ends the
// resolution with Inside false. Every link met is read inside the tree,
// and after each one the path is cleaned lexically. A missing component
// ends it with the error of its lstat.
func (r *Root) Resolve(rel string) (Target, error) {
	var t Target
	if rel != "" && !validRel(rel) {
		return t, unix.EINVAL
	}
	real := r.realPath()
	var done []string
	todo := split(rel)
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		p := joinRel(done, c)
		st, err := r.statNoLinks(p)
		if err != nil {
			t.Inside, t.Rel = true, joinRel(done, c, todo...)
			t.Abs = r.t.Join(t.Rel)
			return t, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxLinks {
			return t, unix.ELOOP
		}
		text, err := r.readlink(p)
		if err != nil {
			return t, err
		}
		t.Link, t.Text = p, text
		var next string
		if path.IsAbs(text) {
			next = path.Join(append([]string{text}, todo...)...)
		} else {
			next = path.Join(append([]string{real, joinRel(done, ""), text}, todo...)...)
		}
		inside, ok := r.within(next)
		if !ok {
			t.Abs = next
			return t, nil
		}
		done, todo = nil, split(inside)
	}
	t.Inside, t.Rel = true, strings.Join(done, "/")
	t.Abs = r.t.Join(t.Rel)
	return t, nil
}

// within returns abs relative to the tree, if it lies inside: below its
// real location or below its configured path.
func (r *Root) within(abs string) (string, bool) {
	for _, top := range []string{r.realPath(), r.t.path} {
		if abs == top {
			return "", true
		}
		prefix := top + "/"
		if top == "/" {
			prefix = "/"
		}
		if rest, ok := strings.CutPrefix(abs, prefix); ok {
			return rest, true
		}
	}
	return "", false
}

// split splits a clean relative path into its components.
func split(rel string) []string {
	if rel == "" {
		return nil
	}
	return strings.Split(rel, "/")
}

func joinRel(dirs []string, last string, more ...string) string {
	parts := append(append(append([]string(nil), dirs...), last), more...)
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}

// beneath opens, from the top, the directories of rel but its last
// component, never following a link: a link on the way is a
// *symlinkError. It returns the directory (close it when own) and the last
// component ("" for rel "").
func (r *Root) beneath(rel string) (fd int, own bool, last string, err error) {
	if rel == "" {
		return r.fd, false, "", nil
	}
	if !validRel(rel) {
		return -1, false, "", unix.EINVAL
	}
	fd = r.fd
	rest := rel
	for {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return fd, own, rest, nil
		}
		c := rest[:i]
		next, err := openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			err = linkOr(fd, c, rel[:len(rel)-len(rest)+i], err)
		}
		if own {
			unix.Close(fd)
		}
		if err != nil {
			return -1, false, "", err
		}
		fd, own, rest = next, true, rest[i+1:]
	}
}

// linkOr turns an open error on name (in dirfd, at rel in the tree) into a
// *symlinkError when name is a symbolic link.
func linkOr(dirfd int, name, rel string, err error) error {
	if err != unix.ELOOP && err != unix.ENOTDIR {
		return err
	}
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return &symlinkError{rel: rel}
	}
	return err
}

// openNoLinks opens rel with flags (O_NOFOLLOW and O_CLOEXEC added),
// following no link.
func (r *Root) openNoLinks(rel string, flags int) (int, error) {
	if strings.IndexByte(rel, '/') > 0 && validRel(rel) {
		// One openat2 resolves the whole path beneath the root and
		// refuses any symbolic link on the way, the last component
		// included: what the walk below does one component at a time,
		// in one system call instead of two per directory. Whatever it
		// refuses (a link met, a missing file, a kernel before 5.6 or a
		// seccomp filter without openat2) is left to the walk, which
		// tells a link from other errors.
		how := unix.OpenHow{
			Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		for {
			fd, err := unix.Openat2(r.fd, rel, &how)
			if err == nil {
				return fd, nil
			}
			if err != unix.EINTR {
				break
			}
		}
	}
	dir, own, last, err := r.beneath(rel)
	if err != nil {
		return -1, err
	}
	if own {
		defer unix.Close(dir)
	}
	if last == "" {
		last = "."
	}
	fd, err := openat(dir, last, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, linkOr(dir, last, rel, err)
	}
	return fd, nil
}

// statNoLinks lstats rel, following no link on the way.
func (r *Root) statNoLinks(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, own, last, err := r.beneath(rel)
	if err != nil {
		return st, err
	}
	if own {
		defer unix.Close(dir)
	}
	if last == "" {
		return st, fstat(dir, &st)
	}
	return st, fstatat(dir, last, &st, unix.AT_SYMLINK_NOFOLLOW)
}

// readlink reads the link at rel, following no link on the way.
func (r *Root) readlink(rel string) (string, error) {
	dir, own, last, err := r.beneath(rel)
	if err != nil {
		return "", err
	}
	if own {
		defer unix.Close(dir)
	}
	return readlinkat(dir, last)
}

func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func fstat(fd int, st *unix.Stat_t) error {
	for {
		if err := unix.Fstat(fd, st); err != unix.EINTR {
			return err
		}
	}
}

func fstatat(dirfd int, name string, st *unix.Stat_t, flags int) error {
	for {
		if err := unix.Fstatat(dirfd, name, st, flags); err != unix.EINTR {
			return err
		}
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			n /= 2
			continue
		}
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
		if n >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}
