package watcher

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/confine"
	"github.com/cvfeed/cvfeed/state"
)

// walker walks a folder's tree. It follows the symbolic links (to files
// and to directories) that the folder's follow_symlinks allows, skips the
// others with one log line each (a WARN for a link that leads outside),
// and never enters a directory twice in one walk, so a symlink loop ends
// the descent with a log line. What it does with each directory and file
// is up to its callbacks.
//
// The walk stays inside the folder (package confine): each directory is
// opened relative to its parent's descriptor with O_NOFOLLOW, so a
// directory swapped for a symbolic link after it was listed is not
// entered, and a link is entered only through the folder's root once its
// target was judged.
//
// A walk is most of what a restart costs (every file is stat'ed, none is
// read), so it lists directories with getdents64 into one buffer, stats
// files relative to the directory's descriptor (fstatat, no path lookup),
// hands a directory's files over in one batch (one state transaction
// each), and with workers > 1 walks several directories at once.
type walker struct {
	f        *config.Folder
	tree     confine.Tree
	filter   *Filter
	skipDirs map[string]bool // done_dir and failed_dir: never walked
	log      *slog.Logger
	stats    *Stats
	workers  int
	// enterDir is called before a directory is listed (event mode adds
	// its watch there, so that a file created meanwhile is either listed
	// or seen by the watch). false skips the directory; an error ends the
	// walk. It may be called from several goroutines at once.
	enterDir func(abs string, fi fs.FileInfo) (bool, error)
	// files receives the regular files of one directory whose names pass
	// the filter, up to a few hundred at a time; several goroutines may
	// call it at once. It may keep the slice only until it returns.
	files func(batch []found) error
	// skipped receives each regular file refused by its name; may be nil.
	skipped func(abs string, why Skip)
	// reports, when set, logs an error once per path until it changes
	// (the daemon walks the same tree again and again); nil logs each.
	reports *reports
	// listed, when set, is told of each directory listed to its end, with
	// the names of its files (forget.go).
	listed *listedDirs
	// complete is set by a walkRoot that listed the folder to its end
	// (its root opened, no error, not cancelled): only then may files the
	// walk did not meet be taken as gone (forget_missing).
	complete bool

	mu      sync.Mutex // visited
	visited map[[2]uint64]bool
}

// found is a regular file found by a walk. Its stat is kept inline: a
// walk over 100,000 unchanged files then allocates no FileInfo.
type found struct {
	abs, relDir, name string
	st                statInfo    // from fstatat
	link              fs.FileInfo // instead, for a file behind a symbolic link
}

// info returns the file's stat as an fs.FileInfo (a copy on the heap).
func (f *found) info() fs.FileInfo {
	if f.link != nil {
		return f.link
	}
	c := f.st
	return &c
}

func (f *found) size() int64 {
	if f.link != nil {
		return f.link.Size()
	}
	return f.st.size
}

func (f *found) identity() state.Identity {
	if f.link != nil {
		return identityOf(f.link)
	}
	return state.Identity{Dev: f.st.sys.dev, Ino: f.st.sys.ino, Size: f.st.size, MTime: f.st.mtime}
}

// rel is the path relative to the folder, slash separated.
func (f *found) rel() string {
	if f.relDir == "" {
		return f.name
	}
	return f.relDir + "/" + f.name
}

// batchSize bounds the files handed over at once (and held in memory for
// a directory of 100,000 files).
const batchSize = 512

func newWalker(f *config.Folder, log *slog.Logger, stats *Stats) *walker {
	w := &walker{f: f, tree: folderTree(f), filter: NewFilter(*f), log: log, stats: stats, workers: 1, skipDirs: map[string]bool{}}
	for _, d := range []string{f.DoneDir, f.FailedDir} {
		if d != "" {
			w.skipDirs[filepath.Clean(d)] = true
		}
	}
	return w
}

