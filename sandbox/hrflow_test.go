package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const testEmail = "hr@example.com"

// hrflowHeader is what py-hf sends: X-API-KEY and X-USER-EMAIL, in
// capitals on the wire. "-" leaves a header out.
func hrflowHeader(key, email string) http.Header {
	h := http.Header{}
	if key != "-" {
		h["X-API-KEY"] = []string{key}
	}
	if email != "-" {
		h["X-USER-EMAIL"] = []string{email}
	}
	return h
}

// hrflowUpload posts a form built from parts to /v1/profile/parsing/file.
func hrflowUpload(t *testing.T, base, key, email string, parts ...part) apiResponse {
	t.Helper()
	body, ct := multipartBody(t, parts...)
	h := hrflowHeader(key, email)
	h.Set("Content-Type", ct)
	return doHeader(t, http.MethodPost, base+"/v1/profile/parsing/file", h, bytes.NewReader(body))
}

func hrflowGet(t *testing.T, u, key, email string) apiResponse {
	t.Helper()
	return doHeader(t, http.MethodGet, u, hrflowHeader(key, email), nil)
}

const fullLabels = `[{"job_reference":"developer","stage":"yes","date_stage":"2018-07-03T08:43:54+00:00","rating":2,"date_rating":null},
 {"job_key":"` + srcC + `","board_key":"b","stage":"later","stage_timestamp":1585662186,"rating":0.5,"extra":{"x":1}},
 {"job_reference":"data-scientist","stage":null}]`

