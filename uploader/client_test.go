package uploader

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// captured is one request as the server saw it.
type captured struct {
	header   http.Header
	fields   map[string]string
	fileName string
	fileType string
	file     []byte
	length   int64
	parseErr error
}

// captureServer records multipart uploads and answers with reply.
func captureServer(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []captured) {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := captured{header: r.Header.Clone(), fields: map[string]string{}, length: r.ContentLength}
		if r.Method == http.MethodPost {
			mr, err := r.MultipartReader()
			if err == nil {
				for {
					p, perr := mr.NextPart()
					if perr == io.EOF {
						break
					}
					if perr != nil {
						c.parseErr = perr
						break
					}
					b, rerr := io.ReadAll(p)
					if rerr != nil {
						c.parseErr = rerr
						break
					}
					if p.FormName() == "file" {
						c.fileName, c.fileType, c.file = p.FileName(), p.Header.Get("Content-Type"), b
					} else {
						c.fields[p.FormName()] = string(b)
					}
				}
			} else {
				c.parseErr = err
			}
		}
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		if c.parseErr != nil {
			w.WriteHeader(499)
			return
		}
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func testFile(t *testing.T, name, content string) (string, [32]byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256([]byte(content))
}

func TestPostProfileSendsEveryField(t *testing.T) {
	srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, `{"code":201,"message":"ok","data":{"profile_reference":"r","file_id":"abc123","file_name":"x","file_size":3,"extension":"pdf","date_reception":{"date":"2018-07-03 10:43:54.000000","timezone_type":3,"timezone":"UTC"}}}`)
	})
	c, err := NewClient(ClientOptions{BaseURL: srv.URL + "/", Key: "secret-key"})
	if err != nil {
		t.Fatal(err)
	}
	content := "%PDF-1.7 a CV"
	p, sha := testFile(t, "Jöhn \"Doe\" CV.pdf", content)
	md := []byte(`[{"filter_reference":"data-scientist","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null}]`)
	out, err := c.PostProfile(t.Context(), Upload{
		SourceID: testSource, Path: p, FileName: filepath.Base(p), Size: int64(len(content)), SHA256: sha,
		Reference: ReferenceFor(sha), Received: time.Unix(1530607434, 0), TrainingMetadata: md,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.FileID != "abc123" {
		t.Errorf("FileID = %q, want abc123", out.FileID)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.header.Get("X-Api-Key") != "secret-key" {
		t.Errorf("X-API-Key = %q", r.header.Get("X-Api-Key"))
	}
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt != "multipart/form-data" {
		t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
	}
	if r.length <= int64(len(content)) {
		t.Errorf("Content-Length = %d, want the known length of the whole body", r.length)
	}
	want := map[string]string{
		"source_id":           testSource,
		"profile_reference":   ReferenceFor(sha),
		"timestamp_reception": "1530607434",
		"training_metadata":   string(md),
	}
	for k, v := range want {
		if r.fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, r.fields[k], v)
		}
	}
	if len(r.fields) != len(want) {
		t.Errorf("fields = %v, want exactly %v", r.fields, want)
	}
	if len(ReferenceFor(sha)) > 64 {
		t.Errorf("reference %q is longer than 64", ReferenceFor(sha))
	}
	if string(r.file) != content || r.fileName != `Jöhn "Doe" CV.pdf` || r.fileType != "application/pdf" {
		t.Errorf("file part = %q named %q (%s)", r.file, r.fileName, r.fileType)
	}
}

func TestPostProfileOmitsUnsetFields(t *testing.T) {
	srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, `{"code":201,"message":"ok","data":{"file_id":"x"}}`)
	})
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL, Key: "k"})
	p, sha := testFile(t, "cv.docx", "docx bytes")
	if _, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, FileName: "cv.docx", Size: 10, SHA256: sha}); err != nil {
		t.Fatal(err)
	}
	r := got()[0]
	if len(r.fields) != 1 || r.fields["source_id"] != testSource {
		t.Errorf("fields = %v, want only source_id", r.fields)
	}
}

