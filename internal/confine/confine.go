// Package confine does the file operations of a folder source inside the
// folder's directory tree, so that nothing a writer of the share can plant
// there (a symbolic link, a directory swapped for a link between two calls)
// makes cvfeed read, move or delete anything outside it.
//
// What it guarantees, on Linux:
//
//   - Every path is opened relative to a descriptor of the tree's top
//     directory, one component at a time with O_NOFOLLOW (what openat2's
//     RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS does in one call): the kernel
//     never follows a symbolic link by itself, and ".." or an absolute
//     path is refused. A directory replaced by a symbolic link after it
//     was listed makes the next operation through it fail; the link is
//     not followed.
//   - Symbolic links are resolved here, within the tree, by the tree's
//     Policy: Inside follows a link whose target (relative or absolute)
//     lies inside the tree and refuses one that leads outside (a
//     *LinkError wrapping ErrOutside, naming the link and its target);
//     Never follows none (ErrNotFollowed); All follows every link for
//     reading, outside too. Under Inside and Never nothing outside the
//     tree is opened or even stat'ed: a target is judged from the link's
//     text, cleaned lexically (as path.Clean does) after each link.
//   - Changes act on the name found: Parent reaches the directory that
//     holds a name inside the tree whatever the policy (under All too: a
//     directory outside is refused with ErrOutside), and Dir's Remove and
//     Rename unlink or rename that last component, never what it points
//     to.
//
// os.Root (Go 1.24+) confines as well, but its rules are not the policy's
// (measured with Go 1.26): it refuses every absolute link and every link
// that climbs above the root, even when the target lies inside the folder,
// and each Root.Open registers the file with the network poller, which
// costs a walk over 100,000 files. Hence the descriptors of its own here.
package confine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cvfeed/cvfeed/internal/fileio"
)

// Policy says which symbolic links of a tree are followed.
type Policy uint8

// The policies, after follow_symlinks.
const (
	// Inside follows a link whose target lies inside the tree; one that
	// leads outside is refused.
	Inside Policy = iota
	// Never follows no symbolic link.
	Never
	// All follows every link for reading, wherever it leads; changes
	// still never reach outside the tree.
	All
)

// ParsePolicy maps a follow_symlinks value to its Policy; "" is Inside.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "", "inside":
		return Inside, nil
	case "never":
		return Never, nil
	case "all":
		return All, nil
	}
	return Inside, fmt.Errorf("follow_symlinks %q: want inside, never or all", s)
}

func (p Policy) String() string {
	switch p {
	case Never:
		return "never"
	case All:
		return "all"
	}
	return "inside"
}

// ErrOutside is wrapped by a *LinkError for a symbolic link that leads
// outside the tree, and by the error of a change refused because the
// name lies outside.
var ErrOutside = errors.New("leads outside the folder")

// ErrNotFollowed is wrapped by a *LinkError for a symbolic link under the
// Never policy.
var ErrNotFollowed = errors.New("symbolic links are not followed here")

// LinkError is a symbolic link that the tree's policy does not follow.
type LinkError struct {
	Op string
	// Link is the link's path (the tree's path joined with its name).
	Link string
	// Target is what the link holds (its readlink text).
	Target string
	// Resolved is where it leads, as an absolute path, when known.
	Resolved string
	// Err is ErrOutside or ErrNotFollowed.
	Err error
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s %s: symbolic link to %s %v", e.Op, e.Link, e.Target, e.Err)
}

func (e *LinkError) Unwrap() error { return e.Err }

// Tree is a directory tree whose operations stay inside it. It holds no
// descriptor: each call opens the top directory anew (a share remounted
// meanwhile is seen as it is now), or OpenRoot keeps one for many calls.
type Tree struct {
	path   string
	policy Policy
}

// New returns the tree at path (cleaned) with the policy p. It does no
// I/O.
func New(path string, p Policy) Tree {
	return Tree{path: filepath.Clean(path), policy: p}
}

// Path is the tree's top directory.
func (t Tree) Path() string { return t.path }

// Policy is the tree's policy.
func (t Tree) Policy() Policy { return t.policy }