func TestParsingFileValidation(t *testing.T) {
	cv := filePart("cv.pdf", "%PDF-1.4 fake")
	src := field("source_key", srcA)
	with := func(name, v string) []part { return []part{src, cv, field(name, v)} }
	const badArray = "not a JSON array of objects"
	i64 := func(n int64) *int64 { return &n }

	tests := []struct {
		name       string
		open       bool
		key, email string   // "" uses secret / testEmail; "-" sends none
		pre        [][]part // uploads accepted before the one under test
		preV10     [][]part // the same through POST /profile
		parts      []part
		raw, rawCT string
		status     int
		msg        string
		labels     string // accepted: stored training_metadata
		ts         *int64 // accepted: stored timestamp_reception
	}{
		{name: "json body", raw: `{"source_key":"x"}`, rawCT: "application/json", status: 400,
			msg: "Invalid request: a multipart/form-data body is required"},
		{name: "no file part", parts: []part{src, field("reference", "r")}, status: 400, msg: "Missing file"},
		{name: "file part without filename", parts: []part{src, {name: "file", value: "x", file: true}}, status: 400, msg: "Missing file"},
		{name: "empty file", parts: []part{src, filePart("cv.pdf", "")}, status: 400, msg: "Empty file"},
		{name: "two file parts", parts: []part{src, cv, filePart("b.pdf", "b")}, status: 400,
			msg: "Invalid request: more than one file part"},
		{name: "no source_key", parts: []part{cv}, status: 400, msg: "Invalid source fields: source_key is required"},
		{name: "v1.0 source_id instead", parts: []part{cv, field("source_id", srcA)}, status: 400,
			msg: "Invalid source fields: source_key is required"},
		{name: "unlisted source_key", parts: []part{cv, field("source_key", srcC)}, status: 400,
			msg: "Invalid source fields: could not find a source matching source_key " + srcC},
		{name: "open: not 40 hex", open: true, parts: []part{cv, field("source_key", "abc")}, status: 400,
			msg: "Invalid source fields: could not find a source matching source_key abc"},
		{name: "key (re-parse)", parts: with("key", srcB), status: 400,
			msg: "Invalid key: re-parsing an existing profile is not supported by the sandbox"},
		{name: "sync_parsing word", parts: with("sync_parsing", "yes"), status: 400, msg: "Invalid sync_parsing: yes (want 0 or 1)"},
		{name: "webhook flag 2", parts: with("webhook_parsing_sending", "2"), status: 400,
			msg: "Invalid webhook_parsing_sending: 2 (want 0 or 1)"},
		{name: "created_at word", parts: with("created_at", "yesterday"), status: 400,
			msg: "Invalid created_at: yesterday (want an ISO 8601 date and time)"},
		{name: "created_at unix seconds", parts: with("created_at", "1530607434"), status: 400,
			msg: "Invalid created_at: 1530607434 (want an ISO 8601 date and time)"},
		{name: "created_at month 13", parts: with("created_at", "2018-13-03T08:43:54Z"), status: 400,
			msg: "Invalid created_at: 2018-13-03T08:43:54Z (want an ISO 8601 date and time)"},
		{name: "labels object", parts: with("labels", `{"job_reference":"developer"}`), status: 400, msg: "Invalid labels: " + badArray},
		{name: "labels null", parts: with("labels", "null"), status: 400, msg: "Invalid labels: " + badArray},
		{name: "labels not json", parts: with("labels", "[{"), status: 400, msg: "Invalid labels: " + badArray},
		{name: "labels element not object", parts: with("labels", "[1]"), status: 400, msg: "Invalid labels: element 0: not an object"},
		{name: "labels no job", parts: with("labels", `[{"stage":"yes"}]`), status: 400,
			msg: "Invalid labels: element 0: job_reference or job_key must be a non-empty string"},
		{name: "labels empty job_reference", parts: with("labels", `[{"job_reference":""}]`), status: 400,
			msg: "Invalid labels: element 0: job_reference or job_key must be a non-empty string"},
		{name: "labels numeric job_reference", parts: with("labels", `[{"job_reference":5}]`), status: 400,
			msg: "Invalid labels: element 0: job_reference must be a string"},
		{name: "labels unknown job_reference", parts: with("labels", `[{"job_reference":"nope"}]`), status: 400,
			msg: "Invalid labels: element 0: unknown job_reference: nope"},
		{name: "labels Riminder element", parts: with("labels", `[{"filter_reference":"developer","stage":"YES"}]`), status: 400,
			msg: "Invalid labels: element 0: job_reference or job_key must be a non-empty string"},
		{name: "labels uppercase stage", parts: with("labels", `[{"job_reference":"developer","stage":"YES"}]`), status: 400,
			msg: "Invalid labels: element 0: stage must be null, new, yes, later or no"},
		{name: "labels rating 6", parts: with("labels", `[{"job_reference":"developer","rating":6}]`), status: 400,
			msg: "Invalid labels: element 0: rating must be null or a number from 0 to 5"},
		{name: "labels rating string", parts: with("labels", `[{"job_reference":"developer","rating":"2"}]`), status: 400,
			msg: "Invalid labels: element 0: rating must be null or a number from 0 to 5"},
		{name: "labels date_stage seconds", parts: with("labels", `[{"job_reference":"developer","date_stage":1530607434}]`), status: 400,
			msg: "Invalid labels: element 0: date_stage must be null or an ISO 8601 string"},
		{name: "labels date_rating word", parts: with("labels", `[{"job_reference":"developer","date_rating":"now"}]`), status: 400,
			msg: "Invalid labels: element 0: date_rating must be null or an ISO 8601 string"},
		{name: "labels stage_timestamp string", parts: with("labels", `[{"job_reference":"developer","stage_timestamp":"1"}]`), status: 400,
			msg: "Invalid labels: element 0: stage_timestamp must be null or an integer"},
		{name: "labels second element", parts: with("labels", `[{"job_key":"k"},{"job_reference":"developer","stage":"maybe"}]`), status: 400,
			msg: "Invalid labels: element 1: stage must be null, new, yes, later or no"},
		{name: "tags object", parts: with("tags", `{"name":"a"}`), status: 400, msg: "Invalid tags: " + badArray},
		{name: "tags without name", parts: with("tags", `[{"value":true}]`), status: 400,
			msg: "Invalid tags: element 0: name must be a non-empty string"},
		{name: "metadatas string", parts: with("metadatas", `"x"`), status: 400, msg: "Invalid metadatas: " + badArray},
		{name: "metadatas element not object", parts: with("metadatas", `[[]]`), status: 400, msg: "Invalid metadatas: element 0: not an object"},

		{name: "no key", key: "-", parts: []part{src, cv}, status: 401, msg: "Unauthorized. Invalid secret key:  for permission: write"},
		{name: "unknown key", key: "nope", parts: []part{src, cv}, status: 401,
			msg: "Unauthorized. Invalid secret key: nope for permission: write"},
		{name: "no user email", email: "-", parts: []part{src, cv}, status: 401,
			msg: "Unauthorized. Invalid user email:  (the X-USER-EMAIL header must hold the email of the key's user)"},
		{name: "user email not an address", email: "hr", parts: []part{src, cv}, status: 401,
			msg: "Unauthorized. Invalid user email: hr (the X-USER-EMAIL header must hold the email of the key's user)"},
		{name: "open: no user email", open: true, key: "any", email: "-", parts: []part{src, cv}, status: 401,
			msg: "Unauthorized. Invalid user email:  (the X-USER-EMAIL header must hold the email of the key's user)"},
		{name: "read-only key", key: "ronly", parts: []part{src, cv}, status: 403, msg: "Forbidden. This secret key has no write permission"},
		{name: "duplicate reference", pre: [][]part{{src, field("reference", "ref1"), filePart("a.pdf", "first")}},
			parts: []part{src, field("reference", "ref1"), filePart("b.pdf", "second")}, status: 400, msg: msgDuplicateRef},
		{name: "reference taken through POST /profile", preV10: [][]part{{field("source_id", srcA), field("profile_reference", "ref1"), filePart("a.pdf", "a")}},
			parts: []part{src, field("reference", "ref1"), cv}, status: 400, msg: msgDuplicateRef},

		{name: "minimal, file first", parts: []part{cv, src}, status: 202, labels: "[]"},
		{name: "as py-hf sends it", parts: []part{src, field("sync_parsing", "0"), field("sync_parsing_indexing", "1"),
			field("webhook_parsing_sending", "0"), field("profile_content_type", "application/pdf"), field("reference", "r"),
			field("created_at", "2018-07-03T08:43:54+00:00"), field("labels", "[]"), field("tags", "[]"), field("metadatas", "[]"), cv},
			status: 202, labels: "[]", ts: i64(1530607434)},
		{name: "sync", parts: with("sync_parsing", "1"), status: 201, labels: "[]"},
		{name: "write-only key", key: "wonly", parts: []part{src, cv}, status: 202, labels: "[]"},
		{name: "open: any key, any 40-hex source, any job", open: true, key: "whatever",
			parts:  []part{field("source_key", srcC), cv, field("labels", `[{"job_reference":"anything","stage":"new"}]`)},
			status: 202, labels: `[{"job_reference":"anything","stage":"new"}]`},
		{name: "labels full", parts: with("labels", fullLabels), status: 202, labels: compactJSON(t, fullLabels)},
		{name: "labels empty string", parts: with("labels", ""), status: 202, labels: "[]"},
		{name: "tags and metadatas", parts: []part{src, cv, field("tags", `[{"name":"blacklist","value":true}]`),
			field("metadatas", `[{"name":"mail","value":"a@b.c"}]`)}, status: 202, labels: "[]"},
		{name: "created_at Z", parts: with("created_at", "2018-07-03T08:43:54Z"), status: 202, labels: "[]", ts: i64(1530607434)},
		{name: "created_at offset", parts: with("created_at", "2018-07-03T10:43:54+02:00"), status: 202, labels: "[]", ts: i64(1530607434)},
		{name: "created_at +0000", parts: with("created_at", "2018-07-03T08:43:54+0000"), status: 202, labels: "[]", ts: i64(1530607434)},
		{name: "created_at naive with micros", parts: with("created_at", "2018-07-03T08:43:54.123456"), status: 202, labels: "[]", ts: i64(1530607434)},
		{name: "created_at date", parts: with("created_at", "2018-07-03"), status: 202, labels: "[]", ts: i64(1530576000)},
		{name: "created_at empty", parts: with("created_at", ""), status: 202, labels: "[]"},
		{name: "same reference, other source", pre: [][]part{{src, field("reference", "ref1"), filePart("a.pdf", "a")}},
			parts: []part{field("source_key", srcB), field("reference", "ref1"), cv}, status: 202, labels: "[]"},
		{name: "empty references are not unique", pre: [][]part{{src, field("reference", ""), cv}},
			parts: []part{src, field("reference", ""), cv}, status: 202, labels: "[]"},
		{name: "unknown fields ignored", parts: []part{src, field("profile_labels", "x"), cv, field("x", "y")}, status: 202, labels: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := strictOptions(dir)
			if tt.open {
				opts = Options{Dir: dir}
			}
			s, srv := start(t, opts)
			key, email := "secret", testEmail
			if tt.key != "" {
				key = tt.key
			}
			if tt.email != "" {
				email = tt.email
			}
			for _, p := range tt.pre {
				if r := hrflowUpload(t, srv.URL, "secret", testEmail, p...); r.status != 202 {
					t.Fatalf("setup upload: %d %s", r.status, r.Message)
				}
			}
			for _, p := range tt.preV10 {
				if r := upload(t, srv.URL, "secret", p...); r.status != 201 {
					t.Fatalf("setup upload: %d %s", r.status, r.Message)
				}
			}
			before := dirFiles(t, dir)
			npre := len(tt.pre) + len(tt.preV10)

			var r apiResponse
			if tt.rawCT != "" {
				h := hrflowHeader(key, email)
				h.Set("Content-Type", tt.rawCT)
				r = doHeader(t, http.MethodPost, srv.URL+"/v1/profile/parsing/file", h, strings.NewReader(tt.raw))
			} else {
				r = hrflowUpload(t, srv.URL, key, email, tt.parts...)
			}
			if r.status != tt.status || (tt.msg != "" && r.Message != tt.msg) {
				t.Fatalf("POST /v1/profile/parsing/file = %d %q, want %d %q", r.status, r.Message, tt.status, tt.msg)
			}
			profiles := s.Profiles()
			if tt.status >= 300 {
				if len(profiles) != npre {
					t.Errorf("%d profiles stored, want %d", len(profiles), npre)
				}
				if after := dirFiles(t, dir); !slices.Equal(after, before) {
					t.Errorf("dir = %v after a rejected upload, want %v", after, before)
				}
				if string(r.Data) != "null" {
					t.Errorf("error data = %s, want null", r.Data)
				}
				return
			}
			if len(profiles) != npre+1 {
				t.Fatalf("%d profiles stored, want %d", len(profiles), npre+1)
			}
			p := profiles[len(profiles)-1]
			if string(p.TrainingMetadata) != tt.labels {
				t.Errorf("training_metadata = %s, want the labels %s", p.TrainingMetadata, tt.labels)
			}
			if (p.TimestampReception == nil) != (tt.ts == nil) || (tt.ts != nil && *p.TimestampReception != *tt.ts) {
				t.Errorf("timestamp_reception = %v, want %v", p.TimestampReception, tt.ts)
			}
			if _, err := os.Stat(filepath.Join(dir, p.SHA256)); err != nil {
				t.Errorf("stored file: %v", err)
			}
		})
	}
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestParsingFileResponses(t *testing.T) {
	s, srv := start(t, strictOptions(""))
	r := hrflowUpload(t, srv.URL, "secret", testEmail, field("source_key", srcA), field("reference", "async"), filePart("cv.pdf", "a"))
	if r.status != 202 || r.Message != msgQueued || string(r.Data) != "[]" {
		t.Errorf("async upload = %d %q data %s, want 202 %q data []", r.status, r.Message, r.Data, msgQueued)
	}
	r = hrflowUpload(t, srv.URL, "secret", testEmail, field("source_key", srcA), field("reference", "sync"),
		field("sync_parsing", "1"), field("tags", `[{"name":"t","value":1}]`),
		field("labels", `[{"job_reference":"developer","stage":"no"}]`), filePart("Jean CV.PDF", "bb"))
	if r.status != 201 || r.Message != msgParsed {
		t.Fatalf("sync upload = %d %q", r.status, r.Message)
	}
	if got := keysOf(t, r.Data); !slices.Equal(got, sorted("parsing", "profile")) {
		t.Errorf("data keys = %v, want parsing, profile", got)
	}
	var d struct {
		Profile json.RawMessage `json:"profile"`
	}
	decode(t, r.Data, &d)
	checkHrFlowProfile(t, d.Profile, s.Profiles()[1], "sync")
	var v hrflowProfile
	decode(t, d.Profile, &v)
	if string(v.Labels) != `[{"job_reference":"developer","stage":"no"}]` || string(v.Tags) != `[{"name":"t","value":1}]` ||
		string(v.Metadatas) != "[]" || len(v.Attachments) != 1 || v.Attachments[0].OriginalFileName != "Jean CV.PDF" ||
		v.Attachments[0].Extension != "pdf" || v.Attachments[0].FileSize != 2 {
		t.Errorf("profile = %+v", v)
	}
	// The labels count in the filter's stages, as training_metadata does.
	fr := get(t, srv.URL+"/filter?filter_reference=developer", "secret")
	var f struct {
		Stages map[string]int `json:"stages"`
	}
	decode(t, fr.Data, &f)
	if f.Stages["count_no"] != 1 {
		t.Errorf("GET /filter stages = %v, want count_no 1", f.Stages)
	}
}