func TestPostProfileRefusesChangedFile(t *testing.T) {
	srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, `{"code":201,"message":"ok","data":{}}`)
	})
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL, Key: "k"})
	p, _ := testFile(t, "cv.pdf", "the new content")
	for _, tc := range []struct {
		name string
		size int64
		sha  [32]byte
	}{
		{"other content, same size", 15, sha256.Sum256([]byte("the old content"))},
		{"shrunk", 20, sha256.Sum256([]byte("the new content plus"))},
		{"grown", 7, sha256.Sum256([]byte("the new"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(got())
			_, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, FileName: "cv.pdf", Size: tc.size, SHA256: tc.sha})
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrChanged) {
				t.Fatalf("PostProfile = %v, want a FileError with ErrChanged", err)
			}
			if IsTransient(err) {
				t.Error("a changed file is reported transient; retrying cannot help")
			}
			for _, r := range got()[before:] {
				if r.parseErr == nil {
					t.Errorf("the server received a complete upload of a changed file: %q", r.file)
				}
			}
		})
	}
	if _, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: filepath.Join(t.TempDir(), "gone.pdf"), Size: 1}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

func TestClientErrorsAreTypedAndRedacted(t *testing.T) {
	const key = "sk_live_0123456789abcdef"
	for _, tc := range []struct {
		status           int
		body, retryAfter string
		wantMsg          string
		transient, auth  bool
		dup              bool
		wantRetryAfter   time.Duration
	}{
		{401, `{"code":401,"message":"Unauthorized. Invalid secret key: ` + key + ` for permission: write"}`, "", "Unauthorized. Invalid secret key: [redacted] for permission: write", false, true, false, 0},
		{402, `{"code":402,"message":"Over quota"}`, "", "Over quota", false, true, false, 0},
		{403, `{"code":403,"message":"Forbidden"}`, "", "Forbidden", false, true, false, 0},
		{400, `{"code":400,"message":"profile_reference already exists"}`, "", "profile_reference already exists", false, false, true, 0},
		{400, `{"code":400,"message":"Cannot create profile with this reference: x. Already used!"}`, "", "Cannot create profile with this reference: x. Already used!", false, false, true, 0},
		{400, `{"code":400,"message":"Invalid source_id: x"}`, "", "Invalid source_id: x", false, false, false, 0},
		{429, `{"code":429,"message":"slow down"}`, "3", "slow down", true, false, false, 3 * time.Second},
		{503, `<html>Service Unavailable</html>`, "", "<html>Service Unavailable</html>", true, false, false, 0},
		{500, ``, "", "", true, false, false, 0},
		{422, `{"code":422,"message":"Validation error"}`, "", "Validation error", false, false, false, 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.retryAfter != "" {
				w.Header().Set("Retry-After", tc.retryAfter)
			}
			writeJSON(w, tc.status, tc.body)
		}))
		c, _ := NewClient(ClientOptions{BaseURL: srv.URL, Key: key})
		_, err := c.GetProfile(t.Context(), testSource, "ref")
		srv.Close()
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Errorf("%d: err = %v, want *APIError", tc.status, err)
			continue
		}
		if ae.Status != tc.status || ae.Message != tc.wantMsg || ae.RetryAfter != tc.wantRetryAfter {
			t.Errorf("%d: APIError = %+v, want message %q, retry after %v", tc.status, ae, tc.wantMsg, tc.wantRetryAfter)
		}
		if strings.Contains(err.Error(), key) {
			t.Errorf("%d: error %q shows the API key", tc.status, err)
		}
		if IsTransient(err) != tc.transient || IsAuth(err) != tc.auth || IsDuplicateReference(err) != tc.dup {
			t.Errorf("%d %q: transient=%v auth=%v dup=%v, want %v %v %v", tc.status, tc.wantMsg,
				IsTransient(err), IsAuth(err), IsDuplicateReference(err), tc.transient, tc.auth, tc.dup)
		}
	}
}

func TestClientNetworkErrorIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	}))
	defer srv.Close()
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL, Key: "k"})
	p, sha := testFile(t, "cv.pdf", "x")
	_, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, Size: 1, SHA256: sha})
	if err == nil || !IsTransient(err) {
		t.Errorf("dropped connection: %v, transient=%v; want a transient error", err, IsTransient(err))
	}
}

// TestPostProfileStreams uploads a 256 MiB file and checks that the
// client's heap does not grow with it.
func TestPostProfileStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("large upload")
	}
	const size = 256 << 20
	p := filepath.Join(t.TempDir(), "big.pdf")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Not sparse: real bytes, written in chunks.
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	h := sha256.New()
	for range size / len(chunk) {
		f.Write(chunk)
		h.Write(chunk)
	}
	f.Close()
	var sha [32]byte
	h.Sum(sha[:0])
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mr, _ := r.MultipartReader()
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			n, _ := io.Copy(io.Discard, part)
			if part.FormName() == "file" {
				received.Store(n)
			}
		}
		writeJSON(w, 201, `{"code":201,"message":"ok","data":{}}`)
	}))
	defer srv.Close()
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL, Key: "k"})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	var peak uint64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	if _, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, FileName: "big.pdf", Size: size, SHA256: sha}); err != nil {
		t.Fatal(err)
	}
	close(done)
	sampler.Wait()
	runtime.ReadMemStats(&after)
	if received.Load() != size {
		t.Errorf("server received %d bytes, want %d", received.Load(), size)
	}
	if grow := int64(peak) - int64(before.HeapInuse); grow > 32<<20 {
		t.Errorf("heap grew by %d MiB during a %d MiB upload: not streamed", grow>>20, size>>20)
	}
}

