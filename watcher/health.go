package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// A share that did not mount (SMB, NFS) looks, to a program that only
// lists it, like a missing folder or an empty one. cvfeed says so instead
// of watching nothing, and concludes nothing from the absence of its
// files. A folder is down when its root
//
//   - is missing, is not a directory, or cannot be opened and listed
//     (permissions, an I/O error, a FUSE mount whose daemon died); or
//   - is an empty directory on another device than the one recorded when
//     the folder last held something, and the directory where that file
//     system was mounted is no longer a mount point: the mount did not
//     come back, and this is its mount point on the file system below.
//
// Other device changes are taken: a share mounted again gets a new device
// number (NFS, CIFS and tmpfs get one at each mount), and a folder that
// holds files on its new device was moved there. The device is recorded
// in state (it must survive the reboot after which a share did not
// mount) when a look finds the folder up and holding something.
//
// One look costs an open, an fstat and one getdents of the root (more
// stats only when the device differs from the record), so the daemon
// looks every few seconds.

// DeviceStore is what the folder check reads of the state database: the
// device each folder was on when it last held something. *state.Store
// implements it; so do stores that can also record it (SetFolderDevice).
type DeviceStore interface {
	FolderDevice(sourceID, path string) (state.FolderDevice, bool, error)
}

// deviceRecorder is a DeviceStore that records devices.
type deviceRecorder interface {
	SetFolderDevice(sourceID, path string, d state.FolderDevice) error
}

// DownError says why a folder is down.
type DownError struct {
	// Folder is the folder's name, Path its configured path.
	Folder, Path string
	// Why completes "PATH ...": "is missing", "is not a directory",
	// "cannot be read: permission denied", "is on another device than
	// before (device 0:45, was 0:52): is the share mounted?".
	Why string
	// Err is the system's error, when there was one.
	Err error
}

// Error returns "folder NAME: PATH WHY".
func (e *DownError) Error() string { return "folder " + e.Folder + ": " + e.Reason() }

// Reason returns the path and why, without the folder's name:
// "/srv/hr/cvs is missing".
func (e *DownError) Reason() string { return e.Path + " " + e.Why }

// Unwrap returns the system's error, if any.
func (e *DownError) Unwrap() error { return e.Err }

// rootLook is what one look at a folder's root found.
type rootLook struct {
	dev   uint64
	empty bool // no entry but . and ..
}

// lookRoot opens the folder's root, stats it and reads its first entries.
func lookRoot(f *config.Folder) (rootLook, *DownError) {
	down := func(why string, err error) (rootLook, *DownError) {
		return rootLook{}, &DownError{Folder: f.Name, Path: f.Path, Why: why, Err: err}
	}
	fd, err := openDir(f.Path)
	switch {
	case err == unix.ENOENT:
		return down("is missing", err)
	case err == unix.ENOTDIR:
		return down("is not a directory", err)
	case err != nil:
		return down("cannot be read: "+err.Error(), err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return down("cannot be read: "+err.Error(), err)
	}
	l := rootLook{dev: st.Dev, empty: true}
	var buf [2048]byte
	for range 64 { // . and .. come first; a few reads at most
		n, err := unix.Getdents(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return down("cannot be listed: "+err.Error(), err)
		}
		if n <= 0 {
			break
		}
		for off := 0; off < n; {
			name, _, next := parseDirent(buf[off:n])
			if next <= 0 {
				break
			}
			off += next
			if name != "" && name != "." && name != ".." {
				l.empty = false
				return l, nil
			}
		}
	}
	return l, nil
}

// judge decides whether a folder whose root is readable is up, given the
// device recorded when it last held something.
func (l rootLook) judge(f *config.Folder, rec state.FolderDevice, hasRec bool) *DownError {
	if !hasRec || l.dev == rec.Dev || !l.empty || mountedAt(rec.MountRoot, l.dev) {
		return nil
	}
	return &DownError{Folder: f.Name, Path: f.Path,
		Why: fmt.Sprintf("is on another device than before (device %s, was %s): is the share mounted?", devString(l.dev), devString(rec.Dev))}
}

// mountedAt reports whether a file system of device dev is mounted at
// root now: root is on dev and its parent is not (or root is /).
func mountedAt(root string, dev uint64) bool {
	if root == "" {
		return false
	}
	var st, parent unix.Stat_t
	if unix.Stat(root, &st) != nil || st.Dev != dev {
		return false
	}
	if root == "/" {
		return true
	}
	return unix.Stat(filepath.Dir(root), &parent) == nil && parent.Dev != st.Dev
}

// mountRootOf returns the top directory of path's file system (device
// dev) on path, symbolic links resolved: where that file system is
// mounted.
func mountRootOf(path string, dev uint64) string {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		p = path
	}
	p = filepath.Clean(p)
	for p != "/" {
		var st unix.Stat_t
		parent := filepath.Dir(p)
		if unix.Stat(parent, &st) != nil || st.Dev != dev {
			return p
		}
		p = parent
	}
	return p
}