// checkHrFlowProfile checks a profile object of the HrFlow paths against
// the stored upload.
func checkHrFlowProfile(t *testing.T, raw json.RawMessage, p Profile, ref string) {
	t.Helper()
	want := sorted("key", "reference", "source", "archived_at", "updated_at", "created_at", "info", "text_language",
		"text", "experiences_duration", "educations_duration", "experiences", "educations", "attachments", "skills",
		"languages", "certifications", "courses", "tasks", "interests", "labels", "tags", "metadatas")
	if got := keysOf(t, raw); !slices.Equal(got, want) {
		t.Errorf("profile keys = %v, want %v", got, want)
	}
	var v hrflowProfile
	decode(t, raw, &v)
	if v.Key != p.ProfileID || !isHex(v.Key, 40) || v.Reference == nil || *v.Reference != ref || v.Source.Key != p.SourceID {
		t.Errorf("profile key %q reference %v source %q; want %q %q %q", v.Key, v.Reference, v.Source.Key, p.ProfileID, ref, p.SourceID)
	}
	if len(v.CreatedAt) != len("2006-01-02T15:04:05+0000") || !strings.HasSuffix(v.CreatedAt, "+0000") {
		t.Errorf("created_at = %q, want HrFlow's ISO 8601 form", v.CreatedAt)
	}
}

