package watcher

import (
	"errors"
	"io/fs"
	"strings"
	"sync"
	"syscall"

	"github.com/fsnotify/fsnotify"
)

// eventWatch is a folder's inotify side: an fsnotify watcher for names
// (create, remove, rename, chmod, write) and a writeWatch for the writes
// in progress, both on every directory of the folder, which this type
// keeps (fsnotify is not recursive).
type eventWatch struct {
	fw   *fsnotify.Watcher
	ww   *writeWatch
	hook func(dir string) error

	mu   sync.Mutex
	dirs map[string][2]uint64 // watched directory → device, inode
	inos map[[2]uint64]string // and back: one inode is watched once
}

// fallbackError says why a folder cannot be watched with inotify.
type fallbackError struct {
	reason string // for Mode.Reason
	hint   string // what to raise
	err    error
}

func (e *fallbackError) Error() string { return e.reason + ": " + e.err.Error() }

func overflow(err error) *fallbackError {
	if err == nil {
		err = errors.New("IN_Q_OVERFLOW")
	}
	return &fallbackError{reason: "inotify event queue overflow (fs.inotify.max_queued_events)", hint: "raise the sysctl fs.inotify.max_queued_events", err: err}
}

// stopped: an inotify reader ended on its own (it only does on close).
func stopped() *fallbackError {
	return &fallbackError{reason: "inotify reader stopped", err: errors.New("event channel closed")}
}

// watchFailure classifies an inotify_init or inotify_add_watch error.
func watchFailure(dir string, err error) *fallbackError {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return &fallbackError{reason: "inotify watch limit reached (fs.inotify.max_user_watches)", hint: "raise the sysctl fs.inotify.max_user_watches", err: err}
	case errors.Is(err, syscall.EMFILE):
		return &fallbackError{reason: "inotify instance limit reached (fs.inotify.max_user_instances)", hint: "raise the sysctl fs.inotify.max_user_instances", err: err}
	}
	return &fallbackError{reason: "cannot watch " + dir, err: err}
}

func newEventWatch(hook func(string) error) (*eventWatch, *fallbackError) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, watchFailure("folder", err)
	}
	ww, err := newWriteWatch()
	if err != nil {
		fw.Close()
		return nil, watchFailure("folder", err)
	}
	return &eventWatch{fw: fw, ww: ww, hook: hook, dirs: map[string][2]uint64{}, inos: map[[2]uint64]string{}}, nil
}

// close releases both inotify instances and their watches.
func (e *eventWatch) close() {
	e.fw.Close()
	e.ww.close()
}

// The channels of a nil eventWatch (poll mode) are nil: never ready.
func (e *eventWatch) fsEvents() <-chan fsnotify.Event {
	if e == nil {
		return nil
	}
	return e.fw.Events
}

func (e *eventWatch) fsErrors() <-chan error {
	if e == nil {
		return nil
	}
	return e.fw.Errors
}

func (e *eventWatch) writes() <-chan writeEvent {
	if e == nil {
		return nil
	}
	return e.ww.events
}

// addResult is what add did with a directory.
type addResult uint8

const (
	addWatched addResult = iota // watched now (or already was)
	addAlias                    // its inode is watched through another path
	addGone                     // it vanished meanwhile
	addRefused                  // permission: logged, skipped
)

// add watches a directory, unless it is watched already. An error that
// polling would not meet (the directory is gone, or not readable: polling
// cannot list it either) skips the directory; any other (ENOSPC, ENOMEM,
// EMFILE) is a *fallbackError.
func (e *eventWatch) add(dir string, fi fs.FileInfo) (addResult, error) {
	k := devIno(fi)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.dirs[dir]; ok {
		return addWatched, nil
	}
	if other, ok := e.inos[k]; ok && other != dir && k != ([2]uint64{}) {
		return addAlias, nil
	}
	var err error
	if e.hook != nil {
		err = e.hook(dir)
	}
	if err == nil {
		err = e.fw.Add(dir)
	}
	if err == nil {
		if err = e.ww.add(dir); err != nil {
			_ = e.fw.Remove(dir)
		}
	}
	switch {
	case err == nil:
		e.dirs[dir] = k
		e.inos[k] = dir
		return addWatched, nil
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		return addGone, nil
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return addRefused, err
	}
	return addGone, watchFailure(dir, err)
}

// watching reports whether dir is watched.
func (e *eventWatch) watching(dir string) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.dirs[dir]
	return ok
}

// removeUnder drops the watches of dir and of the directories below it
// (removed, or moved away: a moved directory's watch would go on
// reporting under the old name). It reports whether dir was watched.
// The kernel has often dropped them already; those errors mean nothing.
func (e *eventWatch) removeUnder(dir string) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.dirs[dir]; !ok {
		return false
	}
	prefix := dir + "/"
	for p, k := range e.dirs {
		if p != dir && !strings.HasPrefix(p, prefix) {
			continue
		}
		_ = e.fw.Remove(p)
		e.ww.remove(p)
		delete(e.dirs, p)
		if e.inos[k] == p {
			delete(e.inos, k)
		}
	}
	return true
}

func devIno(fi fs.FileInfo) [2]uint64 {
	k, _ := devInoOf(fi)
	return k
}