// folderTree is the confined tree of a folder, with its follow_symlinks.
func folderTree(f *config.Folder) confine.Tree {
	p, _ := confine.ParsePolicy(f.FollowSymlinks) // validated by config
	return confine.New(f.Path, p)
}

// walkRoot walks the whole folder.
func (w *walker) walkRoot(ctx context.Context) error {
	w.complete = false
	w.reports.begin()
	defer w.reports.prune()
	root, err := w.tree.OpenRoot()
	if err != nil {
		w.report(slog.LevelError, "cannot read folder; skipped", w.f.Path, err)
		return nil
	}
	defer root.Close()
	d, err := root.OpenDir("")
	if err != nil {
		w.report(slog.LevelError, "cannot read folder; skipped", w.f.Path, err)
		return nil
	}
	info, err := d.Stat()
	if err != nil {
		d.Close()
		w.report(slog.LevelError, "cannot read folder; skipped", w.f.Path, err)
		return nil
	}
	w.reports.ok(w.f.Path)
	err = w.walkFrom(ctx, root, d, w.f.Path, "", info)
	w.complete = err == nil && ctx.Err() == nil
	return err
}

// walkDir walks the sub-tree at abs (rel to the folder, slash separated),
// reached from the folder's root as its follow_symlinks says. A directory
// gone meanwhile is no error.
func (w *walker) walkDir(ctx context.Context, abs, rel string) error {
	root, err := w.tree.OpenRoot()
	if err != nil {
		return nil // the rescan says why
	}
	defer root.Close()
	d, err := root.OpenDir(rel)
	if err != nil {
		var le *confine.LinkError
		if errors.As(err, &le) {
			w.linkSkipped(abs, le)
		}
		return nil
	}
	info, err := d.Stat()
	if err != nil {
		d.Close()
		return nil
	}
	return w.walkFrom(ctx, root, d, abs, rel, info)
}

