package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
	"syscall"
)

// bbolt maps the file and trusts what it finds: a meta page whose pages lie
// past the end of a truncated file makes it fault (SIGSEGV or SIGBUS, which
// recover cannot catch), and a damaged page makes it panic, sometimes on a
// goroutine of its own (the scan that rebuilds the free list when a writer
// opens the file). So before bbolt sees a file, checkFile reads it the way
// bbolt will, with bounds-checked Go: the two meta pages, chosen as bbolt
// chooses (the valid one with the highest transaction id), and every page
// reachable from the root, with the checks of bbolt's own tx.Check that
// guard against a crash (page ids and types, elements inside their page,
// child pages below the high-water mark and referenced once, keys in
// order). A file that passes is safe for bbolt to map and walk.
//
// The layout read here is bbolt's file format version 2 (go.etcd.io/bbolt
// internal/common: page.go, meta.go), in the machine's byte order.

const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	elementSize     = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	metaSize        = 64 // see metaPage
	bucketHeader    = 16 // root pgid u64, sequence u64
	flagBranch      = 0x01
	flagLeaf        = 0x02
	flagMeta        = 0x04
	flagFreelist    = 0x10
	flagBucketEntry = 0x01
	noFreelist      = ^uint64(0)
	minPageSize     = 1024
	maxPageSize     = 1 << 24
)

var ne = binary.NativeEndian

// metaPage is bbolt's meta: magic u32, version u32, pageSize u32, flags u32,
// root bucket (pgid u64, sequence u64), freelist u64, pgid u64 (the
// high-water mark: pages below it are in use or free), txid u64, checksum
// u64 (FNV-64a of the 56 bytes before it).
type metaPage struct {
	magic, version, pageSize uint32
	root, freelist, pgid     uint64
	txid                     uint64
	sumOK                    bool
}

func parseMeta(b []byte) metaPage {
	h := fnv.New64a()
	h.Write(b[:56])
	return metaPage{
		magic:    ne.Uint32(b[0:]),
		version:  ne.Uint32(b[4:]),
		pageSize: ne.Uint32(b[8:]),
		root:     ne.Uint64(b[16:]),
		freelist: ne.Uint64(b[32:]),
		pgid:     ne.Uint64(b[40:]),
		txid:     ne.Uint64(b[48:]),
		sumOK:    h.Sum64() == ne.Uint64(b[56:]),
	}
}

// valid is bbolt's Meta.Validate.
func (m metaPage) valid() bool { return m.magic == boltMagic && m.version == boltVersion && m.sumOK }

// metaAt parses the meta of the page at off, if the file holds it.
func metaAt(data []byte, off int64) (metaPage, bool) {
	if off < 0 || off+pageHeaderSize+metaSize > int64(len(data)) {
		return metaPage{}, false
	}
	m := parseMeta(data[off+pageHeaderSize:])
	return m, m.valid()
}

// checkFile validates the mapped bytes of a non-empty state file; it
// returns what is wrong ("" when bbolt may open it).
func checkFile(f *os.File, size int64) (reason string, err error) {
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return "", fmt.Errorf("map: %w", err)
	}
	defer syscall.Munmap(data)
	// Another program truncating the file while it is read faults: a
	// panic here, reported as damage.
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			reason = fmt.Sprintf("reading it failed: %v", r)
		}
	}()
	// The walk touches every page in use: without this, the whole file
	// would count in the process's resident memory until the unmap (a
	// 300 MiB state, 300 MiB at every start). Dropping the mapping's
	// pages every so often keeps that bounded; they stay in the page
	// cache, and a later touch maps them again with the same bytes (a
	// shared mapping of a file), so slices held across it stay valid.
	release := func() { _ = syscall.Madvise(data, syscall.MADV_DONTNEED) }
	return checkMapped(data, release), nil
}

// releaseEvery is how many pages the walk touches between two releases of
// the mapping: a fault maps up to 16 pages around the one touched (the
// kernel's fault-around, which MADV_RANDOM does not stop), so some 4 MiB
// are resident between releases.
const releaseEvery = 64

// checkBytes is checkFile on the file's bytes.
func checkBytes(data []byte) string { return checkMapped(data, nil) }

