package watcher

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
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
// there; so does any other error (permissions, I/O).
func forgetMissing(ctx context.Context, store Store, f *config.Folder, log *slog.Logger) {
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
		if !tree.Contains(path) {
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
	st, err := fg.ForgetMissing(f.SourceID, present, f.ForgetMissing)
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
