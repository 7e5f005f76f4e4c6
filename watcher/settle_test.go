package watcher

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fakeFS is the stat of the settler tests.
type fakeFS map[string]*fakeInfo

type fakeInfo struct {
	name  string
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

func (f *fakeInfo) Name() string       { return f.name }
func (f *fakeInfo) Size() int64        { return f.size }
func (f *fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f *fakeInfo) ModTime() time.Time { return f.mtime }
func (f *fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f *fakeInfo) Sys() any           { return &syscall.Stat_t{Ino: 1} }

func (fsys fakeFS) stat(p string) (fs.FileInfo, error) {
	fi, ok := fsys[p]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
	c := *fi
	return &c, nil
}

// write sets a file's size, with the mtime of now.
func (fsys fakeFS) write(p string, size int64) {
	fsys[p] = &fakeInfo{name: p, size: size, mtime: time.Now(), mode: 0o644}
}

// fakeWriters answers like procWriters, gap included, from a set.
type fakeWriters struct {
	busy  map[string]bool
	calls []time.Time
	last  time.Time
	none  bool // no /proc
}

func (f *fakeWriters) openForWrite(paths map[string]bool) (map[string]bool, time.Duration, bool) {
	if f.none {
		return nil, 0, false
	}
	now := time.Now()
	if !f.last.IsZero() && now.Sub(f.last) < procGap {
		return nil, procGap - now.Sub(f.last), true
	}
	f.last = now
	f.calls = append(f.calls, now)
	out := map[string]bool{}
	for p := range paths {
		if f.busy[p] {
			out[p] = true
		}
	}
	return out, 0, true
}

func newTestSettler(settle time.Duration) (*settler, fakeFS, *fakeWriters) {
	fsys := fakeFS{}
	wr := &fakeWriters{busy: map[string]bool{}}
	s := newSettler(settle, fsys.stat, slog.New(slog.DiscardHandler), nil)
	s.writers = wr
	s.trustMtime = true
	return s, fsys, wr
}

// runUntil runs the settler as its loop does, with one timer, until d has
// passed; it returns the files found complete and when.
func runUntil(s *settler, d time.Duration) map[string]time.Duration {
	start := time.Now()
	end := start.Add(d)
	out := map[string]time.Duration{}
	for {
		at, ok := s.next()
		if !ok || at.After(end) {
			time.Sleep(time.Until(end))
			return out
		}
		time.Sleep(time.Until(at))
		for _, f := range s.check(time.Now()) {
			out[f.abs] = time.Since(start)
		}
	}
}

func TestSettlerWaitsSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fsys, _ := newTestSettler(2 * time.Second)
		fsys.write("/f/a.pdf", 10)
		s.touch("/f/a.pdf", "a.pdf", touchOther, time.Now())
		if got := runUntil(s, 1999*time.Millisecond); len(got) != 0 {
			t.Fatalf("complete before settle: %v", got)
		}
		if got := runUntil(s, time.Millisecond); len(got) != 1 {
			t.Fatalf("not complete after settle")
		}
		if s.gauge.Load() != 0 || len(s.files) != 0 {
			t.Errorf("a complete file is still pending")
		}
	})
}

func TestSettlerChangeStartsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fsys, _ := newTestSettler(time.Second)
		fsys.write("/f/a.pdf", 10)
		s.observe("/f/a.pdf", "a.pdf", must(fsys.stat("/f/a.pdf")), time.Now())
		runUntil(s, 600*time.Millisecond)
		fsys.write("/f/a.pdf", 20) // grows, without an event (poll mode)
		got := runUntil(s, 2*time.Second)
		// Seen changed at the 1 s look, complete 1 s after its mtime.
		if d, ok := got["/f/a.pdf"]; !ok || d != 1000*time.Millisecond {
			t.Errorf("complete after %v (ok %v), want 1.6s from the start (1s after the change)", d, ok)
		}
	})
}

func TestSettlerWriteInProgressWhateverTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fsys, _ := newTestSettler(time.Second)
		fsys.write("/f/scan.pdf", 10)
		s.touch("/f/scan.pdf", "scan.pdf", touchOther, time.Now())
		s.touch("/f/scan.pdf", "scan.pdf", touchModify, time.Now())
		if got := runUntil(s, 30*time.Second); len(got) != 0 {
			t.Fatalf("complete while written (IN_MODIFY, no IN_CLOSE_WRITE): %v", got)
		}
		// fsnotify's write event, late, does not set the flag again.
		s.touch("/f/scan.pdf", "scan.pdf", touchCloseWrite, time.Now())
		s.touch("/f/scan.pdf", "scan.pdf", touchWrite, time.Now())
		if got := runUntil(s, 1100*time.Millisecond); len(got) != 1 {
			t.Errorf("not complete 1s after the close")
		}
	})
}

func TestSettlerProcWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fsys, wr := newTestSettler(time.Second)
		for i := range 50 {
			p := fmt.Sprintf("/f/%d.pdf", i)
			fsys.write(p, 10)
			s.touch(p, p[3:], touchOther, time.Now())
			time.Sleep(37 * time.Millisecond)
		}
		wr.busy["/f/7.pdf"] = true
		got := runUntil(s, 10*time.Second)
		if len(got) != 49 {
			t.Fatalf("%d complete, want all but the one open for writing", len(got))
		}
		if _, ok := got["/f/7.pdf"]; ok {
			t.Fatal("a file open for writing was taken")
		}
		for i := 1; i < len(wr.calls); i++ {
			if gap := wr.calls[i].Sub(wr.calls[i-1]); gap < procGap {
				t.Fatalf("/proc scanned twice within %v", gap)
			}
		}
		// One scan serves many files: far fewer scans than files.
		if len(wr.calls) > 30 {
			t.Errorf("%d scans of /proc for 50 files", len(wr.calls))
		}
		// Each file waited at most one gap past settle. runUntil started
		// when the last file was touched, 50×37 ms after the first.
		for i := range 50 {
			due := max(0, time.Duration(i-50)*37*time.Millisecond+time.Second)
			if d, ok := got[fmt.Sprintf("/f/%d.pdf", i)]; ok && d > due+procGap {
				t.Errorf("file %d complete %v after the start, due at %v", i, d, due)
			}
		}
		delete(wr.busy, "/f/7.pdf")
		if got := runUntil(s, 6*time.Second); len(got) != 1 {
			t.Errorf("the file was not taken once its writer closed it")
		}
	})
}

func TestSettlerOldFileCompleteAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, trust := range []bool{true, false} {
			s, fsys, _ := newTestSettler(2 * time.Second)
			s.trustMtime = trust
			fsys["/f/old.pdf"] = &fakeInfo{size: 10, mtime: time.Now().Add(-time.Hour), mode: 0o644}
			s.observe("/f/old.pdf", "old.pdf", must(fsys.stat("/f/old.pdf")), time.Now())
			got := runUntil(s, 5*time.Second)
			want := time.Duration(0)
			if !trust {
				want = 2 * time.Second // a network share's clock is not ours
			}
			if d, ok := got["/f/old.pdf"]; !ok || d != want {
				t.Errorf("trustMtime %v: complete after %v (%v), want %v", trust, d, ok, want)
			}
		}
	})
}

func TestSettlerForgetsVanishedFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fsys, _ := newTestSettler(time.Second)
		for _, p := range []string{"/f/a.pdf", "/f/sub/b.pdf", "/f/sub/c.pdf", "/f/d.pdf"} {
			fsys.write(p, 10)
			s.touch(p, p[3:], touchOther, time.Now())
		}
		runUntil(s, 100*time.Millisecond)
		delete(fsys, "/f/a.pdf")           // deleted, no event seen
		s.forgetUnder("/f/sub")            // directory removed
		fsys["/f/d.pdf"].mode = fs.ModeDir // replaced by a directory
		got := runUntil(s, 3*time.Second)
		if len(got) != 0 || s.gauge.Load() != 0 || len(s.files) != 0 || len(s.queue) != 0 {
			t.Errorf("complete %v, pending %d; want nothing", got, s.gauge.Load())
		}
	})
}

func TestSettlerWithoutProc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fsys, wr := newTestSettler(time.Second)
		wr.none = true
		fsys.write("/f/a.pdf", 10)
		s.touch("/f/a.pdf", "a.pdf", touchOther, time.Now())
		if got := runUntil(s, 2*time.Second); got["/f/a.pdf"] != time.Second {
			t.Errorf("without /proc: %v, want complete after settle", got)
		}
	})
}

