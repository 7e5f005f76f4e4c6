package watcher

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/confine"
	"github.com/cvfeed/cvfeed/state"
)

// forgetter is a Store that can forget the identities of files gone from
// their folder (retention, issue 12). *state.Store implements it.
type forgetter interface {
	ForgetMissing(sourceID string, present func(path string) bool, after time.Duration) (state.ForgetStats, error)
}

// listedForgetter is a forgetter that skips the directories a walk listed
// whole. *state.Store implements it.
type listedForgetter interface {
	ForgetMissingListed(sourceID string, listed func(dir string) bool, present func(path string) bool, after time.Duration) (state.ForgetStats, error)
}

// dirLister is a Store that compares a directory's listing with the files
// it remembers there. *state.Store implements it.
type dirLister interface {
	ListedDir(sourceID, dir string, names []string) (bool, error)
}

// maxListedNames bounds the names of one directory a walk keeps for
// listedDirs: a directory of more files is swept file by file.
const maxListedNames = 1 << 16

// listedDirs notes, during a walk, the directories whose every remembered
// file the walk listed (Store.ListedDir, read in key order beside the
// walk): the sweep that follows the walk then knows those files are there
// without asking the file system again for each (a million stats, seconds,
// after every rescan of a million files). Directories are keyed by their
// absolute path with its final '/'.
type listedDirs struct {
	store    dirLister
	sourceID string
	log      *slog.Logger
	mu       sync.Mutex
	all      map[string]bool
}

// newListedDirs returns what a walk of f notes for its sweep, or nil when
// there will be no sweep or the store cannot compare.
func newListedDirs(store Store, f *config.Folder, log *slog.Logger) *listedDirs {
	dl, ok := store.(dirLister)
	if !ok || f.ForgetMissing <= 0 {
		return nil
	}
	return &listedDirs{store: dl, sourceID: f.SourceID, log: log, all: map[string]bool{}}
}

// note is told of a directory listed to its end, with the names of its
// files. Several walk goroutines may call it at once.
func (l *listedDirs) note(abs string, names []string) {
	if l == nil {
		return
	}
	if !strings.HasSuffix(abs, "/") {
		abs += "/"
	}
	all, err := l.store.ListedDir(l.sourceID, abs, names)
	if err != nil {
		l.log.Debug("cannot compare a directory with the files state remembers there; its files are swept one by one", "dir", abs, "err", err)
		return
	}
	if all {
		l.mu.Lock()
		l.all[abs] = true
		l.mu.Unlock()
	}
}

// listedDir tells whether every remembered file of dir (with its final
// '/') was listed by the walk.
func (l *listedDirs) listedDir(dir string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all[dir]
}

// listedAll tells whether every remembered file of path's directory was
// listed by the walk.
func (l *listedDirs) listedAll(path string) bool {
	if l == nil {
		return false
	}
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all[path[:i+1]]
}

// forgetMissing sweeps the identities of a folder's files after a complete
// walk of it (forget_missing): a file gone from the folder is marked, and
// forgotten once it has been gone for f.ForgetMissing. Nothing is swept
// when forget_missing is 0, when the store cannot forget, or when the
// folder is down now (a share that went away during the walk): an absent
// tree proves nothing about its files.
//
// Whether a file is there is asked through the folder's confined tree;
// only "does not exist" counts as gone. A path outside the folder (an
// identity of another folder with the same source_id, or of a file moved
// to a done_dir elsewhere) is not this folder's to judge and counts as
// there; so does any other error (permissions, I/O). A file in a
// directory the walk listed whole (listed, which may be nil) is there.
func forgetMissing(ctx context.Context, store Store, f *config.Folder, log *slog.Logger, listed *listedDirs) {
	if f.ForgetMissing <= 0 {
		return
	}
	fg, ok := store.(forgetter)
	if !ok {
		return
	}
	ds, _ := store.(DeviceStore)
	if err := CheckFolder(ds, *f); err != nil {
		log.Info("folder is down after its walk; its missing files are not swept", "source", f.Name, "path", f.Path, "reason", err)
		return
	}
	tree := folderTree(f)
	root, err := tree.OpenRoot()
	if err != nil {
		log.Warn("cannot open folder to sweep its missing files; not swept", "source", f.Name, "path", f.Path, "err", err)
		return
	}
	defer root.Close()
	present := func(path string) bool {
		if !tree.Contains(path) || listed.listedAll(path) {
			return true
		}
		rel, err := tree.Rel(path)
		if err != nil || rel == "" {
			return true
		}
		_, err = root.Stat(rel)
		var le *confine.LinkError
		return err == nil || !errors.Is(err, fs.ErrNotExist) || errors.As(err, &le)
	}
	start := time.Now()
	var st state.ForgetStats
	if lf, ok := fg.(listedForgetter); ok && listed != nil {
		st, err = lf.ForgetMissingListed(f.SourceID, listed.listedDir, present, f.ForgetMissing)
	} else {
		st, err = fg.ForgetMissing(f.SourceID, present, f.ForgetMissing)
	}
	if err != nil {
		log.Error("cannot sweep the missing files of folder", "source", f.Name, "path", f.Path, "err", err)
		return
	}
	level := slog.LevelDebug
	if st.Forgotten > 0 || st.Missing > 0 {
		level = slog.LevelInfo
	}
	log.Log(ctx, level, "swept the identities of files gone from folder", "source", f.Name, "path", f.Path,
		"checked", st.Checked, "newly_missing", st.Missing, "forgotten", st.Forgotten,
		"forget_missing", f.ForgetMissing, "took", time.Since(start).Round(time.Millisecond))
}
