package mailpart

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// b64Stream produces n random bytes base64-encoded in 76-column lines,
// without holding them, hashing the raw bytes as it goes.
type b64Stream struct {
	rng  *rand.ChaCha8
	left int64
	raw  [57]byte
	buf  []byte
	line []byte // unread part of buf
	sum  hash.Hash
}

func newB64Stream(n int64) *b64Stream {
	return &b64Stream{rng: rand.NewChaCha8([32]byte{7}), left: n, sum: sha256.New()}
}

func (s *b64Stream) Read(p []byte) (int, error) {
	if len(s.line) == 0 {
		if s.left == 0 {
			return 0, io.EOF
		}
		raw := s.raw[:min(int64(len(s.raw)), s.left)]
		s.rng.Read(raw)
		s.sum.Write(raw)
		s.left -= int64(len(raw))
		s.buf = append(base64.StdEncoding.AppendEncode(s.buf[:0], raw), '\r', '\n')
		s.line = s.buf
	}
	n := copy(p, s.line)
	s.line = s.line[n:]
	return n, nil
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	data := []byte("%PDF-1.4\nhello\n")
	want := sha256.Sum256(data)
	enc := base64.StdEncoding.EncodeToString(data)

	path, sha, size, err := Spool(dir, "base64", iotest.HalfReader(strings.NewReader(enc)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sha != want || size != int64(len(data)) || path != filepath.Join(dir, hex.EncodeToString(want[:])) {
		t.Errorf("Spool = %s, %x, %d, want %x, %d", path, sha, size, want, len(data))
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, data) {
		t.Errorf("spooled %q, want %q", got, data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}

	// The same content again, differently encoded: one file.
	path2, sha2, _, err := Spool(dir, "quoted-printable", strings.NewReader("%PDF-1.4=0Ahello=0A"), 0)
	if err != nil || path2 != path || sha2 != want {
		t.Errorf("Spool again = %s, %x, %v, want %s", path2, sha2, err, path)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("spool dir holds %v, want one file", names)
	}

	// Over max, a bad encoding, a read error: nothing left behind.
	if _, _, _, err := Spool(dir, "base64", strings.NewReader(enc), int64(len(data)-1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Spool over max: error %v, want ErrTooLarge", err)
	}
	if _, _, _, err := Spool(dir, "base64", strings.NewReader(enc), int64(len(data))); err != nil {
		t.Errorf("Spool at exactly max: %v", err)
	}
	if _, _, _, err := Spool(dir, "x-binhex", strings.NewReader(enc), 0); !errors.Is(err, ErrUnsupportedEncoding) {
		t.Errorf("Spool x-binhex: error %v, want ErrUnsupportedEncoding", err)
	}
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader(enc[:8]), iotest.ErrReader(boom))
	if _, _, _, err := Spool(dir, "base64", r, 0); !errors.Is(err, boom) {
		t.Errorf("Spool with a read error: error %v, want %v", err, boom)
	}
	if _, _, _, err := Spool(filepath.Join(dir, "missing"), "7bit", strings.NewReader("x"), 0); err == nil {
		t.Error("Spool into a missing dir: no error")
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("spool dir holds %v after failures, want the one file", names)
	}
}

// TestSpoolStreams spools a 16 MiB base64 part and checks that memory
// stays far below the part's size.
func TestSpoolStreams(t *testing.T) {
	const n = 16 << 20
	if testing.Short() {
		t.Skip("16 MiB part")
	}
	dir := t.TempDir()
	src := newB64Stream(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	path, sha, size, err := Spool(dir, "base64", src, n)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if size != n || !bytes.Equal(sha[:], src.sum.Sum(nil)) {
		t.Errorf("Spool = size %d sha %x, want %d %x", size, sha, n, src.sum.Sum(nil))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("spooled %d MiB with %d KiB allocated", n>>20, alloc>>10)
	if alloc > 1<<20 {
		t.Errorf("Spool of %d bytes allocated %d bytes, want under 1 MiB", n, alloc)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != n {
		t.Errorf("spool file: %v, %v", fi, err)
	}
	// Over max: aborted, no temp file left.
	if _, _, _, err := Spool(dir, "base64", newB64Stream(n), n-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Spool over max: error %v, want ErrTooLarge", err)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("spool dir holds %v, want one file", names)
	}
}

// TestSpoolRefreshesMtime: content spooled again makes its file recent,
// so that the spool cleaner (files over an hour old) keeps it.
func TestSpoolRefreshesMtime(t *testing.T) {
	dir := t.TempDir()
	p1, _, _, err := Spool(dir, "binary", strings.NewReader("%PDF-1.4 same"), 0)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(p1, old, old); err != nil {
		t.Fatal(err)
	}
	p2, _, _, err := Spool(dir, "binary", strings.NewReader("%PDF-1.4 same"), 0)
	if err != nil || p2 != p1 {
		t.Fatalf("Spool again = %q, %v; want %q", p2, err, p1)
	}
	if fi, err := os.Stat(p1); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("mtime after a second Spool: %v (%v), want now", fi.ModTime(), err)
	}
}
