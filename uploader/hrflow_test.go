package uploader

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testEmail = "hr@example.com"

func newHrFlow(t *testing.T, base, key string) *HrFlowClient {
	t.Helper()
	c, err := NewHrFlowClient(HrFlowOptions{BaseURL: base, Key: key, UserEmail: testEmail})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewHrFlowClientChecksOptions(t *testing.T) {
	for _, tc := range []struct {
		o    HrFlowOptions
		want string
	}{
		{HrFlowOptions{BaseURL: "https://api.hrflow.ai/v1", Key: "k"}, "api user_email is empty"},
		{HrFlowOptions{BaseURL: "https://api.hrflow.ai/v1", Key: "k", UserEmail: "a@b\r\nX: y"}, "line break"},
		{HrFlowOptions{BaseURL: "https://api.hrflow.ai/v1", UserEmail: testEmail}, "api key is empty"},
		{HrFlowOptions{BaseURL: "api.hrflow.ai/v1", Key: "k", UserEmail: testEmail}, "want http(s)://host/path"},
	} {
		if _, err := NewHrFlowClient(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewHrFlowClient(%+v) = %v, want an error with %q", tc.o, err, tc.want)
		}
	}
}

func TestHrFlowPostSendsEveryField(t *testing.T) {
	var path string
	srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		writeJSON(w, 202, `{"code":202,"message":"Your profile as been sent successfully to the Parsing Queue.","data":[]}`)
	})
	c := newHrFlow(t, srv.URL+"/v1/", "secret-key")
	content := "%PDF-1.7 a CV"
	p, sha := testFile(t, "Jöhn \"Doe\" CV.pdf", content)
	md := []byte(`[{"filter_reference":"data-scientist","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null},
		{"filter_reference":"dev","stage":"YES","stage_timestamp":1530607434,"rating":3,"rating_timestamp":1530607435}]`)
	out, err := c.PostProfile(t.Context(), Upload{
		SourceID: testSource, Path: p, FileName: filepath.Base(p), Size: int64(len(content)), SHA256: sha,
		Reference: ReferenceFor(sha), Received: time.Date(2018, 7, 3, 10, 43, 54, 0, time.FixedZone("CEST", 7200)), TrainingMetadata: md,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.ProfileReference != ReferenceFor(sha) || out.FileID != "" {
		t.Errorf("Uploaded = %+v, want the reference sent and no id (202)", out)
	}
	if path != "/v1/profile/parsing/file" {
		t.Errorf("path = %q, want /v1/profile/parsing/file", path)
	}
	r := got()[0]
	if r.header.Get("X-Api-Key") != "secret-key" || r.header.Get("X-User-Email") != testEmail {
		t.Errorf("X-API-KEY = %q, X-USER-EMAIL = %q", r.header.Get("X-Api-Key"), r.header.Get("X-User-Email"))
	}
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt != "multipart/form-data" {
		t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
	}
	if r.length <= int64(len(content)) {
		t.Errorf("Content-Length = %d, want the known length of the whole body", r.length)
	}
	want := map[string]string{
		"source_key": testSource,
		"reference":  ReferenceFor(sha),
		"created_at": "2018-07-03T08:43:54+00:00",
		"labels": `[{"job_reference":"data-scientist","stage":"new","date_stage":null,"rating":null,"date_rating":null},` +
			`{"job_reference":"dev","stage":"yes","date_stage":"2018-07-03T08:43:54+00:00","rating":3,"date_rating":"2018-07-03T08:43:55+00:00"}]`,
		"tags":         "[]",
		"metadatas":    "[]",
		"sync_parsing": "0",
	}
	for k, v := range want {
		if r.fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, r.fields[k], v)
		}
	}
	if len(r.fields) != len(want) {
		t.Errorf("fields = %v, want exactly %v", r.fields, want)
	}
	if string(r.file) != content || r.fileName != `Jöhn "Doe" CV.pdf` || r.fileType != "application/pdf" {
		t.Errorf("file part = %q named %q (%s)", r.file, r.fileName, r.fileType)
	}
}

func TestHrFlowPostOmitsUnsetFields(t *testing.T) {
	srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 202, `{"code":202,"message":"queued","data":[]}`)
	})
	c := newHrFlow(t, srv.URL, "k")
	p, sha := testFile(t, "cv.docx", "docx bytes")
	if _, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, FileName: "cv.docx", Size: 10, SHA256: sha}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"source_key": testSource, "labels": "[]", "tags": "[]", "metadatas": "[]", "sync_parsing": "0"}
	if r := got()[0]; fmt.Sprint(r.fields) != fmt.Sprint(want) {
		t.Errorf("fields = %v, want %v", r.fields, want)
	}
}

