package fileaction

import (
	"errors"
	"io"
	"log/slog"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/confine"
)

// RemoveLeftovers removes, from every done_dir and failed_dir of folders
// and their sub-directories, the temporary copies (.cvfeed-move-*) that a
// move across file systems leaves when the process is killed before it
// publishes the copy: the original is still in the folder, and its move is
// done again. It follows no symbolic link, and returns how many it
// removed. Run calls it before its first sweep; nothing else moves files
// meanwhile, since one process holds the state.
func RemoveLeftovers(folders []config.Folder, log *slog.Logger) int {
	seen := map[string]bool{}
	n := 0
	for _, f := range folders {
		for _, dir := range []string{f.DoneDir, f.FailedDir} {
			if dir == "" || seen[dir] {
				continue
			}
			seen[dir] = true
			root, err := confine.New(dir, confine.Never).OpenRoot()
			if err != nil {
				continue // not made yet, or the move will say why
			}
			if d, err := root.OpenDir(""); err == nil {
				n += removeIn(d, log.With("source", f.Name))
			}
			root.Close()
		}
	}
	return n
}

// removeIn removes the leftovers in d and below; it closes d.
func removeIn(d *confine.Dir, log *slog.Logger) int {
	defer d.Close()
	n := 0
	var subdirs []string
	for {
		ents, err := d.ReadDir(1024)
		for _, e := range ents {
			switch {
			case e.Type().IsDir():
				subdirs = append(subdirs, e.Name())
			case e.Type().IsRegular() && isTemp(e.Name()):
				if err := d.Remove(e.Name()); err != nil {
					log.Warn("cannot remove the partial copy of an interrupted move", "file", d.Path()+"/"+e.Name(), "err", err)
					continue
				}
				log.Info("removed the partial copy of an interrupted move (the file is moved again)", "file", d.Path()+"/"+e.Name())
				n++
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Warn("cannot list directory for partial copies", "dir", d.Path(), "err", err)
			}
			break
		}
	}
	for _, name := range subdirs {
		if sub, err := d.OpenDir(name); err == nil {
			n += removeIn(sub, log)
		}
	}
	return n
}
