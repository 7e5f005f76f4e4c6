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
	"sync"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/confine"
	"github.com/cvfeed/cvfeed/state"
)

// Store is what the runner needs of the state database.
type Store interface {
	ActionsFor(k state.Key) ([]state.Action, error)
	DueActions() ([]state.Action, error)
	ActionMoved(a state.Action, newPath string, id *state.Identity) error
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

// Run removes what interrupted moves left in the done and failed
// directories (RemoveLeftovers), does the due actions, then those
// notified, and sweeps every few minutes, until ctx is cancelled.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	folders := make([]config.Folder, 0, len(r.folders))
	for _, f := range r.folders {
		folders = append(folders, f)
	}
	r.mu.Unlock()
	RemoveLeftovers(folders, r.log)
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
	newPath, id, err := r.act(f, a)
	switch {
	case errors.Is(err, errChanged) && r.folderDown(f, a):
		return // it went down meanwhile: the file is not gone
	case errors.Is(err, errChanged):
		log.Info("file changed or gone since it was taken: left as it is", "reason", err)
	case errors.Is(err, errOutside):
		log.Info("file outside the folder: not moved or deleted, left as it is", "reason", err)
	case err != nil:
		log.Error("after-action failed; will try again", "action", f.AfterUpload, "err", err)
		return
	}
	if err := r.store.ActionMoved(a, newPath, id); err != nil {
		log.Error("cannot record the after-action", "err", err)
	}
}

var errChanged = errors.New("not the file that was uploaded")

// errOutside: the file lies outside the folder (reached through a
// symbolic link under follow_symlinks = "all"), or its path is under none
// of the folder's directories. Nothing there is moved or deleted.
var errOutside = fmt.Errorf("it is not inside the folder: %w", confine.ErrOutside)

// act moves or deletes the file and returns where it went ("" if
// nowhere) and, for a file that stays known (a failed one, or one put back
// into the folder), its identity there. It acts on the name found, inside
// the directory that holds it (reached through the folder's root, never
// outside it): a symbolic link is moved or deleted itself, never its
// target.
//
// A file in failed_dir whose item a retry uploaded leaves it: for done_dir
// (move), deleted (delete), or back where HR put it (keep); its error
// note goes.
func (r *Runner) act(f config.Folder, a state.Action) (string, *state.Identity, error) {
	from, rel, ok := holder(f, a.Path)
	retried := ok && a.Item.Status == state.Uploaded && f.FailedDir != "" && from.Path() == confine.New(f.FailedDir, from.Policy()).Path()
	if f.AfterUpload == config.AfterKeep && (a.Item.Status == state.Uploaded && !retried || a.Item.Status == state.Failed && f.FailedDir == "") {
		return "", nil, nil
	}
	if !ok {
		return "", nil, fmt.Errorf("%w (%s is under neither path, done_dir nor failed_dir)", errOutside, a.Path)
	}
	var to confine.Tree // where a move puts the file, at rel
	switch {
	case a.Item.Status == state.Failed && f.FailedDir != "":
		to = confine.New(f.FailedDir, from.Policy())
	case a.Item.Status == state.Uploaded && f.AfterUpload == config.AfterMove:
		to = confine.New(f.DoneDir, from.Policy())
	case retried && f.AfterUpload == config.AfterKeep:
		to = confine.New(f.Path, from.Policy())
	}
	if retried {
		defer r.removeNote(from, a.Path)
	}
	moving := to.Path() != ""
	src, done, rec, err := r.unchanged(f, from, rel, a)
	if err != nil {
		// A stop between the move and its record: the file is already
		// at the target (same inode after a rename; same size, mtime
		// and content after a copy across file systems). Finish the
		// job.
		if moving && errors.Is(err, errGone) {
			if moved := findMoved(to, rel, rec, a.SHA256); moved != "" {
				if a.Item.Status == state.Failed && !exists(to, moved+".error.txt") {
					_ = writeErrorFile(to, moved, a, r.now())
				}
				return moved, identityAt(to, moved), nil
			}
		}
		return "", nil, err
	}
	defer done()
	if a.Item.Status == state.Failed {
		if f.FailedDir == "" {
			return "", nil, nil // no failed_dir: the file stays where HR put it
		}
		dest := a.Path // failed again after a retry from failed_dir: it stays
		if from.Path() != to.Path() {
			if dest, err = moveNoClobber(src, to, rel, a.SHA256); err != nil {
				return "", nil, err
			}
		}
		if err := writeErrorFile(to, dest, a, r.now()); err != nil {
			r.log.Warn("cannot write the error note", "file", dest, "err", err)
		}
		r.log.Warn("upload failed: file moved to failed_dir", "source", a.Source, "file", a.Path, "to", dest, "err", a.Item.LastError)
		if dest == a.Path {
			return "", nil, nil
		}
		return dest, identityAt(to, dest), nil
	}
	switch {
	case f.AfterUpload == config.AfterMove:
		dest, err := moveNoClobber(src, to, rel, a.SHA256)
		if err != nil {
			return "", nil, err
		}
		r.log.Info("moved to done_dir", "source", a.Source, "file", a.Path, "to", dest)
		return dest, nil, nil
	case f.AfterUpload == config.AfterDelete:
		if err := src.dir.Remove(src.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
		r.log.Info("deleted after upload", "source", a.Source, "file", a.Path)
		return "", nil, nil
	case retried: // keep: back where HR put it
		dest, err := moveNoClobber(src, to, rel, a.SHA256)
		if err != nil {
			return "", nil, err
		}
		r.log.Info("uploaded after a retry: file moved back from failed_dir", "source", a.Source, "file", a.Path, "to", dest)
		return dest, identityAt(to, dest), nil
	}
	return "", nil, nil
}

// removeNote removes the error note beside p (in failed_dir, the tree
// t), once its file was uploaded after all.
func (r *Runner) removeNote(t confine.Tree, p string) {
	rel, err := t.Rel(p + ".error.txt")
	if err != nil {
		return
	}
	root, err := t.OpenRoot()
	if err != nil {
		return
	}
	defer root.Close()
	dir, name, err := root.Parent(rel)
	if err != nil {
		return
	}
	defer dir.Close()
	if err := dir.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("cannot remove the error note", "file", p+".error.txt", "err", err)
	}
}