// Contains reports whether abs names the tree's top or a path below it.
func (t Tree) Contains(abs string) bool {
	_, err := t.Rel(abs)
	return err == nil
}

// Rel returns abs relative to the tree, slash separated; "" for the top.
// abs must be clean and below the tree's path.
func (t Tree) Rel(abs string) (string, error) {
	if abs == t.path {
		return "", nil
	}
	prefix := t.path + "/"
	if t.path == "/" {
		prefix = "/"
	}
	rel, ok := strings.CutPrefix(abs, prefix)
	if !ok || !validRel(rel) {
		return "", &fs.PathError{Op: "open", Path: abs, Err: fmt.Errorf("not a clean path below %s", t.path)}
	}
	return rel, nil
}

// Join returns the absolute path of rel.
func (t Tree) Join(rel string) string {
	if rel == "" {
		return t.path
	}
	if t.path == "/" {
		return "/" + rel
	}
	return t.path + "/" + rel
}

// Open opens abs for reading (see Root.Open).
func (t Tree) Open(abs string) (*os.File, error) {
	rel, err := t.Rel(abs)
	if err != nil {
		return nil, err
	}
	r, err := t.OpenRoot()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Open(rel)
}

// Stat stats abs, following the links the policy follows (see Root.Stat).
func (t Tree) Stat(abs string) (fs.FileInfo, error) {
	rel, err := t.Rel(abs)
	if err != nil {
		return nil, err
	}
	r, err := t.OpenRoot()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Stat(rel)
}

// Root is a tree with its top directory open. It is safe for concurrent
// use; Close it when done.
type Root struct {
	t  Tree
	fd int

	realOnce sync.Once
	real     string
}

// OpenRoot opens the tree's top directory (following links in its own
// path: that path is the admin's, not the share's).
func (t Tree) OpenRoot() (*Root, error) {
	fd, err := openat(unix.AT_FDCWD, t.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: t.path, Err: err}
	}
	return &Root{t: t, fd: fd}, nil
}

// Tree returns the root's tree.
func (r *Root) Tree() Tree { return r.t }

// Close closes the top directory.
func (r *Root) Close() error { return unix.Close(r.fd) }

// realPath is the top directory's real location, for judging absolute
// link targets: the kernel's name for the open descriptor.
func (r *Root) realPath() string {
	r.realOnce.Do(func() {
		if p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.fd)); err == nil && filepath.IsAbs(p) {
			r.real = filepath.Clean(p)
			return
		}
		if p, err := filepath.EvalSymlinks(r.t.path); err == nil {
			r.real = p
			return
		}
		r.real = r.t.path
	})
	return r.real
}

// Open opens rel for reading. A symbolic link on the way is followed as
// the policy says: a *LinkError when it is not. Under All, a link that
// leads outside is opened by its path, as the kernel follows it.
func (r *Root) Open(rel string) (*os.File, error) {
	fd, err := r.openNoLinks(rel, unix.O_RDONLY)
	if err != nil {
		t, ferr := r.follow("open", rel, err, r.t.policy)
		switch {
		case ferr != nil:
			return nil, ferr
		case !t.Inside:
			return fileio.Open(r.t.Join(rel))
		}
		if fd, err = r.openNoLinks(t.Rel, unix.O_RDONLY); err != nil {
			return nil, r.pathError("open", rel, err)
		}
	}
	return os.NewFile(uintptr(fd), r.t.Join(rel)), nil
}

// Stat stats rel, following the links the policy follows (the last
// component too).
func (r *Root) Stat(rel string) (fs.FileInfo, error) {
	st, err := r.statNoLinks(rel)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		err = &symlinkError{rel: rel}
	}
	if err != nil {
		t, ferr := r.follow("stat", rel, err, r.t.policy)
		switch {
		case ferr != nil:
			return nil, ferr
		case !t.Inside:
			return os.Stat(r.t.Join(rel))
		}
		if st, err = r.statNoLinks(t.Rel); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = unix.ELOOP // replaced by a link meanwhile
		}
		if err != nil {
			return nil, r.pathError("stat", rel, err)
		}
	}
	return newFileInfo(baseName(rel, r.t.path), &st), nil
}