// TestSettlerManyFiles: one heap, right order, every file once.
func TestSettlerManyFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fsys, _ := newTestSettler(500 * time.Millisecond)
		var want []string
		for i := range 2000 {
			p := fmt.Sprintf("/f/%04d.pdf", i)
			want = append(want, p)
			fsys.write(p, 10)
			s.touch(p, p[3:], touchOther, time.Now())
			if i%3 == 0 {
				s.touch(p, p[3:], touchWrite, time.Now()) // debounced
			}
			time.Sleep(time.Millisecond)
		}
		got := runUntil(s, 5*time.Second)
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Errorf("%d files complete, want %d", len(keys), len(want))
		}
	})
}

func must(fi fs.FileInfo, err error) fs.FileInfo {
	if err != nil {
		panic(err)
	}
	return fi
}

// TestProcWritersGap: the real /proc reader scans at most every procGap.
func TestProcWritersGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newProcWriters()
		if _, wait, ok := p.openForWrite(map[string]bool{"/x": true}); !ok || wait != 0 {
			t.Fatalf("first scan: wait %v, ok %v", wait, ok)
		}
		time.Sleep(100 * time.Millisecond)
		if _, wait, _ := p.openForWrite(map[string]bool{"/x": true}); wait != 400*time.Millisecond {
			t.Errorf("second scan after 100ms: wait %v, want 400ms", wait)
		}
		time.Sleep(400 * time.Millisecond)
		if _, wait, _ := p.openForWrite(map[string]bool{"/x": true}); wait != 0 {
			t.Errorf("scan after 500ms: wait %v, want 0", wait)
		}
	})
}

func TestProcWritersFindsWriters(t *testing.T) {
	dir := t.TempDir()
	wpath, rpath, rwpath := dir+"/w.pdf", dir+"/r.pdf", dir+"/rw.pdf"
	wf, err := os.OpenFile(wpath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	rwf, err := os.OpenFile(rwpath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer rwf.Close()
	write(t, rpath, "read only")
	rf, err := os.Open(rpath)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	p := newProcWriters()
	got, _, ok := p.openForWrite(map[string]bool{wpath: true, rpath: true, rwpath: true, dir + "/none.pdf": true})
	if !ok {
		t.Skip("no readable /proc here")
	}
	if !got[wpath] || !got[rwpath] || got[rpath] || len(got) != 2 {
		t.Errorf("writers %v, want %s and %s", got, wpath, rwpath)
	}
}

// TestProcWritersSkipsWhatItCannotRead: a fake /proc with a process whose
// fd directory is unreadable, links that are not files, and a bad fdinfo.
func TestProcWritersSkipsWhatItCannotRead(t *testing.T) {
	root := t.TempDir()
	self := fmt.Sprint(os.Getpid())
	mk := func(pid, fd, target, flags string) {
		os.MkdirAll(root+"/"+pid+"/fd", 0o755)
		os.MkdirAll(root+"/"+pid+"/fdinfo", 0o755)
		os.Symlink(target, root+"/"+pid+"/fd/"+fd)
		if flags != "" {
			os.WriteFile(root+"/"+pid+"/fdinfo/"+fd, []byte("pos:\t0\nflags:\t"+flags+"\nmnt_id:\t1\n"), 0o644)
		}
	}
	mk(self, "0", "/dev/null", "0100002")
	mk("100", "3", "/cv/a.pdf", "0100001") // O_WRONLY
	mk("100", "4", "socket:[1234]", "02")  // not a file
	mk("101", "3", "/cv/b.pdf", "0100000") // O_RDONLY
	mk("102", "3", "/cv/c.pdf", "garbage") // unparsable
	mk("103", "3", "/cv/d.pdf", "")        // no fdinfo: gone meanwhile
	os.WriteFile(root+"/104", []byte("not a process"), 0o644)
	os.MkdirAll(root+"/sys", 0o755)
	p := &procWriters{root: root, gap: procGap, buf: make([]byte, 4096)}
	got, _, ok := p.openForWrite(map[string]bool{"/cv/a.pdf": true, "/cv/b.pdf": true, "/cv/c.pdf": true, "/cv/d.pdf": true})
	if !ok || !got["/cv/a.pdf"] || len(got) != 1 {
		t.Errorf("writers %v (ok %v), want only /cv/a.pdf", got, ok)
	}
	p = &procWriters{root: t.TempDir(), gap: procGap, buf: make([]byte, 4096)}
	if _, _, ok := p.openForWrite(map[string]bool{"/cv/a.pdf": true}); ok {
		t.Error("a /proc without our own process was taken as readable")
	}
}
