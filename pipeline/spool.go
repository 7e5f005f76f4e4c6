package pipeline

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

// spoolMinAge protects spool files that were just written (or found
// again) and whose claim is not recorded yet.
const spoolMinAge = time.Hour

// cleanSpool deletes the spool files no pending or failed item needs any
// more: an uploaded CV's copy is not kept, a failed one's is, for retry.
func cleanSpool(store *state.Store, dir string, now time.Time, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		log.Warn("cannot list the spool", "dir", dir, "err", err)
		return
	}
	needed := map[string]bool{}
	if err := store.Items(func(it state.Item) error {
		needed[it.Path] = true
		return nil
	}, state.Pending, state.Failed); err != nil {
		log.Warn("cannot clean the spool", "err", err)
		return
	}
	removed := 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || needed[p] || now.Sub(info.ModTime()) < spoolMinAge {
			continue
		}
		// A mailbox may have just found this content again (Spool
		// refreshes the mtime then): look once more right before.
		if fi, err := os.Stat(p); err != nil || now.Sub(fi.ModTime()) < spoolMinAge {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot remove a spool file", "file", p, "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		log.Debug("spool cleaned", "removed", removed)
	}
}

// spoolDir is where mailbox sources spool CV parts.
func spoolDir(stateDir string) string { return filepath.Join(stateDir, "spool") }
