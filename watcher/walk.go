package watcher

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/cvfeed/cvfeed/config"
)

// walkFolder sends every candidate regular file of a folder. It follows
// symbolic links (to files and to directories) and never enters a
// directory twice, so a symlink loop ends the descent with a log line.
func (s *Scanner) walkFolder(ctx context.Context, f *config.Folder, out chan<- file) error {
	info, err := os.Stat(f.Path)
	if err != nil {
		s.stats.Errors.Add(1)
		s.log.Error("cannot read folder; skipped", "source", f.Name, "path", f.Path, "err", err)
		return nil
	}
	if !info.IsDir() {
		s.stats.Errors.Add(1)
		s.log.Error("folder path is not a directory; skipped", "source", f.Name, "path", f.Path)
		return nil
	}
	w := &walk{s: s, f: f, filter: NewFilter(*f), out: out, visited: map[[2]uint64]bool{}}
	w.skipDirs = map[string]bool{}
	for _, d := range []string{f.DoneDir, f.FailedDir} {
		if d != "" {
			w.skipDirs[filepath.Clean(d)] = true
		}
	}
	w.enter(info)
	return w.dir(ctx, f.Path, "")
}

type walk struct {
	s        *Scanner
	f        *config.Folder
	filter   *Filter
	out      chan<- file
	visited  map[[2]uint64]bool
	skipDirs map[string]bool
}

// enter marks a directory visited; false if it was already.
func (w *walk) enter(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	k := [2]uint64{uint64(st.Dev), st.Ino}
	if w.visited[k] {
		return false
	}
	w.visited[k] = true
	return true
}

// dir reads a directory in chunks (a folder of 100,000 files is not held
// in memory at once) and descends.
func (w *walk) dir(ctx context.Context, abs, rel string) error {
	d, err := os.Open(abs)
	if err != nil {
		w.s.stats.Errors.Add(1)
		w.s.log.Error("cannot read directory; skipped", "source", w.f.Name, "path", abs, "err", err)
		return nil
	}
	defer d.Close()
	var subdirs []string
	for {
		ents, rerr := d.ReadDir(512)
		for _, e := range ents {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			name := e.Name()
			cabs := filepath.Join(abs, name)
			crel := path.Join(rel, name)
			typ := e.Type()
			var info fs.FileInfo
			if typ&fs.ModeSymlink != 0 {
				var err error
				info, err = os.Stat(cabs)
				if err != nil {
					w.s.stats.Errors.Add(1)
					w.s.log.Warn("broken symbolic link; skipped", "source", w.f.Name, "path", cabs, "err", err)
					continue
				}
				typ = info.Mode().Type()
			}
			switch {
			case typ.IsDir():
				if w.f.Recursive && w.filter.Dir(crel) && !w.skipDirs[cabs] {
					subdirs = append(subdirs, name)
				}
			case typ.IsRegular():
				w.s.stats.Seen.Add(1)
				if info == nil {
					var err error
					info, err = e.Info()
					if err != nil {
						if !errors.Is(err, fs.ErrNotExist) {
							w.s.stats.Errors.Add(1)
							w.s.log.Error("cannot stat file; skipped", "source", w.f.Name, "file", cabs, "err", err)
						}
						continue
					}
				}
				fl := file{folder: w.f, abs: cabs, rel: crel, info: info}
				if why := w.filter.File(crel, info.Size()); why != SkipNone {
					w.s.skip(fl, why)
					continue
				}
				select {
				case w.out <- fl:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			w.s.stats.Errors.Add(1)
			w.s.log.Error("cannot list directory; partly skipped", "source", w.f.Name, "path", abs, "err", rerr)
			break
		}
	}
	d.Close()
	for _, name := range subdirs {
		cabs := filepath.Join(abs, name)
		info, err := os.Stat(cabs)
		if err != nil {
			w.s.stats.Errors.Add(1)
			w.s.log.Error("cannot read directory; skipped", "source", w.f.Name, "path", cabs, "err", err)
			continue
		}
		if !w.enter(info) {
			w.s.log.Warn("directory already walked (symbolic link loop or second link); skipped", "source", w.f.Name, "path", cabs)
			continue
		}
		if err := w.dir(ctx, cabs, path.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}
