package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// patternReader yields n bytes by repeating a random block; it holds only
// the block in memory.
type patternReader struct {
	block []byte
	off   int
	n     int64
}

func newPatternReader(n int64) *patternReader {
	block := make([]byte, 64<<10+13) // odd size, so block edges wander
	r := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	return &patternReader{block: block, n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n)]
	n := 0
	for n < len(b) {
		c := copy(b[n:], p.block[p.off:])
		n += c
		p.off = (p.off + c) % len(p.block)
	}
	p.n -= int64(n)
	return n, nil
}

// TestStreamingUpload posts a 200 MiB file generated on the fly and checks
// the server's heap stays far below the file size, the hash is right and
// the file lands in Dir.
func TestStreamingUpload(t *testing.T) {
	size := int64(200 << 20)
	if testing.Short() {
		size = 20 << 20
	}
	dir := t.TempDir()
	s, srv := start(t, Options{Dir: dir})

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	clientSum := sha256.New()
	go func() {
		mw.WriteField("source_id", srcA)
		fw, err := mw.CreateFormFile("file", "big.pdf")
		if err == nil {
			_, err = io.Copy(fw, io.TeeReader(newPatternReader(size), clientSum))
		}
		if err == nil {
			mw.WriteField("profile_reference", "big") // a field after the file
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	})
	r := do(t, http.MethodPost, srv.URL+"/profile", "k", mw.FormDataContentType(), pr)
	close(stop)
	wg.Wait()

	if r.status != 201 {
		t.Fatalf("POST /profile = %d %s", r.status, r.Message)
	}
	t.Logf("heap delta %d KiB", (int64(peak.Load())-int64(base))>>10)
	if delta := int64(peak.Load()) - int64(base); delta > 32<<20 {
		t.Errorf("heap grew by %d MiB during a %d MiB upload, want < 32 MiB", delta>>20, size>>20)
	}
	want := hex.EncodeToString(clientSum.Sum(nil))
	p := s.Profiles()[0]
	if p.SHA256 != want || p.FileSize != size || p.ProfileReference != "big" {
		t.Errorf("stored %s (%d bytes, reference %q), want %s (%d bytes, big)", p.SHA256, p.FileSize, p.ProfileReference, want, size)
	}
	f, err := os.Open(filepath.Join(dir, want))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != want {
		t.Errorf("Dir/<sha256> content differs: %v", err)
	}
}

// TestAbortedUploadLeavesNoFile cuts a connection in the middle of the file
// part: the temporary file must go away and nothing is stored.
func TestAbortedUploadLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	s, srv := start(t, Options{Dir: dir})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	head := "POST /profile HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Type: multipart/form-data; boundary=B\r\n" +
		"Content-Length: 10000000\r\n\r\n" +
		"--B\r\nContent-Disposition: form-data; name=\"source_id\"\r\n\r\n" + srcA + "\r\n" +
		"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cv.pdf\"\r\n\r\n" + strings.Repeat("x", 100000)
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	// Wait for the temporary file to exist, then cut the connection.
	deadline := time.Now().Add(5 * time.Second)
	for len(dirFiles(t, dir)) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if files := dirFiles(t, dir); len(files) != 1 || !strings.HasPrefix(files[0], ".upload-") {
		t.Fatalf("during the upload dir = %v, want one temporary file", files)
	}
	conn.Close()
	for len(dirFiles(t, dir)) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if files := dirFiles(t, dir); len(files) != 0 {
		t.Errorf("after an aborted upload dir = %v, want empty", files)
	}
	if n := len(s.Profiles()); n != 0 {
		t.Errorf("%d profiles stored, want 0", n)
	}
}