// TestHrFlowWireFormat pins the order of the parts and the header names
// as they go on the wire (py-hf's spelling).
func TestHrFlowWireFormat(t *testing.T) {
	c := newHrFlow(t, "http://127.0.0.1:1/v1", "k")
	sha := sha256.Sum256([]byte("cv"))
	u := Upload{SourceID: testSource, Path: "cv.pdf", FileName: "cv.pdf", Size: 2, SHA256: sha, Reference: "ref", Received: time.Unix(1530607434, 0)}
	const boundary = "0123456789012345678901234567890123456789x"
	body := string(multipartPrefix(boundary, hrflowFields(u, []byte("[]")), u.FileName))
	var names []string
	for _, part := range strings.Split(body, "--"+boundary+"\r\n")[1:] {
		_, params, _ := mime.ParseMediaType(strings.TrimPrefix(strings.SplitN(part, "\r\n", 2)[0], "Content-Disposition: "))
		names = append(names, params["name"])
	}
	if got := strings.Join(names, ","); got != "source_key,reference,created_at,labels,tags,metadatas,sync_parsing,file" {
		t.Errorf("parts in order %s", got)
	}
	if !strings.Contains(body, "name=\"created_at\"\r\n\r\n2018-07-03T08:43:54+00:00\r\n") {
		t.Errorf("created_at part missing from %q", body)
	}
	h := http.Header{}
	c.auth(h)
	if fmt.Sprint(h) != "map[X-API-KEY:[k] X-USER-EMAIL:["+testEmail+"]]" {
		t.Errorf("auth headers = %v, want X-API-KEY and X-USER-EMAIL as written", h)
	}
}

func TestHrFlowLabels(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"", "[]", ""},
		{"null", "[]", ""},
		{" [] ", "[]", ""},
		{`[{"filter_reference":"a"}]`, `[{"job_reference":"a","stage":null,"date_stage":null,"rating":null,"date_rating":null}]`, ""},
		{`[{"filter_reference":"a","stage":"LATER","rating":4,"rating_timestamp":0}]`,
			`[{"job_reference":"a","stage":"later","date_stage":null,"rating":4,"date_rating":"1970-01-01T00:00:00+00:00"}]`, ""},
		{`[{"filter_reference":"a","stage":"NO"},{"filter_reference":"b","stage":"yes"}]`,
			`[{"job_reference":"a","stage":"no","date_stage":null,"rating":null,"date_rating":null},` +
				`{"job_reference":"b","stage":"yes","date_stage":null,"rating":null,"date_rating":null}]`, ""},
		{`{"filter_reference":"a"}`, "", "not a JSON array"},
		{`[{"stage":"NEW"}]`, "", "element 0: filter_reference is empty"},
		{`[{"filter_reference":"a","stage":"MAYBE"}]`, "", `element 0: stage "MAYBE"`},
		{`[{"filter_reference":"a","rating":2.5}]`, "", "element 0: rating 2.5"},
		{`[{"filter_reference":"a","stage_timestamp":"x"}]`, "", "not a JSON array"},
	} {
		got, err := hrflowLabels([]byte(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("hrflowLabels(%s) = %s, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || string(got) != tc.want):
			t.Errorf("hrflowLabels(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestHrFlowBadMetadataIsAnInputError(t *testing.T) {
	srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, `{"code":202,"data":[]}`) })
	c := newHrFlow(t, srv.URL, "k")
	p, sha := testFile(t, "cv.pdf", "x")
	_, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, Size: 1, SHA256: sha,
		TrainingMetadata: []byte(`[{"filter_reference":""}]`)})
	var ie *InputError
	if !errors.As(err, &ie) || IsTransient(err) || ie.Field != "training_metadata" {
		t.Errorf("PostProfile = %v (transient %v), want a permanent *InputError", err, IsTransient(err))
	}
	if n := len(got()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestHrFlowResponses(t *testing.T) {
	const key = "sk_0123456789abcdef"
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		wantErr int // APIError status; 0: success; -1: another error
		fileID  string
		dup     bool
	}{
		{"async 202", 202, `{"code":202,"message":"Your profile as been sent successfully to the Parsing Queue.","data":[]}`, 0, "", false},
		{"sync 201", 201, `{"code":201,"message":"Profile parsed successfully.","data":{"parsing":{},"profile":{"key":"pk1","reference":"r"}}}`, 0, "pk1", false},
		{"201 with an odd profile", 201, `{"code":201,"message":"ok","data":{"profile":[]}}`, 0, "", false},
		{"200 with an error code", 200, `{"code":400,"message":"Invalid source fields"}`, 400, "", false},
		{"2xx not JSON", 202, `<html>ok</html>`, -1, "", false},
		{"duplicate, sandbox", 400, `{"code":400,"message":"Profile reference already exists in this source"}`, 400, "", true},
		{"duplicate, HrFlow indexing", 400, `{"code":400,"message":"Cannot create profile with this reference: r. Already used!"}`, 400, "", true},
		{"duplicate, connectors", 400, `{"code":400,"message":"Can't create Profile with reference=r already exists"}`, 400, "", true},
		{"duplicate, 409", 409, `{"code":409,"message":"reference already exists"}`, 409, "", true},
		{"invalid source", 400, `{"code":400,"message":"Invalid source fields"}`, 400, "", false},
		{"bad key", 401, `{"code":401,"message":"Unauthorized. Invalid secret key: ` + key + ` for permission: write"}`, 401, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tc.status, tc.body) }))
			defer srv.Close()
			c := newHrFlow(t, srv.URL, key)
			p, sha := testFile(t, "cv.pdf", "x")
			out, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, Size: 1, SHA256: sha, Reference: "r"})
			switch {
			case tc.wantErr == 0 && (err != nil || out.FileID != tc.fileID || out.ProfileReference != "r"):
				t.Errorf("PostProfile = %+v, %v; want success with file id %q", out, err, tc.fileID)
			case tc.wantErr > 0 && StatusOf(err) != tc.wantErr:
				t.Errorf("PostProfile = %v, want an *APIError %d", err, tc.wantErr)
			case tc.wantErr < 0 && (err == nil || StatusOf(err) != 0):
				t.Errorf("PostProfile = %v, want a non-API error", err)
			}
			if IsDuplicateReference(err) != tc.dup {
				t.Errorf("IsDuplicateReference(%v) = %v, want %v", err, !tc.dup, tc.dup)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
}