// identityAt is the identity of the file p in the tree t, or nil.
func identityAt(t confine.Tree, p string) *state.Identity {
	rel, err := t.Rel(p)
	if err != nil {
		return nil
	}
	root, err := t.OpenRoot()
	if err != nil {
		return nil
	}
	defer root.Close()
	dir, name, err := root.Parent(rel)
	if err != nil {
		return nil
	}
	defer dir.Close()
	fi, err := dir.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	dev, ino, ok := devIno(fi)
	if !ok {
		return nil
	}
	return &state.Identity{Dev: dev, Ino: ino, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
}

// holder returns the tree of the folder (path, done_dir or failed_dir,
// the deepest that holds p) and p relative to it.
func holder(f config.Folder, p string) (confine.Tree, string, bool) {
	policy, _ := confine.ParsePolicy(f.FollowSymlinks) // validated by config
	var best confine.Tree
	rel, found := "", false
	for _, dir := range []string{f.Path, f.DoneDir, f.FailedDir} {
		if dir == "" {
			continue
		}
		t := confine.New(dir, policy)
		if r, err := t.Rel(p); err == nil && r != "" && (!found || len(t.Path()) > len(best.Path())) {
			best, rel, found = t, r, true
		}
	}
	return best, rel, found
}

// unchanged checks that the file at the action's path is still the one
// claimed: same content hash remembered for the path, same identity now.
// A file replaced by a new version must not be moved or deleted. It
// returns the name to act on (close it with done) and the remembered
// identity.
func (r *Runner) unchanged(f config.Folder, from confine.Tree, rel string, a state.Action) (src source, done func(), rec state.FileRecord, err error) {
	rec, ok, err := r.store.LookupFile(f.SourceID, a.Path)
	if err != nil {
		return src, nil, rec, err
	}
	if !ok || rec.SHA256 != a.SHA256 {
		return src, nil, rec, fmt.Errorf("%w: the path now holds other content", errChanged)
	}
	root, err := from.OpenRoot()
	if err != nil {
		return src, nil, rec, err
	}
	fail := func(err error) (source, func(), state.FileRecord, error) {
		if src.dir != nil {
			src.dir.Close()
		}
		root.Close()
		switch {
		case errors.Is(err, confine.ErrOutside):
			err = fmt.Errorf("%w: %v", errOutside, err)
		case errors.Is(err, fs.ErrNotExist):
			err = errGone
		}
		return source{}, nil, rec, err
	}
	if src.dir, src.name, err = root.Parent(rel); err != nil {
		return fail(err)
	}
	if src.fi, err = src.dir.Lstat(src.name); err != nil {
		return fail(err)
	}
	fi := src.fi
	if src.link = fi.Mode()&fs.ModeSymlink != 0; src.link {
		// The link itself is acted on, if it still leads to the file.
		if fi, err = root.Stat(rel); err != nil {
			return fail(err)
		}
	}
	if !sameFile(fi, rec.Identity) {
		return fail(fmt.Errorf("%w: it was modified", errChanged))
	}
	return src, func() { src.dir.Close(); root.Close() }, rec, nil
}

// errGone: the file is no longer at its path.
var errGone = fmt.Errorf("%w: it is gone", errChanged)

func sameFile(fi fs.FileInfo, id state.Identity) bool {
	dev, ino, ok := devIno(fi)
	return ok && fi.Mode().IsRegular() && ino == id.Ino && dev == id.Dev &&
		fi.Size() == id.Size && fi.ModTime().UnixNano() == id.MTime
}

// findMoved looks for the file rec (content sum) at rel in the tree to or
// at its no-clobber variants ("x (1).pdf"…): where a move that was not
// recorded put it. A rename kept its identity; a copy across file systems
// its size, mtime and content.
func findMoved(to confine.Tree, rel string, rec state.FileRecord, sum [32]byte) string {
	root, err := to.OpenRoot()
	if err != nil {
		return ""
	}
	defer root.Close()
	dir, base, err := root.Parent(rel)
	if err != nil {
		return ""
	}
	defer dir.Close()
	for n := 0; n < 1000; n++ {
		name := withSuffix(base, n)
		fi, err := dir.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if sameFile(fi, rec.Identity) ||
			fi.Size() == rec.Identity.Size && fi.ModTime().UnixNano() == rec.Identity.MTime && hashIs(dir, name, sum) {
			return filepath.Join(dir.Path(), name)
		}
	}
	return ""
}

// exists reports whether p, in the tree t, exists.
func exists(t confine.Tree, p string) bool {
	rel, err := t.Rel(p)
	if err != nil {
		return false
	}
	root, err := t.OpenRoot()
	if err != nil {
		return false
	}
	defer root.Close()
	dir, name, err := root.Parent(rel)
	if err != nil {
		return false
	}
	defer dir.Close()
	_, err = dir.Lstat(name)
	return err == nil
}

// writeErrorFile writes "<file>.error.txt" beside path, in the tree t,
// saying why the upload failed.
func writeErrorFile(t confine.Tree, path string, a state.Action, now time.Time) error {
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
	rel, err := t.Rel(path + ".error.txt")
	if err != nil {
		return err
	}
	root, err := t.OpenRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	dir, name, err := root.Parent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}