func TestHrFlowInspect(t *testing.T) {
	_, srv := start(t, strictOptions(""))
	upload(t, srv.URL, "secret", field("source_id", srcB), field("profile_reference", "v10"), filePart("a.pdf", "a"))
	hrflowUpload(t, srv.URL, "secret", testEmail, field("source_key", srcA), field("reference", "v1"),
		field("created_at", "2018-07-03T08:43:54+00:00"), field("labels", `[ {"job_reference": "developer", "stage": "yes"} ]`),
		filePart("b.pdf", "bb"))
	hrflowUpload(t, srv.URL, "secret", testEmail, field("source_key", srcA), field("reference", "v1"), filePart("c.pdf", "c"))
	hrflowUpload(t, srv.URL, "secret", testEmail, field("source_key", srcA), filePart("d.pdf", "d"), field("sync_parsing", "1"))

	var profiles []map[string]json.RawMessage
	getRaw(t, srv.URL+"/_sandbox/profiles", &profiles)
	if len(profiles) != 3 {
		t.Fatalf("%d profiles, want 3", len(profiles))
	}
	want := sorted("source_id", "profile_reference", "file_name", "file_size", "sha256", "training_metadata",
		"timestamp_reception", "received_at")
	for i, p := range profiles {
		if got := keysOf(t, []byte(mustJSON(t, p))); !slices.Equal(got, want) {
			t.Errorf("profile %d keys = %v, want %v", i, got, want)
		}
	}
	for _, c := range []struct{ got, want string }{
		{string(profiles[0]["profile_reference"]), `"v10"`},
		{string(profiles[1]["source_id"]), `"` + srcA + `"`},
		{string(profiles[1]["profile_reference"]), `"v1"`},
		{string(profiles[1]["file_name"]), `"b.pdf"`},
		{string(profiles[1]["training_metadata"]), `[{"job_reference":"developer","stage":"yes"}]`},
		{string(profiles[1]["timestamp_reception"]), `1530607434`},
		{string(profiles[2]["profile_reference"]), `""`},
		{string(profiles[2]["training_metadata"]), `[]`},
		{string(profiles[2]["timestamp_reception"]), `null`},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	var stats map[string]json.RawMessage
	getRaw(t, srv.URL+"/_sandbox/stats", &stats)
	if got := mustJSON(t, stats); got != `{"accepted":3,"by_status":{"201":2,"202":1,"400":1},"requests":4}` {
		t.Errorf("stats = %s", got)
	}
}

func TestGetIndexing(t *testing.T) {
	s, srv := start(t, strictOptions(""))
	hrflowUpload(t, srv.URL, "secret", testEmail, field("source_key", srcA), field("reference", "ref/é 1"), filePart("cv.pdf", "x"))
	upload(t, srv.URL, "secret", field("source_id", srcB), field("profile_reference", "old"), filePart("cv.pdf", "y"))
	ps := s.Profiles()
	q := func(path string, kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return srv.URL + path + "?" + v.Encode()
	}
	const ix, pa = "/v1/profile/indexing", "/v1/profile/parsing"
	tests := []struct {
		name, url, key, email string
		status                int
		msg                   string
		profile               int // index in ps of the profile found
		ref                   string
	}{
		{"by reference", q(ix, "source_key", srcA, "reference", "ref/é 1"), "secret", testEmail, 200, "Profile indexing", 0, "ref/é 1"},
		{"by key, read-only key", q(ix, "source_key", srcA, "key", ps[0].ProfileID), "ronly", testEmail, 200, "Profile indexing", 0, "ref/é 1"},
		{"key wins", q(ix, "source_key", srcA, "key", ps[0].ProfileID, "reference", "zzz"), "secret", testEmail, 200, "Profile indexing", 0, "ref/é 1"},
		{"uploaded through POST /profile", q(ix, "source_key", srcB, "reference", "old"), "secret", testEmail, 200, "Profile indexing", 1, "old"},
		{"parsing by reference", q(pa, "source_key", srcA, "reference", "ref/é 1"), "secret", testEmail, 200, "Profile parsing", 0, "ref/é 1"},
		{"no source_key", q(ix, "reference", "ref/é 1"), "secret", testEmail, 400, "Invalid source fields: source_key is required", 0, ""},
		{"v1.0 source_id", q(ix, "source_id", srcA, "reference", "ref/é 1"), "secret", testEmail, 400, "Invalid source fields: source_key is required", 0, ""},
		{"unlisted source", q(ix, "source_key", srcC, "reference", "x"), "secret", testEmail, 400,
			"Invalid source fields: could not find a source matching source_key " + srcC, 0, ""},
		{"no key or reference", q(ix, "source_key", srcA), "secret", testEmail, 400, "Missing key or reference", 0, ""},
		{"v1.0 profile_reference", q(ix, "source_key", srcA, "profile_reference", "ref/é 1"), "secret", testEmail, 400, "Missing key or reference", 0, ""},
		{"unknown reference", q(ix, "source_key", srcA, "reference", "nope"), "secret", testEmail, 404, "Profile not found", 0, ""},
		{"reference in another source", q(ix, "source_key", srcB, "reference", "ref/é 1"), "secret", testEmail, 404, "Profile not found", 0, ""},
		{"key in another source", q(ix, "source_key", srcB, "key", ps[0].ProfileID), "secret", testEmail, 404, "Profile not found", 0, ""},
		{"parsing by email", q(pa, "source_key", srcA, "email", "a@b.c"), "secret", testEmail, 404, "Profile not found", 0, ""},
		{"parsing without id", q(pa, "source_key", srcA), "secret", testEmail, 400, "Missing key, reference or email", 0, ""},
		{"indexing by email", q(ix, "source_key", srcA, "email", "a@b.c"), "secret", testEmail, 400, "Missing key or reference", 0, ""},
		{"write-only key", q(ix, "source_key", srcA, "reference", "ref/é 1"), "wonly", testEmail, 403,
			"Forbidden. This secret key has no read permission", 0, ""},
		{"unknown key", q(ix, "source_key", srcA, "reference", "ref/é 1"), "bad", testEmail, 401,
			"Unauthorized. Invalid secret key: bad for permission: read", 0, ""},
		{"no user email", q(ix, "source_key", srcA, "reference", "ref/é 1"), "secret", "-", 401,
			"Unauthorized. Invalid user email:  (the X-USER-EMAIL header must hold the email of the key's user)", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hrflowGet(t, tt.url, tt.key, tt.email)
			if r.status != tt.status || r.Message != tt.msg {
				t.Fatalf("GET = %d %q, want %d %q", r.status, r.Message, tt.status, tt.msg)
			}
			if r.status == 200 {
				checkHrFlowProfile(t, r.Data, ps[tt.profile], tt.ref)
			} else if string(r.Data) != "null" {
				t.Errorf("error data = %s, want null", r.Data)
			}
		})
	}
	// And the other way: GET /profile finds a /v1 upload.
	r := get(t, srv.URL+"/profile?"+url.Values{"source_id": {srcA}, "profile_reference": {"ref/é 1"}}.Encode(), "secret")
	var v profileView
	decode(t, r.Data, &v)
	if r.status != 200 || v.ProfileID != ps[0].ProfileID {
		t.Errorf("GET /profile of a /v1 upload = %d %+v", r.status, v)
	}
}

