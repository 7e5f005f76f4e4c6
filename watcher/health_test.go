package watcher

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
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// memDevices is a DeviceStore in memory.
type memDevices map[string]state.FolderDevice

func (m memDevices) FolderDevice(sourceID, path string) (state.FolderDevice, bool, error) {
	d, ok := m[sourceID+"\x00"+path]
	return d, ok, nil
}

func devOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev
}

// downWhy returns the Why of a *DownError, or fails the test.
func downWhy(t *testing.T, err error) string {
	t.Helper()
	var d *DownError
	if !errors.As(err, &d) {
		t.Fatalf("err = %v, want a *DownError", err)
	}
	return d.Why
}

func TestCheckFolder(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cvs")
	os.Mkdir(dir, 0o755)
	file := filepath.Join(root, "cvs.pdf")
	write(t, file, "a file, not a folder")
	loop := filepath.Join(root, "loop")
	os.Symlink(loop, loop)
	locked := filepath.Join(root, "locked")
	os.Mkdir(locked, 0o000)
	t.Cleanup(func() { os.Chmod(locked, 0o755) })

	for _, c := range []struct {
		name, path, why string
		rootBypasses    bool
	}{
		{"a folder", dir, "", false},
		{"missing", filepath.Join(root, "not-mounted"), "is missing", false},
		{"under a missing parent", filepath.Join(root, "nfs", "cvs"), "is missing", false},
		{"a file", file, "is not a directory", false},
		// Fails for root too: an unreadable root whatever the privileges.
		{"a symbolic link loop", loop, "cannot be read: too many levels of symbolic links", false},
		{"mode 000", locked, "cannot be read: permission denied", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.rootBypasses && os.Geteuid() == 0 {
				t.Skip("as root, permission bits do not stop reads (CAP_DAC_OVERRIDE); the symbolic link loop covers an unreadable root")
			}
			f := folder(c.path)
			err := CheckFolder(nil, f)
			if c.why == "" {
				if err != nil {
					t.Fatalf("CheckFolder(%s) = %v, want nil", c.path, err)
				}
				return
			}
			if got := downWhy(t, err); got != c.why {
				t.Errorf("CheckFolder(%s) why = %q, want %q", c.path, got, c.why)
			}
			if want := "folder inbox: " + c.path + " " + c.why; err.Error() != want {
				t.Errorf("CheckFolder(%s) = %q, want %q", c.path, err, want)
			}
			if c.why == "is missing" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("CheckFolder(%s) = %v, not an fs.ErrNotExist", c.path, err)
			}
		})
	}
}

// The device comparison, with records made up: an empty folder on another
// device than recorded, where the recorded mount point is not one, is a
// share that did not mount; a folder holding files there, or with no
// record, is taken.
func TestCheckFolderDevice(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "share")
	os.Mkdir(dir, 0o755)
	f := folder(dir)
	dev := devOf(t, dir)
	was := dev + 1 // another device than the one the folder is on
	devs := memDevices{testSource + "\x00" + dir: {Dev: was, MountRoot: dir}}

	err := CheckFolder(devs, f)
	want := fmt.Sprintf("is on another device than before (device %d:%d, was %d:%d): is the share mounted?",
		unix.Major(dev), unix.Minor(dev), unix.Major(was), unix.Minor(was))
	if got := downWhy(t, err); got != want {
		t.Errorf("empty folder on another device: why = %q, want %q", got, want)
	}
	if err := CheckFolder(nil, f); err != nil {
		t.Errorf("CheckFolder without a store = %v, want nil (nothing to compare)", err)
	}
	if err := CheckFolder(memDevices{}, f); err != nil {
		t.Errorf("CheckFolder without a record = %v, want nil", err)
	}
	same := memDevices{testSource + "\x00" + dir: {Dev: dev, MountRoot: dir}}
	if err := CheckFolder(same, f); err != nil {
		t.Errorf("CheckFolder on the recorded device = %v, want nil", err)
	}
	other := f
	other.SourceID = "0123456789abcdef0123456789abcdef01234567"
	if err := CheckFolder(devs, other); err != nil {
		t.Errorf("CheckFolder of another source_id = %v, want nil (the record is per source)", err)
	}
	os.Mkdir(filepath.Join(dir, "Data Scientist"), 0o755)
	if err := CheckFolder(devs, f); err != nil {
		t.Errorf("folder holding something on another device = %v, want nil (taken as moved)", err)
	}
}