func devString(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}

// CheckFolder says whether a folder is up (nil) or down (a *DownError),
// comparing its device with the one store recorded (store may be nil: no
// comparison). It records nothing and logs nothing; it is cheap enough to
// call before each after-action.
func CheckFolder(store DeviceStore, f config.Folder) error {
	l, down := lookRoot(&f)
	if down != nil {
		return down
	}
	var rec state.FolderDevice
	ok := false
	if store != nil {
		// A record that cannot be read compares nothing; the daemon's
		// look logs it.
		rec, ok, _ = store.FolderDevice(f.SourceID, f.Path)
	}
	if down := l.judge(&f, rec, ok); down != nil {
		return down
	}
	return nil
}

// folderHealth is the health of one folder: the record of its device and
// the result of the last look. One goroutine at a time calls update and
// check; state may be called from any.
type folderHealth struct {
	f     config.Folder
	store DeviceStore // nil: no device comparison
	log   *slog.Logger

	loaded  bool // rec read from store
	rec     state.FolderDevice
	hasRec  bool
	recWarn bool      // a record that could not be read or written was logged
	since   time.Time // of the current state
	warned  time.Time // the last WARN while down

	// mu guards what state reads. It is never held across a state
	// transaction: the pool asks for the folders' health inside one.
	mu      sync.Mutex
	checked bool
	down    *DownError // of the last look; nil when up
}

// newFolderHealth returns the health of f, compared with (and recorded
// in) store when it keeps folder devices.
func newFolderHealth(f config.Folder, store Store, log *slog.Logger) *folderHealth {
	ds, _ := store.(DeviceStore)
	return &folderHealth{f: f, store: ds, log: log}
}

// update looks at the folder and, when it is up and holds something,
// records its device. It returns why the folder is down, or nil.
func (h *folderHealth) update() *DownError {
	l, down := lookRoot(&h.f)
	if down != nil {
		return down
	}
	if !h.loaded && h.store != nil {
		rec, ok, err := h.store.FolderDevice(h.f.SourceID, h.f.Path)
		if err != nil {
			// Read again at the next look: it may be a passing error.
			h.warnRecord("cannot read the recorded device of the folder; not compared", err)
		} else {
			h.rec, h.hasRec, h.loaded = rec, ok, true
		}
	}
	if down := l.judge(&h.f, h.rec, h.hasRec); down != nil {
		return down
	}
	if !l.empty && (!h.hasRec || h.rec.Dev != l.dev) {
		h.record(l.dev)
	}
	return nil
}

// record keeps dev as the folder's device, in state when it can.
func (h *folderHealth) record(dev uint64) {
	rec := state.FolderDevice{Dev: dev, MountRoot: mountRootOf(h.f.Path, dev)}
	if h.hasRec {
		h.log.Info("folder is on another file system than before and holds files: taken as the folder", "source", h.f.Name,
			"path", h.f.Path, "device", devString(dev), "was", devString(h.rec.Dev), "mount", rec.MountRoot)
	} else {
		h.log.Debug("folder device recorded", "source", h.f.Name, "path", h.f.Path, "device", devString(dev), "mount", rec.MountRoot)
	}
	if w, ok := h.store.(deviceRecorder); ok {
		if err := w.SetFolderDevice(h.f.SourceID, h.f.Path, rec); err != nil {
			h.warnRecord("cannot record the device of the folder", err)
			return // try again at the next look
		}
	}
	h.rec, h.hasRec = rec, true
}

func (h *folderHealth) warnRecord(msg string, err error) {
	if !h.recWarn {
		h.recWarn = true
		h.log.Warn(msg, "source", h.f.Name, "path", h.f.Path, "err", err)
	}
}

// warnEvery is how often a folder still down is logged again.
const warnEvery = time.Minute