func TestHrFlowHeadersAnyCase(t *testing.T) {
	_, srv := start(t, strictOptions(""))
	for _, names := range [][2]string{{"x-api-key", "x-user-email"}, {"X-API-KEY", "X-USER-EMAIL"}, {"X-Api-Key", "X-User-Email"}} {
		h := http.Header{names[0]: {"secret"}, names[1]: {testEmail}}
		if r := doHeader(t, http.MethodGet, srv.URL+"/v1/sources", h, nil); r.status != 200 {
			t.Errorf("headers %v: status %d %q, want 200", names, r.status, r.Message)
		}
	}
}

func TestHrFlowSources(t *testing.T) {
	three := []string{srcA, srcB, srcC}
	_, strict := start(t, Options{Sources: three})
	_, open := start(t, Options{})
	hrflowUpload(t, strict.URL, "k", testEmail, field("source_key", srcB), filePart("cv.pdf", "x"))
	hrflowUpload(t, open.URL, "k", testEmail, field("source_key", srcC), filePart("cv.pdf", "x"))

	type page struct {
		Meta hrflowPage     `json:"meta"`
		Data []hrflowSource `json:"data"`
	}
	list := func(t *testing.T, base, query string) (apiResponse, page) {
		t.Helper()
		r := hrflowGet(t, base+"/v1/sources"+query, "k", testEmail)
		var p page
		if r.status == 200 {
			decode(t, r.Meta, &p.Meta)
			decode(t, r.Data, &p.Data)
		}
		return r, p
	}
	keys := func(p page) []string {
		var out []string
		for _, s := range p.Data {
			out = append(out, s.Key)
		}
		return out
	}
	for _, tt := range []struct {
		name, base, query string
		keys              []string
		meta              hrflowPage
	}{
		{"all", strict.URL, "", three, hrflowPage{Page: 1, MaxPage: 1, Count: 3, Total: 3}},
		{"as py-hf asks", strict.URL, "?name=&page=1&limit=30&sort_by=date&order_by=desc", []string{srcC, srcB, srcA}, hrflowPage{1, 1, 3, 3}},
		{"page 2 of 2", strict.URL, "?page=2&limit=2", []string{srcC}, hrflowPage{2, 2, 1, 3}},
		{"past the end", strict.URL, "?page=5&limit=2", nil, hrflowPage{5, 2, 0, 3}},
		{"by name", strict.URL, "?name=" + url.QueryEscape("SANDBOX "+srcB[:8]), []string{srcB}, hrflowPage{1, 1, 1, 1}},
		{"open: those seen", open.URL, "", []string{srcC}, hrflowPage{1, 1, 1, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, p := list(t, tt.base, tt.query)
			if r.status != 200 || r.Message != "Source list" || !slices.Equal(keys(p), tt.keys) || p.Meta != tt.meta {
				t.Errorf("GET /v1/sources%s = %d %q %v meta %+v, want %v meta %+v", tt.query, r.status, r.Message, keys(p), p.Meta, tt.keys, tt.meta)
			}
			if p.Data == nil && r.status == 200 {
				t.Errorf("data is null, want []")
			}
		})
	}
	r, p := list(t, strict.URL, "")
	if p.Data[1].CountProfiles != 1 || p.Data[0].Type != "api" || !p.Data[0].SyncParsing || p.Data[0].CreatedAt == "" {
		t.Errorf("sources = %+v", p.Data)
	}
	if _, found := r.header["Content-Type"]; !found {
		t.Error("no Content-Type")
	}
	for _, tt := range []struct {
		query  string
		status int
		msg    string
	}{
		{"?order_by=up", 400, "Invalid order_by: up (want asc or desc)"},
		{"?page=0", 400, "Invalid page: 0"},
		{"?limit=x", 400, "Invalid limit: x"},
	} {
		if r, _ := list(t, strict.URL, tt.query); r.status != tt.status || r.Message != tt.msg {
			t.Errorf("GET /v1/sources%s = %d %q, want %d %q", tt.query, r.status, r.Message, tt.status, tt.msg)
		}
	}

	for _, tt := range []struct {
		url    string
		status int
		msg    string
	}{
		{strict.URL + "/v1/source?key=" + srcB, 200, "Source info"},
		{strict.URL + "/v1/source?key=" + strings.Repeat("f", 40), 400, "Invalid source fields: could not find a source matching source_key " + strings.Repeat("f", 40)},
		{strict.URL + "/v1/source", 400, "Invalid source fields: source_key is required"},
		{open.URL + "/v1/source?key=" + srcA, 200, "Source info"},
		{open.URL + "/v1/source?key=xyz", 400, "Invalid source fields: could not find a source matching source_key xyz"},
	} {
		r := hrflowGet(t, tt.url, "k", testEmail)
		if r.status != tt.status || r.Message != tt.msg {
			t.Errorf("GET %s = %d %q, want %d %q", tt.url, r.status, r.Message, tt.status, tt.msg)
			continue
		}
		if r.status == 200 {
			var v hrflowSource
			decode(t, r.Data, &v)
			if !is40Hex(v.Key) || v.Type != "api" || !v.SyncParsing {
				t.Errorf("source = %+v", v)
			}
		}
	}
}