// OpenDir opens the directory rel for listing, following links as the
// policy says (see Open).
func (r *Root) OpenDir(rel string) (*Dir, error) { return r.openDir(rel, r.t.policy) }

func (r *Root) openDir(rel string, policy Policy) (*Dir, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY
	fd, err := r.openNoLinks(rel, flags)
	if err != nil {
		t, ferr := r.follow("open", rel, err, policy)
		switch {
		case ferr != nil:
			return nil, ferr
		case !t.Inside:
			fd, err = openat(unix.AT_FDCWD, r.t.Join(rel), flags|unix.O_CLOEXEC, 0)
		default:
			fd, err = r.openNoLinks(t.Rel, flags)
		}
		if err != nil {
			return nil, r.pathError("open", rel, err)
		}
	}
	return &Dir{fd: fd, path: r.t.Join(rel)}, nil
}

// Parent opens the directory that holds rel, for a change to its last
// component, which it returns. The directory is reached inside the tree
// whatever the policy: where Inside would refuse a link on the way, Parent
// refuses it too (under All as well), wrapping ErrOutside.
func (r *Root) Parent(rel string) (*Dir, string, error) {
	if !validRel(rel) {
		return nil, "", r.pathError("open", rel, unix.EINVAL)
	}
	dir, name := splitLast(rel)
	policy := r.t.policy
	if policy == All {
		policy = Inside
	}
	d, err := r.openDir(dir, policy)
	if err != nil {
		return nil, "", err
	}
	return d, name, nil
}

// MkdirAll makes the directory rel and the missing ones above it, with
// perm (before the umask), and opens it. It follows no symbolic link.
func (r *Root) MkdirAll(rel string, perm os.FileMode) (*Dir, error) {
	if rel != "" && !validRel(rel) {
		return nil, r.pathError("mkdir", rel, unix.EINVAL)
	}
	fd, err := unix.Dup(r.fd)
	if err != nil {
		return nil, r.pathError("mkdir", rel, err)
	}
	unix.CloseOnExec(fd)
	if rel == "" {
		return &Dir{fd: fd, path: r.t.path}, nil
	}
	for c := range strings.SplitSeq(rel, "/") {
		if err := unix.Mkdirat(fd, c, uint32(perm.Perm())); err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return nil, r.pathError("mkdir", rel, err)
		}
		next, err := openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, r.pathError("mkdir", rel, err)
		}
		fd = next
	}
	return &Dir{fd: fd, path: r.t.Join(rel)}, nil
}

// follow decides what to do with an operation on rel that met a symbolic
// link (err, from a walk without links): the place to retry (Inside), the
// kernel's way (not Inside: only under All), or an error.
func (r *Root) follow(op, rel string, err error, policy Policy) (Target, error) {
	var se *symlinkError
	if !errors.As(err, &se) {
		return Target{}, r.pathError(op, rel, err)
	}
	if policy == Never {
		text, _ := r.readlink(se.rel)
		return Target{}, &LinkError{Op: op, Link: r.t.Join(se.rel), Target: text, Err: ErrNotFollowed}
	}
	t, err := r.Resolve(rel)
	if err != nil {
		return Target{}, r.pathError(op, rel, err)
	}
	if !t.Inside && policy != All {
		return Target{}, &LinkError{Op: op, Link: r.t.Join(t.Link), Target: t.Text, Resolved: t.Abs, Err: ErrOutside}
	}
	return t, nil
}

func (r *Root) pathError(op, rel string, err error) error {
	var le *LinkError
	if errors.As(err, &le) {
		return err
	}
	var se *symlinkError
	if errors.As(err, &se) {
		err = unix.ELOOP
	}
	return &fs.PathError{Op: op, Path: r.t.Join(rel), Err: err}
}

// validRel reports whether rel is a clean relative path with no ".."
// component (the top itself is "", not ".").
func validRel(rel string) bool {
	return rel != "" && filepath.IsLocal(rel) && filepath.Clean(rel) == rel && rel != "."
}

// splitLast splits rel into its directory ("" at the top) and last
// component.
func splitLast(rel string) (string, string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

func baseName(rel, top string) string {
	if rel == "" {
		return filepath.Base(top)
	}
	_, name := splitLast(rel)
	return name
}