// check is the daemon's look: update, then a WARN when the folder goes
// down (or why changes) and once a minute while it stays down, an INFO
// when it is back. It reports whether the folder is down now, and whether
// that changed (the first look is a change).
func (h *folderHealth) check(now time.Time) (down *DownError, changed bool) {
	down = h.update()
	h.mu.Lock()
	was, first := h.down, !h.checked
	h.checked, h.down = true, down
	h.mu.Unlock()
	changed = first || (was == nil) != (down == nil)
	lasted := now.Sub(h.since).Round(time.Second) // of the state before this look
	if changed {
		h.since = now
	}
	switch {
	case down != nil && (changed || was.Why != down.Why || now.Sub(h.warned) >= warnEvery):
		h.warned = now
		msg := "folder is down: nothing is taken from it, and nothing is concluded from its files being absent, until it is back"
		if !changed && was.Why == down.Why {
			msg = "folder still down"
		}
		h.log.Warn(msg, "source", h.f.Name, "path", h.f.Path, "reason", down.Reason(), "down_for", now.Sub(h.since).Round(time.Second))
	case down == nil && changed && !first:
		h.log.Info("folder is back; rescanning it", "source", h.f.Name, "path", h.f.Path, "was_down_for", lasted)
	}
	return down, changed
}

// state reports whether the folder was looked at yet, and the last
// look's result (nil: up).
func (h *folderHealth) state() (checked bool, down error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down != nil {
		return true, h.down
	}
	return h.checked, nil
}

// healthEvery is how often the daemon looks at a folder: every poll of a
// polled folder, and at least every 5 s.
func healthEvery(f *config.Folder) time.Duration {
	d := 5 * time.Second
	if f.PollInterval > 0 && f.PollInterval < d {
		d = f.PollInterval
	}
	return max(d, 100*time.Millisecond)
}

// supervise runs a folder of the Watch until ctx is done: it looks at the
// folder at once and every few seconds, runs the folder's source while the
// folder is up, and stops it while it is down, so that nothing is walked,
// settled or forgotten on the strength of a tree that is not there. A
// source starts with a rescan, so a folder that comes back is rescanned
// at once and the files dropped meanwhile are taken.
func (w *Watch) supervise(ctx context.Context, r *running) {
	every := healthEvery(&r.f)
	if w.hooks.healthEvery > 0 {
		every = w.hooks.healthEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var src *sourceRun // nil while the folder is down
	defer func() { src.stop() }()
	for {
		down, changed := r.health.check(time.Now())
		switch {
		case down == nil && src == nil:
			src = w.runSource(ctx, r.f)
		case down != nil && src != nil:
			src.stop()
			src = nil
		}
		var err error
		if down != nil {
			err = down
		}
		if changed && w.onHealth != nil {
			w.onHealth(r.f.Name, err)
		}
		if w.hooks.looked != nil {
			w.hooks.looked(r.f.Name, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sourceRun is a folder's source running in a goroutine of its own.
type sourceRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *Watch) runSource(ctx context.Context, f config.Folder) *sourceRun {
	ctx, cancel := context.WithCancel(ctx)
	sr := &sourceRun{cancel: cancel, done: make(chan struct{})}
	s := newSource(w, f)
	go func() {
		defer close(sr.done)
		s.run(ctx)
	}()
	return sr
}

// stop stops the source and waits for it; a nil *sourceRun is stopped.
func (sr *sourceRun) stop() {
	if sr != nil {
		sr.cancel()
		<-sr.done
	}
}

// FolderHealth returns the health of each running folder, by name: nil
// when it is up, a *DownError when it is down. A folder not looked at yet
// (just started) is absent.
func (w *Watch) FolderHealth() map[string]error {
	w.mu.Lock()
	rs := make([]*running, 0, len(w.running))
	for _, r := range w.running {
		rs = append(rs, r)
	}
	w.mu.Unlock()
	out := make(map[string]error, len(rs))
	for _, r := range rs {
		if ok, err := r.health.state(); ok {
			out[r.f.Name] = err
		}
	}
	return out
}

// scanHealth is what a Scanner found of its folders' health.
type scanHealth struct {
	mu   sync.Mutex
	down []error
}

// folderUp looks at a folder before a scan walks it. A folder that is
// down is logged, counted as an error and not walked: an empty mount
// point is not the folder, and its files are not gone. A folder that
// holds something has its device recorded.
func (s *Scanner) folderUp(f *config.Folder) bool {
	down := newFolderHealth(*f, s.h.store, s.log).update()
	if down == nil {
		return true
	}
	s.h.stats.Errors.Add(1)
	s.log.Error("folder is down; not scanned", "source", f.Name, "path", f.Path, "reason", down.Reason())
	s.health.mu.Lock()
	s.health.down = append(s.health.down, down)
	s.health.mu.Unlock()
	return false
}

// Down returns why each folder found down by Scan was not scanned (each a
// *DownError), in the order met.
func (s *Scanner) Down() []error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return append([]error(nil), s.health.down...)
}

// openDir opens the directory at path (the folder's configured path, whose
// own links are the admin's choice) for listing.
func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