func TestHrFlowWebhookCheck(t *testing.T) {
	post := func(t *testing.T, base, body string) apiResponse {
		h := hrflowHeader("k", testEmail)
		h.Set("Content-Type", "application/json")
		return doHeader(t, http.MethodPost, base+"/v1/webhook/check", h, strings.NewReader(body))
	}
	_, without := start(t, Options{})
	if r := post(t, without.URL, ""); r.status != 400 || r.Message != "Webhook integration is not configured" {
		t.Errorf("without webhook: %d %q", r.status, r.Message)
	}
	if r := post(t, without.URL, "{"); r.status != 400 || r.Message != `Invalid request: a JSON body {"url", "type"} is expected` {
		t.Errorf("bad body: %d %q", r.status, r.Message)
	}
	var d map[string]string
	r := post(t, without.URL, `{"url":"https://example.com/hook","type":"profile.parsing.error"}`)
	decode(t, r.Data, &d)
	if r.status != 200 || d["url"] != "https://example.com/hook" || d["type"] != "profile.parsing.error" ||
		d["team_name"] != "sandbox" || !strings.HasPrefix(d["webhook_id"], "wid_") {
		t.Errorf("with a url: %d %v", r.status, d)
	}
	_, with := start(t, Options{WebhookURL: "http://127.0.0.1:9/hook", WebhookSecret: "s"})
	r = post(t, with.URL, "")
	decode(t, r.Data, &d)
	if r.status != 200 || r.Message != "ok" || d["url"] != "http://127.0.0.1:9/hook" || d["type"] != "profile.parsing.success" {
		t.Errorf("configured: %d %v", r.status, d)
	}
}

