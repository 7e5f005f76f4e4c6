// Package fileaction carries out the after-actions of folder sources once
// the API has confirmed a CV: keep the file, move it to done_dir (keeping
// its path relative to the folder, never overwriting), or delete it; a
// permanent failure moves the file to failed_dir with a .error.txt beside
// it. Nothing happens to a file before its item is uploaded or failed in
// state, and nothing happens to a file whose content changed since it was
// claimed.
package fileaction

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// Store is what the runner needs of the state database.
type Store interface {
	ActionsFor(k state.Key) ([]state.Action, error)
	DueActions() ([]state.Action, error)
	ActionDone(a state.Action, newPath string) error
	LookupFile(sourceID, path string) (state.FileRecord, bool, error)
}

// Runner does the after-actions of folder sources.
type Runner struct {
	store Store
	log   *slog.Logger
	// sweep is the period of the pass over every due action, which
	// catches what a notification missed and retries what failed.
	sweep time.Duration
	now   func() time.Time

	mu      sync.Mutex
	folders map[string]config.Folder
	check   func(config.Folder) error
	keys    chan state.Key
}

// New returns a runner. It does no I/O.
func New(store Store, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{store: store, log: log, sweep: 5 * time.Minute, now: time.Now, keys: make(chan state.Key, 4096), folders: map[string]config.Folder{}}
}

// SetFolders sets the folder configs the actions follow (at start and on
// reload).
func (r *Runner) SetFolders(folders []config.Folder) {
	m := make(map[string]config.Folder, len(folders))
	for _, f := range folders {
		m[f.Name] = f
	}
	r.mu.Lock()
	r.folders = m
	r.mu.Unlock()
}

// SetFolderCheck sets how the runner asks whether a folder is there: an
// error means it is down (missing, unreadable, a share that did not
// mount), and its actions wait for a later sweep, for its files are not
// gone.
func (r *Runner) SetFolderCheck(check func(config.Folder) error) {
	r.mu.Lock()
	r.check = check
	r.mu.Unlock()
}

// folderDown reports whether a's folder is down, which leaves a for later.
func (r *Runner) folderDown(f config.Folder, a state.Action) bool {
	r.mu.Lock()
	check := r.check
	r.mu.Unlock()
	if check == nil {
		return false
	}
	err := check(f)
	if err != nil {
		r.log.Debug("folder down: after-action left for when it is back", "source", a.Source, "file", a.Path, "reason", err)
	}
	return err != nil
}

func (r *Runner) folder(name string) (config.Folder, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.folders[name]
	return f, ok
}

// Notify says an item was uploaded or failed. It never blocks: when the
// queue is full the next sweep does the work.
func (r *Runner) Notify(k state.Key) {
	select {
	case r.keys <- k:
	default:
	}
}

// Run does the due actions at start, then those notified, and sweeps
// every few minutes, until ctx is cancelled.
func (r *Runner) Run(ctx context.Context) error {
	r.Sweep()
	t := time.NewTicker(r.sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Outcomes recorded before the stop still get their action.
			for {
				select {
				case k := <-r.keys:
					r.item(k)
				default:
					return nil
				}
			}
		case k := <-r.keys:
			r.item(k)
		case <-t.C:
			r.Sweep()
		}
	}
}

// Sweep does every due action.
func (r *Runner) Sweep() {
	due, err := r.store.DueActions()
	if err != nil {
		r.log.Error("cannot read the after-actions", "err", err)
		return
	}
	for _, a := range due {
		r.do(a)
	}
}

func (r *Runner) item(k state.Key) {
	acts, err := r.store.ActionsFor(k)
	if err != nil {
		r.log.Error("cannot read the after-actions", "item", k.String(), "err", err)
		return
	}
	for _, a := range acts {
		if a.Due() {
			r.do(a)
		}
	}
}

// do carries out one action and records it; a failure is logged and the
// action stays for the next sweep.
func (r *Runner) do(a state.Action) {
	f, ok := r.folder(a.Source)
	if !ok || r.folderDown(f, a) {
		return // not a folder of this config (a mailbox, or removed), or not there
	}
	log := r.log.With("source", a.Source, "file", a.Path)
	newPath, err := r.act(f, a)
	switch {
	case errors.Is(err, errChanged) && r.folderDown(f, a):
		return // it went down meanwhile: the file is not gone
	case errors.Is(err, errChanged):
		log.Info("file changed or gone since it was taken: left as it is", "reason", err)
	case err != nil:
		log.Error("after-action failed; will try again", "action", f.AfterUpload, "err", err)
		return
	}
	if err := r.store.ActionDone(a, newPath); err != nil {
		log.Error("cannot record the after-action", "err", err)
	}
}

var errChanged = errors.New("not the file that was uploaded")

