package state

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt maps the whole state file and reads its pages in place. A page read
// once stays in the process's resident memory (RssFile) until the mapping
// goes, and the kernel maps up to 16 pages around each page faulted in: a
// backfill's writes, which land on pages all over the items bucket, or a
// rescan that reads every identity, would leave the whole file resident, a
// process's RSS following the state's size (655 MiB for a million files).
//
// The trimmer keeps that bounded: every trimEvery (trimIdle while that is
// under half the bound) it reads the process's
// file-backed resident size (/proc/self/statm), and when that is above
// trimAbove it drops the resident pages of the mapping (madvise
// MADV_DONTNEED). The pages stay in the page cache: the next read maps them
// again, with the same bytes (a shared mapping of a file bbolt writes with
// pwrite), so a value a transaction holds stays valid across a trim. The
// madvise runs inside a read transaction, so bbolt cannot unmap and remap
// the file (it does when the file grows, under a lock every read
// transaction holds) while the address range is in use.
const (
	trimEvery = 20 * time.Millisecond
	trimIdle  = 500 * time.Millisecond
	trimAbove = 24 << 20
)

// startTrim starts the trimmer; Close stops it.
func (s *Store) startTrim() {
	stop, done := make(chan struct{}), make(chan struct{})
	s.trimStop, s.trimDone = stop, done
	go func() {
		defer close(done)
		page := int64(os.Getpagesize())
		t := time.NewTimer(trimEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			next := trimIdle // far below the bound: an idle daemon wakes twice a second
			if n, ok := fileResident(); ok && n*page > trimAbove/2 {
				next = trimEvery
				if n*page > trimAbove {
					s.trimResident()
				}
			}
			t.Reset(next)
		}
	}()
}

// stopTrim stops the trimmer and waits for it.
func (s *Store) stopTrim() {
	if s.trimStop != nil {
		close(s.trimStop)
		<-s.trimDone
		s.trimStop = nil
	}
}

// trimResident drops the resident pages of the state's mapping.
func (s *Store) trimResident() {
	_ = s.view(func(tx *bolt.Tx) error {
		if tx.Size() <= trimAbove/4 {
			return nil // too small to be what is resident
		}
		madviseDontNeed(tx.DB().Info().Data, tx.Size())
		return nil
	})
}

// madviseDontNeed drops the resident pages of [addr, addr+n) of a shared
// file mapping. Errors are ignored: a trim that fails only leaves pages
// resident.
func madviseDontNeed(addr uintptr, n int64) {
	if addr == 0 || n <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(n), syscall.MADV_DONTNEED)
}

// fileResident returns the process's resident pages backed by files or
// shared memory (the third field of /proc/self/statm).
func fileResident() (int64, bool) {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [128]byte
	n, _ := f.Read(buf[:])
	fields := bytes.Fields(buf[:n])
	if len(fields) < 3 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(fields[2]), 10, 64)
	return v, err == nil
}

// scanTrimEvery is how many keys a scan of a whole bucket reads between two
// trims of the mapping: such a scan (the counts of cvfeed status, a
// backfill's summary, a sweep of uploaded items) reads pages faster than
// the trimmer looks, and would have the whole bucket resident before it.
const scanTrimEvery = 2048

// trimScan is called by a scan inside its transaction after each key it
// read; n counts them. Every scanTrimEvery keys of a state larger than
// trimAbove, it drops the mapping's resident pages: inside a transaction
// the mapping cannot move (a write transaction that grows the file
// remaps it on this goroutine, and Info gives the mapping of now).
func trimScan(tx *bolt.Tx, n *int) {
	*n++
	if *n%scanTrimEvery != 0 || tx.Size() <= trimAbove {
		return
	}
	madviseDontNeed(tx.DB().Info().Data, tx.Size())
}