// walkFrom walks the directory d (abs, rel) and below; d is closed.
func (w *walker) walkFrom(ctx context.Context, root *confine.Root, d *confine.Dir, abs, rel string, info fs.FileInfo) error {
	w.visited = map[[2]uint64]bool{}
	if !w.enter(info) {
		d.Close()
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	// The calling goroutine is a worker too; when no other is free a
	// sub-directory is walked inline, so the recursion never waits.
	g.SetLimit(w.workers - 1)
	err := w.dir(ctx, g, root, d, abs, rel, info)
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

// allowDir reports whether a sub-directory is walked and watched.
func (w *walker) allowDir(abs, rel string) bool {
	return w.f.Recursive && w.filter.Dir(rel) && !w.skipDirs[abs]
}

// enter marks a directory visited; false if it was already.
func (w *walker) enter(fi fs.FileInfo) bool {
	k, ok := devInoOf(fi)
	if !ok {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.visited[k] {
		return false
	}
	w.visited[k] = true
	return true
}

// subdir is a sub-directory to walk; link: the name is a symbolic link,
// entered through the root (its target was judged by the policy).
type subdir struct {
	name string
	link bool
}

// dir lists the directory d, hands its files over and descends; it closes
// d.
func (w *walker) dir(ctx context.Context, g *errgroup.Group, root *confine.Root, d *confine.Dir, abs, rel string, info fs.FileInfo) error {
	defer d.Close()
	if w.enterDir != nil {
		ok, err := w.enterDir(abs, info)
		if err != nil || !ok {
			return err
		}
	}
	subdirs, err := w.list(ctx, root, d.Fd(), abs, rel)
	if err != nil {
		return err
	}
	for _, sd := range subdirs {
		cabs, crel := join(abs, sd.name), join(rel, sd.name)
		var child *confine.Dir
		if sd.link {
			child, err = root.OpenDir(crel)
		} else {
			// No link is followed here: a directory replaced by one
			// since it was listed fails (ELOOP) and is not entered.
			child, err = d.OpenDir(sd.name)
		}
		var info fs.FileInfo
		if err == nil {
			if info, err = child.Stat(); err != nil {
				child.Close()
			}
		}
		if err != nil {
			var le *confine.LinkError
			switch {
			case errors.As(err, &le):
				w.linkSkipped(cabs, le)
			case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR):
				w.report(slog.LevelError, "cannot read directory; skipped", cabs, err)
			}
			continue
		}
		if !w.enter(info) {
			child.Close()
			w.note("directory already walked (symbolic link loop or second link); skipped", cabs)
			continue
		}
		walk := func() error { return w.dir(ctx, g, root, child, cabs, crel, info) }
		if !g.TryGo(walk) {
			if err := walk(); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// list reads the directory open as fd with getdents64, stats its regular
// files through fd and hands them over in batches. It returns the
// sub-directories to walk.
func (w *walker) list(ctx context.Context, root *confine.Root, fd int, abs, rel string) ([]subdir, error) {
	bufs := listBufs.Get().(*listBuf)
	defer listBufs.Put(bufs)
	var (
		subdirs []subdir
		batch   = bufs.batch[:0]
		buf     = bufs.dirents
		names   []string // for w.listed; nil once too many
		partial bool
	)
	if w.listed != nil {
		names = make([]string, 0, 64)
	}
	defer func() { clear(batch); bufs.batch = batch[:0] }()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// In name order, the order of their identities' keys: a
		// directory's identities are then written in order, filling
		// their pages (the idents bucket is filled to 95%: names in
		// getdents order, which is a hash order on ext4, left them 65%
		// full over a million files), and looked up in order.
		slices.SortFunc(batch, func(a, b found) int { return strings.Compare(a.name, b.name) })
		err := w.files(batch)
		clear(batch)
		batch = batch[:0]
		return err
	}
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			w.report(slog.LevelError, "cannot list directory; partly skipped", abs, err)
			partial = true
			break
		}
		if n <= 0 {
			break
		}
		for off := 0; off < n; {
			name, typ, next := parseDirent(buf[off:n])
			if next <= 0 {
				break
			}
			off += next
			if name == "" || name == "." || name == ".." {
				continue
			}
			f, sub := w.entry(root, fd, abs, rel, name, typ)
			switch {
			case sub.name != "":
				subdirs = append(subdirs, sub)
			case f.abs != "":
				batch = append(batch, f)
				if names != nil {
					if len(names) == maxListedNames {
						names = nil
					} else {
						names = append(names, name)
					}
				}
			}
		}
		if len(batch) >= batchSize || ctx.Err() != nil {
			if err := flush(); err != nil {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if names != nil && !partial {
		w.listed.note(abs, names)
	}
	w.reports.ok(abs)
	return subdirs, nil
}

// entry classifies one directory entry: a sub-directory to walk (sub
// set), a regular file whose name passes the filter (f.abs set), or
// neither.
func (w *walker) entry(root *confine.Root, dirfd int, abs, rel, name string, typ uint8) (f found, sub subdir) {
	f = found{relDir: rel, name: name}
	switch typ {
	case unix.DT_DIR:
		if w.allowDir(join(abs, name), join(rel, name)) {
			sub.name = name
		}
		return f, sub
	case unix.DT_REG:
	case unix.DT_LNK:
		cabs, crel := join(abs, name), join(rel, name)
		if !w.filter.Dir(crel) {
			// A name never taken (dot file, temporary, excluded), as a
			// file or as a directory: not worth following.
			return f, sub
		}
		info, err := root.Stat(crel)
		var le *confine.LinkError
		switch {
		case errors.As(err, &le):
			w.linkSkipped(cabs, le)
			return f, sub
		case err != nil:
			w.report(slog.LevelWarn, "broken symbolic link; skipped", cabs, err)
			return f, sub
		case info.IsDir():
			if w.allowDir(cabs, crel) {
				sub = subdir{name: name, link: true}
			}
			return f, sub
		case !info.Mode().IsRegular():
			return f, sub
		}
		f.link = info
	case unix.DT_UNKNOWN: // some file systems do not fill d_type
		if err := statAt(dirfd, name, &f.st); err != nil {
			return f, sub
		}
		switch {
		case f.st.IsDir():
			return w.entry(root, dirfd, abs, rel, name, unix.DT_DIR)
		case f.st.mode&fs.ModeSymlink != 0:
			return w.entry(root, dirfd, abs, rel, name, unix.DT_LNK)
		case !f.st.mode.IsRegular():
			return f, sub
		}
	default:
		return f, sub
	}
	if why := w.filter.nameIn(rel, name); why != SkipNone {
		if w.skipped != nil {
			w.skipped(join(abs, name), why)
		}
		return found{}, sub
	}
	if f.link == nil && f.st.name == "" {
		if err := statAt(dirfd, name, &f.st); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				w.report(slog.LevelError, "cannot stat file; skipped", join(abs, name), err)
			}
			return found{}, sub
		}
		if !f.st.mode.IsRegular() { // replaced since getdents
			return found{}, sub
		}
	}
	f.abs = join(abs, name)
	return f, sub
}

// linkSkipped logs a symbolic link that follow_symlinks does not follow:
// once per link and target for repeated walks, a WARN when it leads
// outside the folder, at Info under "never". It counts as skipped.
func (w *walker) linkSkipped(abs string, le *confine.LinkError) {
	w.stats.Skipped.Add(1)
	level, msg := slog.LevelWarn, "symbolic link leads outside the folder; skipped"
	if errors.Is(le, confine.ErrNotFollowed) {
		level, msg = slog.LevelInfo, `symbolic link not followed (follow_symlinks = "never"); skipped`
	}
	target := le.Target
	if le.Link != abs {
		// abs is reached through the link le.Link.
		target = le.Link + " -> " + le.Target
	}
	if !w.reports.fresh(abs, msg+": "+target, nil) {
		return
	}
	args := []any{"source", w.f.Name, "link", abs, "target", target}
	if le.Resolved != "" {
		args = append(args, "resolves_to", le.Resolved)
	}
	w.log.Log(context.Background(), level, msg, args...)
}

// listBuf is what list needs per directory, pooled: a walk lists
// thousands of directories.
type listBuf struct {
	dirents []byte
	batch   []found
}

var listBufs = sync.Pool{New: func() any {
	return &listBuf{dirents: make([]byte, 32<<10), batch: make([]found, 0, batchSize)}
}}

// report logs a problem with a path and counts it as an error: once per
// walk for one-pass walks, once until it changes for repeated ones.
func (w *walker) report(level slog.Level, msg, p string, err error) {
	if !w.reports.fresh(p, msg, err) {
		return
	}
	w.stats.Errors.Add(1)
	w.log.Log(context.Background(), level, msg, "source", w.f.Name, "path", p, "err", err)
}

// note logs, like report, something that is not an error.
func (w *walker) note(msg, p string) {
	if w.reports.fresh(p, msg, nil) {
		w.log.Warn(msg, "source", w.f.Name, "path", p)
	}
}

// join joins a directory path and a name; an empty dir gives the name.
func join(dir, name string) string {
	switch {
	case dir == "":
		return name
	case dir[len(dir)-1] == '/':
		return dir + name
	}
	return dir + "/" + name
}

// devInoOf returns the device and inode of a stat.
func devInoOf(fi fs.FileInfo) ([2]uint64, bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return [2]uint64{uint64(st.Dev), st.Ino}, true
	case *statSys:
		return [2]uint64{st.dev, st.ino}, true
	case *unix.Stat_t: // package confine's
		return [2]uint64{uint64(st.Dev), st.Ino}, true
	}
	return [2]uint64{}, false
}