// act moves or deletes the file and returns where it went ("" if
// nowhere).
func (r *Runner) act(f config.Folder, a state.Action) (string, error) {
	if f.AfterUpload == config.AfterKeep && (a.Item.Status == state.Uploaded || f.FailedDir == "") {
		return "", nil
	}
	rel, err := filepath.Rel(f.Path, a.Path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		// Not under the folder (a symlinked file, or a moved folder):
		// keep its name only.
		rel = filepath.Base(a.Path)
	}
	target := "" // where a move puts the file
	switch {
	case a.Item.Status == state.Failed && f.FailedDir != "":
		target = filepath.Join(f.FailedDir, rel)
	case a.Item.Status == state.Uploaded && f.AfterUpload == config.AfterMove:
		target = filepath.Join(f.DoneDir, rel)
	}
	if rec, err := r.unchanged(f, a); err != nil {
		// A stop between the move and its record: the file is already
		// at the target (same inode: a rename on one file system; a
		// copy across file systems is not recognised and stays where
		// it went, only unrecorded). Finish the job.
		if target != "" && errors.Is(err, errGone) {
			if moved := findMoved(target, rec); moved != "" {
				if a.Item.Status == state.Failed && !exists(moved+".error.txt") {
					_ = writeErrorFile(moved, a, r.now())
				}
				return moved, nil
			}
		}
		return "", err
	}
	if a.Item.Status == state.Failed {
		if f.FailedDir == "" {
			return "", nil // no failed_dir: the file stays where HR put it
		}
		dest, err := moveNoClobber(a.Path, target)
		if err != nil {
			return "", err
		}
		if err := writeErrorFile(dest, a, r.now()); err != nil {
			r.log.Warn("cannot write the error note", "file", dest, "err", err)
		}
		r.log.Warn("upload failed: file moved to failed_dir", "source", a.Source, "file", a.Path, "to", dest, "err", a.Item.LastError)
		return dest, nil
	}
	switch f.AfterUpload {
	case config.AfterMove:
		dest, err := moveNoClobber(a.Path, target)
		if err != nil {
			return "", err
		}
		r.log.Debug("moved to done_dir", "source", a.Source, "file", a.Path, "to", dest)
		return dest, nil
	case config.AfterDelete:
		if err := os.Remove(a.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		r.log.Debug("deleted after upload", "source", a.Source, "file", a.Path)
		return "", nil
	}
	return "", nil
}

// unchanged checks that the file at the action's path is still the one
// claimed: same content hash remembered for the path, same identity now.
// A file replaced by a new version must not be moved or deleted. It
// returns the remembered identity.
func (r *Runner) unchanged(f config.Folder, a state.Action) (state.FileRecord, error) {
	rec, ok, err := r.store.LookupFile(f.SourceID, a.Path)
	if err != nil {
		return rec, err
	}
	if !ok || rec.SHA256 != a.SHA256 {
		return rec, fmt.Errorf("%w: the path now holds other content", errChanged)
	}
	fi, err := os.Lstat(a.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, errGone
	}
	if err != nil {
		return rec, err
	}
	if !sameFile(fi, rec.Identity) {
		return rec, fmt.Errorf("%w: it was modified", errChanged)
	}
	return rec, nil
}

// errGone: the file is no longer at its path.
var errGone = fmt.Errorf("%w: it is gone", errChanged)

func sameFile(fi fs.FileInfo, id state.Identity) bool {
	st, _ := fi.Sys().(*syscall.Stat_t)
	return st != nil && fi.Mode().IsRegular() && uint64(st.Ino) == id.Ino && uint64(st.Dev) == id.Dev &&
		fi.Size() == id.Size && fi.ModTime().UnixNano() == id.MTime
}

// findMoved looks for the file rec at target or its no-clobber variants
// ("x (1).pdf"…): where a move that was not recorded put it.
func findMoved(target string, rec state.FileRecord) string {
	for n := 0; n < 1000; n++ {
		p := withSuffix(target, n)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if err == nil && sameFile(fi, rec.Identity) {
			return p
		}
	}
	return ""
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// writeErrorFile writes "<file>.error.txt" saying why the upload failed.
func writeErrorFile(path string, a state.Action, now time.Time) error {
	text := fmt.Sprintf(`cvfeed could not upload this file to Riminder.

file:      %s
source:    %s (source_id %s)
sha256:    %s
attempts:  %d
failed at: %s
error:     %s

Fix the cause, then queue it again with:
  cvfeed retry %s
`, filepath.Base(path), a.Source, a.SourceID, a.Hex(), a.Item.Attempts, now.UTC().Format(time.RFC3339), a.Item.LastError, a.Key.String())
	return os.WriteFile(path+".error.txt", []byte(text), 0o640)
}