// checkMapped is checkBytes; release, when set, is called after every
// releaseEvery pages walked (never on bytes that are not a file mapping:
// MADV_DONTNEED zeroes anonymous memory).
func checkMapped(data []byte, release func()) string {
	size := int64(len(data))
	m, ps, reason := chooseMeta(data)
	if reason != "" {
		return reason
	}
	if m.pgid > uint64(size)/uint64(ps) {
		return fmt.Sprintf("meta page points past the end of the file: the file has %d bytes, its meta page counts %d pages of %d", size, m.pgid, ps)
	}
	if m.root < 2 || m.root >= m.pgid {
		return fmt.Sprintf("meta page points past the end of the file: root page %d, the file has %d pages", m.root, m.pgid)
	}
	if m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid) {
		return fmt.Sprintf("meta page points past the end of the file: free-list page %d, the file has %d pages", m.freelist, m.pgid)
	}
	w := &walker{data: data, ps: int64(ps), hwm: m.pgid, seen: make([]bool, m.pgid), release: release}
	w.seen[0], w.seen[1] = true, true
	if m.freelist != noFreelist {
		if r := w.freelist(m.freelist); r != "" {
			return r
		}
	}
	if r := w.tree(m.root, nil, nil); r != "" {
		return r
	}
	return ""
}

// chooseMeta finds the page size and the meta page bbolt will use: its
// Open takes the page size from the first meta page, else from a second
// one found at 1 KiB, 2 KiB, ... 16 MiB; then it reads pages 0 and 1 and
// uses the valid one with the higher transaction id.
func chooseMeta(data []byte) (metaPage, uint32, string) {
	size := int64(len(data))
	var ps uint32
	if m, ok := metaAt(data, 0); ok && size >= 0x1000 {
		ps = m.pageSize
	} else {
		for i := range 15 {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			if m, ok := metaAt(data, pos); ok {
				ps = m.pageSize
				break
			}
		}
	}
	if ps == 0 {
		if size < 2*4096 {
			return metaPage{}, 0, fmt.Sprintf("the file has %d bytes and no valid bbolt meta page: it is not a cvfeed state, or was cut short", size)
		}
		return metaPage{}, 0, "no valid bbolt meta page: it is not a cvfeed state, or both its meta pages are damaged"
	}
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return metaPage{}, 0, fmt.Sprintf("its meta page gives a page size of %d bytes", ps)
	}
	if size < 2*int64(ps) {
		return metaPage{}, 0, fmt.Sprintf("meta page points past the end of the file: the file has %d bytes, less than its two meta pages of %d", size, ps)
	}
	m0, ok0 := metaAt(data, 0)
	m1, ok1 := metaAt(data, int64(ps))
	var m metaPage
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case ok0:
		m = m0
	default:
		return metaPage{}, 0, "both its meta pages are damaged"
	}
	if m.pageSize != ps {
		return metaPage{}, 0, fmt.Sprintf("its meta pages disagree on the page size (%d and %d bytes)", ps, m.pageSize)
	}
	return m, ps, ""
}

// walker visits the pages reachable from the root, as bbolt's cursors and
// its free-list scan will.
type walker struct {
	data []byte
	ps   int64
	hwm  uint64
	seen []bool
	// release drops the mapping's resident pages (nil: never); touched
	// counts the pages walked since the last release.
	release func()
	touched uint64
}

// page returns the bytes of page id (with its overflow pages) after checking
// its header: id, type, and extent below the high-water mark, not already
// referenced.
func (w *walker) page(id uint64, want string) ([]byte, uint16, string) {
	if id < 2 || id >= w.hwm {
		return nil, 0, fmt.Sprintf("a %s page points past the end of the file: page %d, the file has %d pages", want, id, w.hwm)
	}
	off := int64(id) * w.ps
	h := w.data[off : off+pageHeaderSize]
	if got := ne.Uint64(h); got != id {
		return nil, 0, fmt.Sprintf("page %d says it is page %d", id, got)
	}
	flags := ne.Uint16(h[8:])
	overflow := uint64(ne.Uint32(h[12:]))
	if id+overflow >= w.hwm {
		return nil, 0, fmt.Sprintf("page %d runs past the end of the file (%d overflow pages)", id, overflow)
	}
	for p := id; p <= id+overflow; p++ {
		if w.seen[p] {
			return nil, 0, fmt.Sprintf("page %d is referenced twice", p)
		}
		w.seen[p] = true
	}
	if w.touched += overflow + 1; w.release != nil && w.touched >= releaseEvery {
		w.release()
		w.touched = 0
	}
	return w.data[off : off+int64(overflow+1)*w.ps], flags, ""
}