// mountTmpfs mounts a small tmpfs on dir until the test ends.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// remountNewDevice mounts a new tmpfs on dir with another device number
// than old: a tmpfs mounted elsewhere first takes old, which the kernel
// would otherwise hand out again.
func remountNewDevice(t *testing.T, dir string, old uint64) {
	t.Helper()
	for i := range 5 {
		taker := filepath.Join(filepath.Dir(dir), fmt.Sprint(".taker", i))
		os.Mkdir(taker, 0o755)
		mountTmpfs(t, taker)
		mountTmpfs(t, dir)
		if devOf(t, dir) != old {
			return
		}
		unmount(t, dir) // a lower number was freed meanwhile: again
	}
	t.Fatalf("%s mounted again keeps its old device number %s", dir, devString(old))
}

func unmount(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatalf("umount %s: %v", dir, err)
	}
}

// A real share: a tmpfs mounted on the folder, recorded while it holds
// files, then unmounted (the mount point is an empty directory on the file
// system below), then mounted again (a new device number) with its files.
func TestFolderHealthUnmountedShare(t *testing.T) {
	root := t.TempDir()
	share := filepath.Join(root, "share")
	os.Mkdir(share, 0o755)
	below := devOf(t, share)
	mountTmpfs(t, share)
	shareDev := devOf(t, share)
	write(t, filepath.Join(share, "anna.pdf"), "anna")
	st := openStore(t)
	f := folder(share)
	log := testLogger(t)
	if down := newFolderHealth(f, st, log).update(); down != nil {
		t.Fatalf("mounted share: %v", down)
	}
	rec, ok, err := st.FolderDevice(f.SourceID, share)
	if err != nil || !ok || rec.Dev != shareDev || rec.MountRoot != share {
		t.Fatalf("recorded %+v, %v, %v; want device %d mounted at %s", rec, ok, err, shareDev, share)
	}

	unmount(t, share)
	want := fmt.Sprintf("is on another device than before (device %s, was %s): is the share mounted?", devString(below), devString(shareDev))
	if got := downWhy(t, CheckFolder(st, f)); got != want {
		t.Errorf("unmounted share: why = %q, want %q", got, want)
	}
	// As after a restart: a new look reads the record from state.
	if got := downWhy(t, newFolderHealth(f, st, log).update()); got != want {
		t.Errorf("unmounted share, new look: why = %q, want %q", got, want)
	}
	if rec2, _, _ := st.FolderDevice(f.SourceID, share); rec2 != rec {
		t.Errorf("record changed while the share was down: %+v, want %+v", rec2, rec)
	}

	// Mounted again, still empty: a new device number (another tmpfs
	// takes the old one, as anonymous device numbers are reused), but a
	// mount is there: up, and the record waits for it to hold something.
	remountNewDevice(t, share, shareDev)
	h := newFolderHealth(f, st, log)
	if down := h.update(); down != nil {
		t.Errorf("share mounted again, empty: %v, want up", down)
	}
	write(t, filepath.Join(share, "anna.pdf"), "anna")
	if down := h.update(); down != nil {
		t.Errorf("share mounted again with its files: %v, want up", down)
	}
	if rec3, _, _ := st.FolderDevice(f.SourceID, share); rec3.Dev != devOf(t, share) {
		t.Errorf("record after the share came back = %+v, want device %d", rec3, devOf(t, share))
	}
}

// recordAll keeps every log record, all levels.
type recordAll struct {
	mu   sync.Mutex
	recs []string
}

func (r *recordAll) Enabled(context.Context, slog.Level) bool { return true }
func (r *recordAll) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "reason":
			line += ": " + a.Value.String()
		case "down_for", "was_down_for":
			line += " (" + a.Key + " " + a.Value.String() + ")"
		}
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, line)
	r.mu.Unlock()
	return nil
}
func (r *recordAll) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recordAll) WithGroup(string) slog.Handler      { return r }

// take returns the WARN and INFO lines logged since the last take.
func (r *recordAll) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.recs {
		if strings.HasPrefix(l, "WARN") || strings.HasPrefix(l, "INFO") {
			out = append(out, l)
		}
	}
	r.recs = nil
	return out
}