// TestHrFlowFaults checks fault injection on the /v1 paths: an upload's 5xx
// or reset comes before or after the upload was recorded, a 429 carries
// Retry-After on a read too.
func TestHrFlowFaults(t *testing.T) {
	for _, codes := range [][]Fault{{{500}}, {{0}}} {
		name := codes[0].String()
		t.Run(name, func(t *testing.T) {
			s, srv := start(t, Options{FailRate: 1, FailCodes: codes, Seed: 5, Dir: t.TempDir()})
			const n = 40
			for i := range n {
				body, ct := multipartBody(t, field("source_key", srcA), field("reference", "r"+strconv.Itoa(i)),
					filePart("cv.pdf", "cv "+strconv.Itoa(i)))
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/profile/parsing/file", bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				req.Header.Set("X-User-Email", testEmail)
				if got, _ := outcome(t, req); got != name {
					t.Errorf("upload %d: %s, want %s", i, got, name)
				}
			}
			stored := len(s.Profiles())
			if stored < n/5 || stored > n*4/5 {
				t.Errorf("%d of %d faulted uploads stored, want about half", stored, n)
			}
			if files := dirFiles(t, s.opts.Dir); len(files) != stored {
				t.Errorf("dir holds %d files, want %d", len(files), stored)
			}
		})
	}
	_, srv := start(t, Options{FailRate: 1, FailCodes: []Fault{{429}}})
	r := hrflowGet(t, srv.URL+"/v1/profile/indexing?source_key="+srcA+"&reference=x", "k", testEmail)
	if r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Errorf("GET /v1/profile/indexing = %d, Retry-After %q; want 429 with 1", r.status, r.header.Get("Retry-After"))
	}
}
