package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/confine"
	"github.com/cvfeed/cvfeed/internal/fileio"
)

// itemOpener opens the file of an item for its upload. A folder's file
// (under its path, done_dir or failed_dir) is opened inside that directory
// only, with the folder's follow_symlinks (package confine): a directory
// swapped for a link since the file was hashed cannot make the upload read
// a byte from outside. A spooled mail attachment (state_dir/spool) is
// opened as is. Any other path is refused.
type itemOpener struct {
	spool string
	trees atomic.Pointer[[]confine.Tree]
}

var errNotConfigured = errors.New("not under a configured folder, done_dir or failed_dir")

func newItemOpener(cfg *config.Config) *itemOpener {
	o := &itemOpener{spool: filepath.Clean(spoolDir(cfg.StateDir))}
	o.set(cfg.Folders)
	return o
}

// set takes the folders of a reloaded config.
func (o *itemOpener) set(folders []config.Folder) {
	var trees []confine.Tree
	for _, f := range folders {
		p, _ := confine.ParsePolicy(f.FollowSymlinks)
		for _, dir := range []string{f.Path, f.DoneDir, f.FailedDir} {
			if dir != "" {
				trees = append(trees, confine.New(dir, p))
			}
		}
	}
	o.trees.Store(&trees)
}

func (o *itemOpener) open(path string) (*os.File, error) {
	path = filepath.Clean(path)
	if strings.HasPrefix(path, o.spool+"/") {
		return fileio.Open(path)
	}
	trees := *o.trees.Load()
	best := -1
	for i, t := range trees {
		if t.Contains(path) && path != t.Path() && (best < 0 || len(t.Path()) > len(trees[best].Path())) {
			best = i
		}
	}
	if best < 0 {
		return nil, &os.PathError{Op: "open", Path: path, Err: errNotConfigured}
	}
	return trees[best].Open(path)
}