// freelist checks the free-list page (written when free-list sync is on).
func (w *walker) freelist(id uint64) string {
	p, flags, r := w.page(id, "free-list")
	if r != "" {
		return r
	}
	if flags != flagFreelist {
		return fmt.Sprintf("page %d has type %#x where the free list belongs", id, flags)
	}
	start, n := int64(pageHeaderSize), uint64(ne.Uint16(p[10:]))
	if n == 0xFFFF {
		n = ne.Uint64(p[start:])
		start += 8
	}
	if n > uint64(len(p)-int(start))/8 {
		return fmt.Sprintf("free-list page %d lists more pages than it holds", id)
	}
	for i := range n {
		if f := ne.Uint64(p[start+int64(i)*8:]); f < 2 || f >= w.hwm {
			return fmt.Sprintf("free-list page %d lists page %d, outside the file's %d pages", id, f, w.hwm)
		}
	}
	return ""
}

// element returns the key (and, for a leaf, the value and flags) of element
// i of page p (a page or an inline bucket's page), checking that it lies
// inside p.
func element(p []byte, i int, leaf bool) (key, val []byte, flags uint32, child uint64, ok bool) {
	e := int64(pageHeaderSize + i*elementSize)
	el := p[e : e+elementSize]
	var pos, ksize, vsize int64
	if leaf {
		flags = ne.Uint32(el[0:])
		pos, ksize, vsize = int64(ne.Uint32(el[4:])), int64(ne.Uint32(el[8:])), int64(ne.Uint32(el[12:]))
	} else {
		pos, ksize = int64(ne.Uint32(el[0:])), int64(ne.Uint32(el[4:]))
		child = ne.Uint64(el[8:])
	}
	start := e + pos
	if start+ksize+vsize > int64(len(p)) {
		return nil, nil, 0, 0, false
	}
	return p[start : start+ksize], p[start+ksize : start+ksize+vsize], flags, child, true
}

// tree checks the b+tree rooted at page id, whose keys must be >= min and
// < max (nil: unbounded), and returns the problem found. It mirrors bbolt's
// recursivelyCheckPageKeyOrder, which is no stricter.
func (w *walker) tree(id uint64, min, max []byte) string {
	_, r := w.treeMax(id, min, max)
	return r
}

func (w *walker) treeMax(id uint64, min, max []byte) (maxKey []byte, reason string) {
	p, flags, r := w.page(id, "data")
	if r != "" {
		return nil, r
	}
	return w.nodes(p, id, flags, min, max)
}

// nodes checks the elements of page p (page id, or 0 for an inline bucket).
func (w *walker) nodes(p []byte, id uint64, flags uint16, min, max []byte) (maxKey []byte, reason string) {
	if flags != flagBranch && flags != flagLeaf {
		return nil, fmt.Sprintf("page %d has type %#x where a branch or leaf page belongs", id, flags)
	}
	leaf := flags == flagLeaf
	n := int(ne.Uint16(p[10:]))
	if pageHeaderSize+n*elementSize > len(p) {
		return nil, fmt.Sprintf("page %d counts %d elements, more than it holds", id, n)
	}
	running := min
	for i := range n {
		key, val, eflags, child, ok := element(p, i, leaf)
		if !ok {
			return nil, fmt.Sprintf("element %d of page %d lies outside the page", i, id)
		}
		if i == 0 && running != nil && bytes.Compare(running, key) > 0 || i > 0 && bytes.Compare(running, key) >= 0 {
			return nil, fmt.Sprintf("keys out of order on page %d", id)
		}
		if max != nil && bytes.Compare(key, max) >= 0 {
			return nil, fmt.Sprintf("keys out of order on page %d", id)
		}
		if !leaf {
			next := max
			if i < n-1 {
				k, _, _, _, ok := element(p, i+1, false)
				if !ok {
					return nil, fmt.Sprintf("element %d of page %d lies outside the page", i+1, id)
				}
				next = k
			}
			sub, r := w.treeMax(child, key, next)
			if r != "" {
				return nil, r
			}
			running, maxKey = sub, sub
			continue
		}
		running, maxKey = key, key
		if eflags&flagBucketEntry != 0 {
			if r := w.bucket(val, id); r != "" {
				return nil, r
			}
		}
	}
	return maxKey, ""
}

// bucket checks a bucket stored as a value: its own tree, or the page
// inlined after its header.
func (w *walker) bucket(v []byte, in uint64) string {
	if len(v) < bucketHeader {
		return fmt.Sprintf("a bucket on page %d is cut short", in)
	}
	root := ne.Uint64(v)
	if root != 0 {
		return w.tree(root, nil, nil)
	}
	p := v[bucketHeader:]
	if len(p) < pageHeaderSize {
		return fmt.Sprintf("an inline bucket on page %d is cut short", in)
	}
	if flags := ne.Uint16(p[8:]); flags != flagLeaf {
		return fmt.Sprintf("an inline bucket on page %d has type %#x", in, flags)
	}
	_, r := w.nodes(p, in, flagLeaf, nil, nil)
	return r
}