func TestHrFlowGetProfile(t *testing.T) {
	var query url.Values
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query, path = r.URL.Query(), r.URL.Path
		switch query.Get("reference") {
		case "found":
			writeJSON(w, 200, `{"code":200,"message":"Profile indexing","data":{"key":"pk","reference":"found","source":{"key":"`+testSource+`"}}}`)
		case "gone":
			writeJSON(w, 400, `{"code":400,"message":"Unable to find object: profile"}`)
		default:
			writeJSON(w, 404, `{"code":404,"message":"Profile not found"}`)
		}
	}))
	defer srv.Close()
	c := newHrFlow(t, srv.URL+"/v1", "k")
	p, err := c.GetProfile(t.Context(), testSource, "found")
	if err != nil || p.ProfileID != "pk" || p.ProfileReference != "found" || p.SourceID != testSource {
		t.Errorf("GetProfile = %+v, %v", p, err)
	}
	if path != "/v1/profile/indexing" || query.Get("source_key") != testSource || len(query) != 2 {
		t.Errorf("GET %s?%s, want /v1/profile/indexing?source_key=…&reference=…", path, query.Encode())
	}
	for ref, status := range map[string]int{"gone": 400, "nope": 404} {
		if _, err := c.GetProfile(t.Context(), testSource, ref); StatusOf(err) != status || IsDuplicateReference(err) || IsTransient(err) {
			t.Errorf("GetProfile(%s) = %v, want a plain %d", ref, err, status)
		}
	}
}

func TestHrFlowSourcesPages(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		asked = append(asked, q.Encode())
		page, _ := strconv.Atoi(q.Get("page"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		const total = 65
		var data []map[string]any
		for i := (page - 1) * limit; i < min(total, page*limit); i++ {
			data = append(data, map[string]any{"key": fmt.Sprintf("%040d", i), "name": "s" + strconv.Itoa(i), "type": "api"})
		}
		b, _ := json.Marshal(map[string]any{"code": 200, "message": "Source list",
			"meta": map[string]int{"page": page, "maxPage": (total + limit - 1) / limit, "count": len(data), "total": total}, "data": data})
		writeJSON(w, 200, string(b))
	}))
	defer srv.Close()
	s, err := newHrFlow(t, srv.URL, "k").Sources(t.Context())
	if err != nil || len(s) != 65 || s[64].SourceID != fmt.Sprintf("%040d", 64) || s[0].Name != "s0" || s[0].Type != "api" {
		t.Fatalf("Sources = %d sources, %v", len(s), err)
	}
	if fmt.Sprint(asked) != "[limit=30&page=1 limit=30&page=2 limit=30&page=3]" {
		t.Errorf("asked %v", asked)
	}

	// A server that ignores paging is asked twice, not forever.
	n := 0
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		var data []map[string]string
		for i := range 30 {
			data = append(data, map[string]string{"key": strconv.Itoa(i)})
		}
		b, _ := json.Marshal(map[string]any{"code": 200, "message": "ok", "meta": "odd", "data": data})
		writeJSON(w, 200, string(b))
	}))
	defer srv2.Close()
	if s, err := newHrFlow(t, srv2.URL, "k").Sources(t.Context()); err != nil || len(s) != 30 || n != 2 {
		t.Errorf("Sources against a server ignoring page = %d sources in %d requests, %v", len(s), n, err)
	}
}

func TestHrFlowRefusesChangedFile(t *testing.T) {
	srv, got := captureServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, `{"code":202,"data":[]}`) })
	c := newHrFlow(t, srv.URL, "k")
	p, _ := testFile(t, "cv.pdf", "the new content")
	_, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: p, Size: 15, SHA256: sha256.Sum256([]byte("the old content"))})
	if !errors.Is(err, ErrChanged) || IsTransient(err) {
		t.Fatalf("PostProfile = %v, want ErrChanged", err)
	}
	for _, r := range got() {
		if r.parseErr == nil {
			t.Errorf("the server received a complete upload of a changed file")
		}
	}
}

// The HrFlow client is an API for the pool.
var _ API = (*HrFlowClient)(nil)
