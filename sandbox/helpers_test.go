package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"testing"
)

// Source ids in the Riminder format (from py-rim and go-rim examples).
const (
	srcA = "7c94e981cd23d16f5c549eea21a7554db0c927a7"
	srcB = "be50e7e57f4ad045ac8c406e7b665d409be9e363"
	srcC = "0123456789abcdef0123456789abcdef01234567" // valid form, not listed
)

// part is one multipart part of a test upload.
type part struct {
	name     string
	value    string
	file     bool   // a file part
	filename string // for a file part; "" sends no filename parameter
}

func field(name, value string) part { return part{name: name, value: value} }

func filePart(filename, content string) part {
	return part{name: "file", value: content, file: true, filename: filename}
}

// multipartBody builds a form in the given order of parts.
func multipartBody(t *testing.T, parts ...part) (body []byte, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		switch {
		case p.file && p.filename != "":
			w, err = mw.CreateFormFile(p.name, p.filename)
		case p.file:
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="`+p.name+`"`)
			h.Set("Content-Type", "application/octet-stream")
			w, err = mw.CreatePart(h)
		default:
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, p.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// start runs a sandbox behind an httptest server, both closed at cleanup.
func start(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// apiResponse is a decoded API response.
type apiResponse struct {
	status  int
	header  http.Header
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Meta    json.RawMessage `json:"meta"` // HrFlow lists only
	Data    json.RawMessage `json:"data"`
}

// do sends a request and checks what every API response must satisfy:
// Content-Type exactly application/json and an envelope whose code is the
// HTTP status.
func do(t *testing.T, method, url, key, contentType string, body io.Reader) apiResponse {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("X-API-Key", key)
	}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return doHeader(t, method, url, h, body)
}

// doHeader is do with the request headers given as they go on the wire.
func doHeader(t *testing.T, method, url string, h http.Header, body io.Reader) apiResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, url, ct)
	}
	var r apiResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, url, raw, err)
	}
	if r.Code != resp.StatusCode {
		t.Errorf("%s %s: code %d, HTTP status %d", method, url, r.Code, resp.StatusCode)
	}
	r.status, r.header = resp.StatusCode, resp.Header
	return r
}

func get(t *testing.T, url, key string) apiResponse {
	t.Helper()
	return do(t, http.MethodGet, url, key, "", nil)
}

// upload posts a form built from parts to /profile.
func upload(t *testing.T, base, key string, parts ...part) apiResponse {
	t.Helper()
	body, ct := multipartBody(t, parts...)
	return do(t, http.MethodPost, base+"/profile", key, ct, bytes.NewReader(body))
}

// decode unmarshals raw into v, failing the test on error.
func decode(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

// keysOf returns the sorted keys of a JSON object.
func keysOf(t *testing.T, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	decode(t, raw, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// dirFiles lists the names in dir, hidden temporary files included.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func isHex(s string, n int) bool {
	return len(s) == n && strings.Trim(s, "0123456789abcdef") == ""
}
