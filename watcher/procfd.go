package watcher

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cvfeed/cvfeed/internal/fileio"
)

// writerFinder tells which files some process has open for writing.
type writerFinder interface {
	// openForWrite reports which of paths are open for writing. When it
	// looked less than its minimum gap ago it does nothing and returns
	// how long to wait; ok is false when it cannot tell at all.
	openForWrite(paths map[string]bool) (writers map[string]bool, wait time.Duration, ok bool)
}

// procGap is the shortest time between two scans of /proc: a scan reads a
// link for every open descriptor of every process.
const procGap = 500 * time.Millisecond

// procWriters finds writers by reading /proc: readlink /proc/PID/fd/N, and
// for a link that names a path asked about, the flags line of
// /proc/PID/fdinfo/N. Processes it may not inspect (another user's, unless
// cvfeed runs as root; all but its own under hidepid) are skipped
// silently: their writes are seen only through inotify and settle. One
// value serves every folder, so the gap holds for the whole daemon.
type procWriters struct {
	root string
	gap  time.Duration

	mu   sync.Mutex
	last time.Time
	buf  []byte
}

func newProcWriters() *procWriters {
	return &procWriters{root: "/proc", gap: procGap, buf: make([]byte, 4096)}
}

func (p *procWriters) openForWrite(paths map[string]bool) (map[string]bool, time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if since := now.Sub(p.last); !p.last.IsZero() && since < p.gap {
		return nil, p.gap - since, true
	}
	p.last = now
	return p.scan(paths)
}

// scan does one pass over /proc.
func (p *procWriters) scan(paths map[string]bool) (map[string]bool, time.Duration, bool) {
	d, err := fileio.Open(p.root)
	if err != nil {
		return nil, 0, false
	}
	defer d.Close()
	pids, err := d.Readdirnames(-1)
	if err != nil {
		return nil, 0, false
	}
	writers := map[string]bool{}
	sawSelf := false
	self := strconv.Itoa(os.Getpid())
	for _, pid := range pids {
		if pid == "" || pid[0] < '0' || pid[0] > '9' {
			continue
		}
		fdDir := p.root + "/" + pid + "/fd"
		fds, err := readNames(fdDir)
		if err != nil {
			continue // gone, or not ours to inspect
		}
		if pid == self {
			sawSelf = true
		}
		for _, fd := range fds {
			target, ok := p.readlink(fdDir + "/" + fd)
			if !ok || !paths[target] {
				continue
			}
			if p.writable(p.root + "/" + pid + "/fdinfo/" + fd) {
				writers[target] = true
			}
		}
	}
	// Without our own descriptors, /proc is not the kind we can read
	// (a foreign mount, or not Linux).
	return writers, 0, sawSelf
}

// readlink reads a /proc fd link into the shared buffer; only links to
// absolute paths (files, not sockets, pipes or anon inodes) are returned.
func (p *procWriters) readlink(link string) (string, bool) {
	n, err := syscall.Readlink(link, p.buf)
	if err != nil || n <= 0 || n >= len(p.buf) || p.buf[0] != '/' {
		return "", false
	}
	return string(p.buf[:n]), true
}

// writable reads the flags line of an fdinfo file: octal open flags, whose
// access mode is O_WRONLY or O_RDWR for a writer.
func (p *procWriters) writable(fdinfo string) bool {
	b, err := os.ReadFile(fdinfo)
	if err != nil {
		return false
	}
	for line := range bytes.Lines(b) {
		v, ok := bytes.CutPrefix(line, []byte("flags:"))
		if !ok {
			continue
		}
		flags, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 64)
		if err != nil {
			return false
		}
		mode := flags & syscall.O_ACCMODE
		return mode == syscall.O_WRONLY || mode == syscall.O_RDWR
	}
	return false
}

func readNames(dir string) ([]string, error) {
	d, err := fileio.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