func TestReferenceForIsStable(t *testing.T) {
	sha := sha256.Sum256([]byte("x"))
	if got := ReferenceFor(sha); got != "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" {
		t.Errorf("ReferenceFor = %q", got)
	}
}

func TestSourcesDecodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1.0/sources" || r.Header.Get("X-API-Key") != "k" {
			writeJSON(w, 404, `{"code":404,"message":"nope"}`)
			return
		}
		b, _ := json.Marshal(map[string]any{"code": 200, "message": "ok", "data": []map[string]any{{"source_id": testSource, "name": "api", "type": "api"}}})
		writeJSON(w, 200, string(b))
	}))
	defer srv.Close()
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL + "/v1.0", Key: "k"})
	s, err := c.Sources(t.Context())
	if err != nil || len(s) != 1 || s[0].SourceID != testSource {
		t.Errorf("Sources = %+v, %v", s, err)
	}
}

var _ = multipart.ErrMessageTooLarge

func TestClientObserve(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, `{"code":404,"message":"Profile not found"}`)
	}))
	var got []int
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL, Key: "k", Observe: func(s int, err error) { got = append(got, s) }})
	c.GetProfile(t.Context(), testSource, "r")
	srv.Close()
	c.GetProfile(t.Context(), testSource, "r") // connection refused
	if fmt.Sprint(got) != "[404 0]" {
		t.Errorf("observed %v, want [404 0]", got)
	}
}

func TestFiltersDecodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/filters" {
			writeJSON(w, 404, `{"code":404,"message":"nope"}`)
			return
		}
		writeJSON(w, 200, `{"code":200,"message":"ok","data":[{"filter_id":"f1","filter_reference":"data-scientist","name":"Data Scientist","archive":false}]}`)
	}))
	defer srv.Close()
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL, Key: "k"})
	f, err := c.Filters(t.Context())
	if err != nil || len(f) != 1 || f[0].FilterReference != "data-scientist" {
		t.Errorf("Filters = %+v, %v", f, err)
	}
}

// TestOpenIsInjected: both flavours open the file through Open, for the
// first attempt and for a rewound body; a refused open sends nothing.
func TestOpenIsInjected(t *testing.T) {
	p, sha := testFile(t, "cv.pdf", "the CV")
	refused := errors.New("outside the folder")
	for _, flavour := range []string{"riminder", "hrflow"} {
		t.Run(flavour, func(t *testing.T) {
			srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 201, `{"code":201,"message":"ok","data":{}}`)
			})
			var opened []string
			allow := true
			open := func(path string) (*os.File, error) {
				opened = append(opened, path)
				if !allow {
					return nil, &os.PathError{Op: "open", Path: path, Err: refused}
				}
				return os.Open(path)
			}
			var c interface {
				PostProfile(ctx context.Context, u Upload) (Uploaded, error)
			}
			var err error
			if flavour == "riminder" {
				c, err = NewClient(ClientOptions{BaseURL: srv.URL, Key: "k", Open: open})
			} else {
				c, err = NewHrFlowClient(HrFlowOptions{BaseURL: srv.URL, Key: "k", UserEmail: "hr@example.com", Open: open})
			}
			if err != nil {
				t.Fatal(err)
			}
			u := Upload{SourceID: testSource, Path: p, FileName: "cv.pdf", Size: 6, SHA256: sha}
			if _, err := c.PostProfile(t.Context(), u); err != nil {
				t.Fatal(err)
			}
			if len(opened) != 1 || opened[0] != p || len(got()) != 1 || string(got()[0].file) != "the CV" {
				t.Errorf("opened %q, server got %d uploads; want %s opened once and sent", opened, len(got()), p)
			}
			allow = false
			_, err = c.PostProfile(t.Context(), u)
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, refused) || IsTransient(err) {
				t.Errorf("refused open: %v, want a permanent *FileError wrapping the refusal", err)
			}
			if len(got()) != 1 {
				t.Errorf("the server got %d uploads, want nothing sent after a refused open", len(got()))
			}
		})
	}
}