// A folder down is said once when it goes down, again once a minute (not
// at every look), at once when why changes, and once when it is back.
func TestFolderHealthLogsOncePerMinute(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cvs")
	rec := &recordAll{}
	h := newFolderHealth(folder(dir), nil, slog.New(rec))
	t0 := testTime()
	expect := func(at time.Duration, wantDown bool, want ...string) {
		t.Helper()
		down, _ := h.check(t0.Add(at))
		if (down != nil) != wantDown {
			t.Errorf("at %v: down = %v, want down %v", at, down, wantDown)
		}
		got := rec.take()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("at %v: logged %q, want %q", at, got, want)
		}
	}
	missing := dir + " is missing"
	expect(0, true, "WARN folder is down: nothing is taken from it, and nothing is concluded from its files being absent, until it is back: "+missing+" (down_for 0s)")
	for _, at := range []time.Duration{5 * time.Second, 10 * time.Second, 55 * time.Second} {
		expect(at, true)
	}
	expect(time.Minute, true, "WARN folder still down: "+missing+" (down_for 1m0s)")
	expect(time.Minute+5*time.Second, true)
	write(t, dir, "a file where the folder should be")
	expect(time.Minute+10*time.Second, true, "WARN folder is down: nothing is taken from it, and nothing is concluded from its files being absent, until it is back: "+dir+" is not a directory (down_for 1m10s)")
	os.Remove(dir)
	os.Mkdir(dir, 0o755)
	expect(time.Minute+15*time.Second, false, "INFO folder is back; rescanning it (was_down_for 1m15s)")
	expect(time.Minute+20*time.Second, false)
	if ok, err := h.state(); !ok || err != nil {
		t.Errorf("state() = %v, %v; want up", ok, err)
	}
}

// healthEvents records what OnHealth is told.
type healthEvents struct {
	mu  sync.Mutex
	got []string
}

func (e *healthEvents) on(folder string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := folder + " up"
	if err != nil {
		s = folder + " down: " + err.Error()
	}
	e.got = append(e.got, s)
}

func (e *healthEvents) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

// The daemon's Watch over a folder that is missing at start: down, nothing
// taken; it appears with a file: up, rescanned, the file taken. It goes
// away (moved off) while watched: down, and nothing in state is forgotten;
// it comes back with a new file: only the new file is new.
func TestWatchFolderDownAndBack(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "share")
	st := openStore(t)
	ev := &healthEvents{}
	w := NewWatch(st, WatchOptions{Logger: testLogger(t), OnHealth: ev.on})
	w.hooks.healthEvery = 20 * time.Millisecond
	runWatch(t, w, watchFolder(dir))
	isDown := func(why string) func() bool {
		return func() bool {
			err, ok := w.FolderHealth()["inbox"]
			var d *DownError
			return ok && errors.As(err, &d) && strings.HasPrefix(d.Why, why)
		}
	}
	isUp := func() bool { err, ok := w.FolderHealth()["inbox"]; return ok && err == nil }
	waitFor(t, 5*time.Second, "the missing folder down", isDown("is missing"))
	if ev := ev.list(); len(ev) != 1 || ev[0] != "inbox down: folder inbox: "+dir+" is missing" {
		t.Errorf("OnHealth told %q, want the folder down", ev)
	}

	os.Mkdir(dir, 0o755)
	write(t, filepath.Join(dir, "anna.pdf"), "anna")
	waitFor(t, 5*time.Second, "the folder up", isUp)
	waitFor(t, 5*time.Second, "anna.pdf taken", func() bool { return len(items(t, st, dir)) == 1 })
	if ev := ev.list(); len(ev) != 2 || ev[1] != "inbox up" {
		t.Errorf("OnHealth told %q, want down then up", ev)
	}

	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the folder down again", isDown("is missing"))
	if _, ok, err := st.LookupFile(testSource, filepath.Join(dir, "anna.pdf")); !ok || err != nil {
		t.Errorf("anna.pdf forgotten while the folder was down: %v, %v", ok, err)
	}
	write(t, filepath.Join(away, "bob.pdf"), "bob")
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the folder up again", isUp)
	// The counts follow the claim's commit: wait for both.
	waitFor(t, 5*time.Second, "bob.pdf taken and counted", func() bool {
		return len(items(t, st, dir)) == 2 && w.Stats().Snapshot().New == 2
	})
	if c := w.Stats().Snapshot(); c.New != 2 || c.Duplicates != 0 {
		t.Errorf("new %d, duplicates %d; want 2, 0", c.New, c.Duplicates)
	}
}

