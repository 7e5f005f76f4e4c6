package watcher

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/cvfeed/cvfeed/config"
)

// networkMagic maps the statfs f_type of file systems whose changes inotify
// does not see when they are made by another machine (or, for FUSE, by the
// daemon behind the mount) to a name for the logs. Values from
// linux/magic.h and the file systems' sources.
var networkMagic = map[uint32]string{
	0x6969:     "nfs",
	0x517B:     "smb",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x65735546: "fuse",
	0x00C36400: "ceph",
	0x01021997: "9p",
	0x5346414F: "afs",
	0x6B414653: "afs",
	0x73757245: "coda",
	0x564C:     "ncp",
	0x0BD00BD0: "lustre",
	0x01161970: "gfs2",
	0x7461636F: "ocfs2",
}

// networkFS reports whether a statfs magic number is a network (or FUSE)
// file system, and its name. f_type is a signed long whose width depends
// on the architecture; the magic numbers all fit in 32 bits.
func networkFS(magic int64) (string, bool) {
	name, ok := networkMagic[uint32(magic)]
	return name, ok
}

// fsTypeOf returns the statfs magic of the file system holding path.
var fsTypeOf = func(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil
}

// chooseMode decides how a folder is watched at start, and the poll
// period when it is polled. With watch = "auto", a network file system is
// polled: inotify only sees the changes made through this machine's kernel.
func chooseMode(f *config.Folder) (Mode, time.Duration) {
	period := f.PollInterval
	if period <= 0 {
		period = config.DefaultPoll
	}
	switch {
	case f.Watch == config.WatchPoll:
		return Mode{Kind: ModePoll, Reason: `watch = "poll"`}, period
	case f.Watch == config.WatchEvents:
		return Mode{Kind: ModeEvents, Reason: `watch = "events"`}, period
	case f.PollInterval > 0:
		return Mode{Kind: ModePoll, Reason: "poll_interval set"}, period
	}
	magic, err := fsTypeOf(f.Path)
	if err != nil {
		// The folder may appear later; the reconcile walk adds its
		// watches then.
		return Mode{Kind: ModeEvents, Reason: "local file system (could not check: " + err.Error() + ")"}, period
	}
	if name, ok := networkFS(magic); ok {
		return Mode{Kind: ModePoll, Reason: "network file system (" + name + ")"}, period
	}
	return Mode{Kind: ModeEvents, Reason: "local file system"}, period
}

// isNetwork reports whether path is on a network file system; false when
// it cannot be told.
func isNetwork(path string) bool {
	magic, err := fsTypeOf(path)
	if err != nil {
		return false
	}
	_, ok := networkFS(magic)
	return ok
}
