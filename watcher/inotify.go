package watcher

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeWatch is an inotify instance of our own, beside fsnotify's, on the
// same directories: fsnotify v1.10 keeps its close-write op unexported, and
// the pair IN_MODIFY / IN_CLOSE_WRITE is what tells that a process still
// holds a file it wrote to.
type writeWatch struct {
	fd   int
	file *os.File // the fd in the runtime poller: Close ends a blocked Read

	mu    sync.Mutex
	paths map[int32]string
	wds   map[string]int32

	events chan writeEvent
	stop   chan struct{} // closed by close: the reader stops sending
	done   chan struct{} // closed by the reader when it returns
}

// writeEvent is one file event, or an overflow of the kernel's queue.
type writeEvent struct {
	path     string
	modify   bool // IN_MODIFY
	close    bool // IN_CLOSE_WRITE
	overflow bool // IN_Q_OVERFLOW: events were lost
}

const writeMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ONLYDIR

func newWriteWatch() (*writeWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w := &writeWatch{
		fd: fd, file: os.NewFile(uintptr(fd), "inotify"),
		paths: map[int32]string{}, wds: map[string]int32{},
		events: make(chan writeEvent, 256), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go w.read()
	return w, nil
}

// add watches a directory; the error is the kernel's (ENOSPC when
// fs.inotify.max_user_watches is reached).
func (w *writeWatch) add(dir string) error {
	wd, err := unix.InotifyAddWatch(w.fd, dir, writeMask)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.wds[dir]; ok && old != int32(wd) {
		delete(w.paths, old)
	}
	// One inode watched through two paths shares a wd: the last wins.
	w.paths[int32(wd)] = dir
	w.wds[dir] = int32(wd)
	return nil
}

// remove stops watching a directory. Errors are those of a watch the
// kernel already dropped (the directory was deleted): nothing to do.
func (w *writeWatch) remove(dir string) {
	w.mu.Lock()
	wd, ok := w.wds[dir]
	if ok {
		delete(w.wds, dir)
		delete(w.paths, wd)
	}
	w.mu.Unlock()
	if ok {
		_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
	}
}

// close stops the reader and releases the instance with all its watches.
func (w *writeWatch) close() {
	close(w.stop)
	w.file.Close()
	<-w.done
}

// read turns the kernel's records into events until close.
func (w *writeWatch) read() {
	defer close(w.done)
	defer close(w.events)
	var buf [64 << 10]byte
	for {
		n, err := w.file.Read(buf[:])
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // EINTR and the like; EAGAIN is the poller's
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameEnd := off + unix.SizeofInotifyEvent + int(raw.Len)
			if nameEnd > n {
				break
			}
			name := buf[off+unix.SizeofInotifyEvent : nameEnd]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			ev, ok := w.event(raw, name)
			off = nameEnd
			if !ok {
				continue
			}
			select {
			case w.events <- ev:
			case <-w.stop:
				return
			}
		}
	}
}

func (w *writeWatch) event(raw *unix.InotifyEvent, name []byte) (writeEvent, bool) {
	if raw.Mask&unix.IN_Q_OVERFLOW != 0 {
		return writeEvent{overflow: true}, true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	dir, ok := w.paths[raw.Wd]
	if raw.Mask&unix.IN_IGNORED != 0 {
		if ok {
			delete(w.paths, raw.Wd)
			if w.wds[dir] == raw.Wd {
				delete(w.wds, dir)
			}
		}
		return writeEvent{}, false
	}
	if !ok || len(name) == 0 || raw.Mask&unix.IN_ISDIR != 0 {
		return writeEvent{}, false
	}
	return writeEvent{
		path:   dir + "/" + string(name),
		modify: raw.Mask&unix.IN_MODIFY != 0,
		close:  raw.Mask&unix.IN_CLOSE_WRITE != 0,
	}, true
}