// The case of a reboot after which the share did not mount: the Watch
// starts over an empty mount point whose device differs from the one
// recorded when it held files. It is down, takes nothing and changes
// nothing in state; once the share is mounted again with its files, it is
// up and nothing is taken twice.
func TestWatchUnmountedShareAfterRestart(t *testing.T) {
	root := t.TempDir()
	share := filepath.Join(root, "share")
	os.Mkdir(share, 0o755)
	mountTmpfs(t, share)
	shareDev := devOf(t, share)
	for _, n := range []string{"anna", "bob"} {
		write(t, filepath.Join(share, n+".pdf"), n)
	}
	st := openStore(t)
	f := watchFolder(share)

	ctx, cancel := context.WithCancel(t.Context())
	w := NewWatch(st, WatchOptions{Logger: testLogger(t)})
	w.hooks.healthEvery = 20 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, []config.Folder{f}) }()
	waitFor(t, 5*time.Second, "2 items", func() bool { return len(items(t, st, share)) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	unmount(t, share)
	rec := &recordAll{}
	w = NewWatch(st, WatchOptions{Logger: slog.New(rec)})
	w.hooks.healthEvery = 20 * time.Millisecond
	walked := make(chan string, 16)
	w.hooks.walked = func(folder string, kind jobKind, _ time.Duration) {
		select {
		case walked <- kind.String():
		default:
		}
	}
	looks := make(chan error, 64)
	w.hooks.looked = func(folder string, err error) {
		select {
		case looks <- err:
		default:
		}
	}
	runWatch(t, w, f)
	// Five looks, each down, and no walk of the empty mount point (a
	// source started would rescan at once), one WARN.
	for i := range 5 {
		select {
		case err := <-looks:
			if err == nil || !strings.Contains(err.Error(), "is on another device than before") {
				t.Fatalf("look %d at the empty mount point: %v, want down", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no look %d within 5s", i)
		}
	}
	select {
	case k := <-walked:
		t.Errorf("a %s walk of the empty mount point", k)
	default:
	}
	if warns := strings.Count(strings.Join(rec.take(), "\n"), "WARN folder is down"); warns != 1 {
		t.Errorf("%d WARNs over 5 looks, want 1", warns)
	}
	for _, n := range []string{"anna", "bob"} {
		if _, ok, _ := st.LookupFile(testSource, filepath.Join(share, n+".pdf")); !ok {
			t.Errorf("%s.pdf forgotten while the share was down", n)
		}
	}

	remountNewDevice(t, share, shareDev)
	for _, n := range []string{"anna", "bob"} {
		write(t, filepath.Join(share, n+".pdf"), n)
	}
	select {
	case k := <-walked:
		if k != "rescan" {
			t.Errorf("first walk after the share came back: %s, want rescan", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no rescan within 5s of the share coming back")
	}
	waitFor(t, 5*time.Second, "the share up", func() bool { err, ok := w.FolderHealth()["inbox"]; return ok && err == nil })
	if got := items(t, st, share); len(got) != 2 {
		t.Errorf("items %q after the share came back, want the 2 of before", itemNames(got))
	}
	if c := w.Stats().Snapshot(); c.New != 0 {
		t.Errorf("%d new items after the share came back, want 0", c.New)
	}
}

// A backfill's scan does not walk a folder that is down: an empty mount
// point on another device than recorded is an error naming the folder,
// and the other folders are scanned.
func TestScanSkipsDownFolder(t *testing.T) {
	root := t.TempDir()
	share := filepath.Join(root, "share")
	os.Mkdir(share, 0o755)
	good := filepath.Join(root, "good")
	write(t, filepath.Join(good, "anna.pdf"), "anna")
	st := openStore(t)
	// Recorded on another device, at a mount point that is one no more.
	if err := st.SetFolderDevice(testSource, share, state.FolderDevice{Dev: devOf(t, share) + 1, MountRoot: share}); err != nil {
		t.Fatal(err)
	}
	down := folder(share)
	down.Name = "share"
	s := NewScanner(st, ScannerOptions{Logger: testLogger(t)})
	if err := s.Scan(t.Context(), []config.Folder{down, folder(good)}); err != nil {
		t.Fatal(err)
	}
	if c := s.Stats().Snapshot(); c.Errors != 1 || c.New != 1 {
		t.Errorf("errors %d, new %d; want 1 (the share), 1 (anna.pdf)", c.Errors, c.New)
	}
	errs := s.Down()
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "folder share: "+share+" is on another device than before") {
		t.Errorf("Down() = %v, want the share on another device", errs)
	}
	// The record is kept: the next run compares with it again.
	if rec, _, _ := st.FolderDevice(testSource, share); rec.Dev != devOf(t, share)+1 {
		t.Errorf("record after the scan = %+v, want it unchanged", rec)
	}
	// A scan of a folder holding files records its device.
	if rec, ok, _ := st.FolderDevice(testSource, good); !ok || rec.Dev != devOf(t, good) {
		t.Errorf("record of the good folder = %+v, %v; want device %d", rec, ok, devOf(t, good))
	}
}
