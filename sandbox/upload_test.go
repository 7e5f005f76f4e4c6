package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// strictOptions has keys, sources and filters lists.
func strictOptions(dir string) Options {
	return Options{
		Keys:    []Key{{"secret", true, true}, {"wonly", false, true}, {"ronly", true, false}},
		Sources: []string{srcA, srcB},
		Filters: []string{"data-scientist", "developer"},
		Dir:     dir,
	}
}

const fullMetadata = `[{"filter_reference":"data-scientist","stage":null,"stage_timestamp":null,"rating":2,"rating_timestamp":1530607434},
 {"filter_reference":"developer","stage":"LATER","stage_timestamp":1530607434,"rating":null,"rating_timestamp":null,"extra":{"x":1}},
 {"filter_reference":"developer"}]`

func TestPostProfileValidation(t *testing.T) {
	cv := filePart("cv.pdf", "%PDF-1.4 fake")
	src := field("source_id", srcA)
	meta := func(v string) []part { return []part{src, cv, field("training_metadata", v)} }
	ts := func(v string) []part { return []part{src, field("timestamp_reception", v), cv} }
	const badArray = "Invalid training_metadata: not a JSON array of objects"
	i64 := func(n int64) *int64 { return &n }

	tests := []struct {
		name   string
		open   bool // no keys, sources or filters lists
		key    string
		pre    [][]part // uploads accepted before the one under test
		parts  []part
		raw    string // with rawCT: a non-multipart body
		rawCT  string
		status int
		msg    string
		meta   string // accepted: stored training_metadata
		ts     *int64 // accepted: stored timestamp_reception
	}{
		{name: "json body", raw: `{"source_id":"x"}`, rawCT: "application/json", status: 400,
			msg: "Invalid request: a multipart/form-data body is required"},
		{name: "urlencoded body", raw: "source_id=" + srcA, rawCT: "application/x-www-form-urlencoded", status: 400,
			msg: "Invalid request: a multipart/form-data body is required"},
		{name: "no body", rawCT: "multipart/form-data", status: 400,
			msg: "Invalid request: a multipart/form-data body is required"},
		{name: "no file part", parts: []part{src, field("profile_reference", "r")}, status: 400, msg: "Missing file"},
		{name: "file part without filename", parts: []part{src, {name: "file", value: "x", file: true}}, status: 400, msg: "Missing file"},
		{name: "empty file", parts: []part{src, filePart("cv.pdf", "")}, status: 400, msg: "Empty file"},
		{name: "two file parts", parts: []part{src, cv, filePart("b.pdf", "b")}, status: 400,
			msg: "Invalid request: more than one file part"},
		{name: "no source_id", parts: []part{cv}, status: 400, msg: "Missing source_id"},
		{name: "empty source_id", parts: []part{cv, field("source_id", "")}, status: 400, msg: "Missing source_id"},
		{name: "unlisted source_id", parts: []part{cv, field("source_id", srcC)}, status: 400, msg: "Invalid source_id: " + srcC},
		{name: "open: not 40 hex", open: true, parts: []part{cv, field("source_id", "abc")}, status: 400, msg: "Invalid source_id: abc"},
		{name: "open: uppercase hex", open: true, parts: []part{cv, field("source_id", strings.ToUpper(srcA))}, status: 400,
			msg: "Invalid source_id: " + strings.ToUpper(srcA)},
		{name: "timestamp letters", parts: ts("abc"), status: 400, msg: "Invalid timestamp_reception: abc"},
		{name: "timestamp negative", parts: ts("-5"), status: 400, msg: "Invalid timestamp_reception: -5"},
		{name: "timestamp exponent", parts: ts("1e9"), status: 400, msg: "Invalid timestamp_reception: 1e9"},
		{name: "timestamp trailing dot", parts: ts("12."), status: 400, msg: "Invalid timestamp_reception: 12."},
		{name: "timestamp two dots", parts: ts("1.2.3"), status: 400, msg: "Invalid timestamp_reception: 1.2.3"},
		{name: "metadata object", parts: meta(`{"filter_reference":"developer"}`), status: 400, msg: badArray},
		{name: "metadata null", parts: meta("null"), status: 400, msg: badArray},
		{name: "metadata not json", parts: meta("[{"), status: 400, msg: badArray},
		{name: "metadata element not object", parts: meta("[1]"), status: 400,
			msg: "Invalid training_metadata: element 0: not an object"},
		{name: "metadata no filter_reference", parts: meta(`[{"stage":"NEW"}]`), status: 400,
			msg: "Invalid training_metadata: element 0: filter_reference must be a non-empty string"},
		{name: "metadata empty filter_reference", parts: meta(`[{"filter_reference":""}]`), status: 400,
			msg: "Invalid training_metadata: element 0: filter_reference must be a non-empty string"},
		{name: "metadata numeric filter_reference", parts: meta(`[{"filter_reference":5}]`), status: 400,
			msg: "Invalid training_metadata: element 0: filter_reference must be a non-empty string"},
		{name: "metadata unknown filter", parts: meta(`[{"filter_reference":"nope"}]`), status: 400,
			msg: "Invalid training_metadata: element 0: unknown filter_reference: nope"},
		{name: "metadata lowercase stage", parts: meta(`[{"filter_reference":"developer","stage":"yes"}]`), status: 400,
			msg: "Invalid training_metadata: element 0: stage must be null, NEW, YES, LATER or NO"},
		{name: "metadata numeric stage", parts: meta(`[{"filter_reference":"developer","stage":1}]`), status: 400,
			msg: "Invalid training_metadata: element 0: stage must be null, NEW, YES, LATER or NO"},
		{name: "metadata rating 0", parts: meta(`[{"filter_reference":"developer","rating":0}]`), status: 400,
			msg: "Invalid training_metadata: element 0: rating must be null or an integer from 1 to 4"},
		{name: "metadata rating 5", parts: meta(`[{"filter_reference":"developer","rating":5}]`), status: 400,
			msg: "Invalid training_metadata: element 0: rating must be null or an integer from 1 to 4"},
		{name: "metadata rating 2.5", parts: meta(`[{"filter_reference":"developer","rating":2.5}]`), status: 400,
			msg: "Invalid training_metadata: element 0: rating must be null or an integer from 1 to 4"},
		{name: "metadata rating string", parts: meta(`[{"filter_reference":"developer","rating":"2"}]`), status: 400,
			msg: "Invalid training_metadata: element 0: rating must be null or an integer from 1 to 4"},
		{name: "metadata stage_timestamp string", parts: meta(`[{"filter_reference":"developer","stage_timestamp":"1530607434"}]`),
			status: 400, msg: "Invalid training_metadata: element 0: stage_timestamp must be null or an integer"},
		{name: "metadata rating_timestamp float", parts: meta(`[{"filter_reference":"developer","rating_timestamp":1.5}]`),
			status: 400, msg: "Invalid training_metadata: element 0: rating_timestamp must be null or an integer"},
		{name: "metadata second element", parts: meta(`[{"filter_reference":"developer"},{"filter_reference":"developer","stage":"MAYBE"}]`),
			status: 400, msg: "Invalid training_metadata: element 1: stage must be null, NEW, YES, LATER or NO"},
		{name: "no key", key: "-", parts: []part{src, cv}, status: 401,
			msg: "Unauthorized. Invalid secret key:  for permission: write"},
		{name: "unknown key", key: "nope", parts: []part{src, cv}, status: 401,
			msg: "Unauthorized. Invalid secret key: nope for permission: write"},
		{name: "open: no key", open: true, key: "-", parts: []part{src, cv}, status: 401,
			msg: "Unauthorized. Invalid secret key:  for permission: write"},
		{name: "read-only key", key: "ronly", parts: []part{src, cv}, status: 403,
			msg: "Forbidden. This secret key has no write permission"},
		{name: "duplicate reference", pre: [][]part{{src, field("profile_reference", "ref1"), filePart("a.pdf", "first")}},
			parts: []part{src, field("profile_reference", "ref1"), filePart("b.pdf", "second")}, status: 400,
			msg: "profile_reference already exists"},

		{name: "minimal, file first", parts: []part{cv, src}, status: 201, meta: "[]"},
		{name: "fields around the file", parts: []part{src, field("profile_reference", "r"), cv, field("timestamp_reception", "1530607434")},
			status: 201, meta: "[]", ts: i64(1530607434)},
		{name: "write-only key", key: "wonly", parts: []part{src, cv}, status: 201, meta: "[]"},
		{name: "open: any key, any 40-hex source, any filter", open: true, key: "whatever",
			parts:  []part{field("source_id", srcC), cv, field("training_metadata", `[{"filter_reference":"anything"}]`)},
			status: 201, meta: `[{"filter_reference":"anything"}]`},
		{name: "metadata empty string", parts: meta(""), status: 201, meta: "[]"},
		{name: "metadata empty array", parts: meta("[]"), status: 201, meta: "[]"},
		{name: "metadata full", parts: meta(fullMetadata), status: 201, meta: compact(t, fullMetadata)},
		{name: "timestamp empty", parts: ts(""), status: 201, meta: "[]"},
		{name: "timestamp integer", parts: ts("1530607434"), status: 201, meta: "[]", ts: i64(1530607434)},
		{name: "timestamp fraction", parts: ts("1530607434.12"), status: 201, meta: "[]", ts: i64(1530607434)},
		{name: "same reference, other source", pre: [][]part{{src, field("profile_reference", "ref1"), filePart("a.pdf", "a")}},
			parts: []part{field("source_id", srcB), field("profile_reference", "ref1"), cv}, status: 201, meta: "[]"},
		{name: "empty references are not unique", pre: [][]part{{src, field("profile_reference", ""), cv}},
			parts: []part{src, field("profile_reference", ""), cv}, status: 201, meta: "[]"},
		{name: "unknown fields ignored", parts: []part{src, field("profile_labels", "[]"), cv, field("x", "y")}, status: 201, meta: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := strictOptions(dir)
			if tt.open {
				opts = Options{Dir: dir}
			}
			s, srv := start(t, opts)
			key := "secret"
			if tt.key != "" {
				key = strings.TrimPrefix(tt.key, "-")
			}
			for _, p := range tt.pre {
				if r := upload(t, srv.URL, "secret", p...); r.status != 201 {
					t.Fatalf("setup upload: %d %s", r.status, r.Message)
				}
			}
			before := dirFiles(t, dir)

			var r apiResponse
			if tt.rawCT != "" {
				r = do(t, http.MethodPost, srv.URL+"/profile", key, tt.rawCT, strings.NewReader(tt.raw))
			} else {
				r = upload(t, srv.URL, key, tt.parts...)
			}
			if r.status != tt.status || (tt.msg != "" && r.Message != tt.msg) {
				t.Fatalf("POST /profile = %d %q, want %d %q", r.status, r.Message, tt.status, tt.msg)
			}
			profiles := s.Profiles()
			if tt.status != 201 {
				if len(profiles) != len(tt.pre) {
					t.Errorf("%d profiles stored, want %d", len(profiles), len(tt.pre))
				}
				if after := dirFiles(t, dir); !slices.Equal(after, before) {
					t.Errorf("dir = %v after a rejected upload, want %v", after, before)
				}
				return
			}
			if len(profiles) != len(tt.pre)+1 {
				t.Fatalf("%d profiles stored, want %d", len(profiles), len(tt.pre)+1)
			}
			p := profiles[len(profiles)-1]
			if string(p.TrainingMetadata) != tt.meta {
				t.Errorf("training_metadata = %s, want %s", p.TrainingMetadata, tt.meta)
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

func compact(t *testing.T, s string) string {
	raw, _, err := parseTrainingMetadata(s, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestPostProfileResponse(t *testing.T) {
	dir := t.TempDir()
	s, srv := start(t, strictOptions(dir))
	content := "%PDF-1.4 some résumé bytes"
	name := "Jean Dupont — CV.PDF"
	r := upload(t, srv.URL, "secret", field("source_id", srcA), field("profile_reference", "ref-1"),
		field("timestamp_reception", "1530607434"), filePart(name, content))
	if r.status != 201 {
		t.Fatalf("POST /profile = %d %s", r.status, r.Message)
	}
	want := sorted("profile_reference", "file_id", "file_name", "file_size", "extension", "date_reception")
	if got := keysOf(t, r.Data); !slices.Equal(got, want) {
		t.Errorf("data keys = %v, want %v", got, want)
	}
	var d struct {
		ProfileReference string  `json:"profile_reference"`
		FileID           string  `json:"file_id"`
		FileName         string  `json:"file_name"`
		FileSize         int64   `json:"file_size"`
		Extension        string  `json:"extension"`
		DateReception    phpDate `json:"date_reception"`
	}
	decode(t, r.Data, &d)
	if d.ProfileReference != "ref-1" || !isHex(d.FileID, 40) || d.FileName != name ||
		d.FileSize != int64(len(content)) || d.Extension != "pdf" {
		t.Errorf("data = %+v", d)
	}
	wantDate := phpDate{Date: "2018-07-03 08:43:54.000000", TimezoneType: 3, Timezone: "UTC"}
	if d.DateReception != wantDate {
		t.Errorf("date_reception = %+v, want %+v", d.DateReception, wantDate)
	}

	sum := sha256.Sum256([]byte(content))
	p := s.Profiles()[0]
	if p.SHA256 != hex.EncodeToString(sum[:]) || p.FileName != name || p.SourceID != srcA || p.FileID != d.FileID {
		t.Errorf("stored profile = %+v", p)
	}
	got, err := os.ReadFile(filepath.Join(dir, p.SHA256))
	if err != nil || string(got) != content {
		t.Errorf("Dir/<sha256> = %q, %v; want %q", got, err, content)
	}
	if files := dirFiles(t, dir); len(files) != 1 {
		t.Errorf("dir holds %v, want only the stored file", files)
	}
}

func TestExtension(t *testing.T) {
	for name, want := range map[string]string{
		"cv.pdf": "pdf", "CV.DOCX": "docx", "a.b.odt": "odt", "noext": "", ".hidden": "",
		`dir\x.rtf`: "rtf", "dir.d/file": "", "": "",
	} {
		if got := extension(name); got != want {
			t.Errorf("extension(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestConcurrentSameReference(t *testing.T) {
	s, srv := start(t, Options{Dir: t.TempDir()})
	const n = 50
	statuses := make(chan apiResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses <- upload(t, srv.URL, "k", field("source_id", srcA), field("profile_reference", "same"),
				filePart("cv.pdf", strings.Repeat("x", 1000+i)))
		})
	}
	wg.Wait()
	close(statuses)
	created, dup := 0, 0
	for r := range statuses {
		switch {
		case r.status == 201:
			created++
		case r.status == 400 && r.Message == "profile_reference already exists":
			dup++
		default:
			t.Errorf("unexpected response %d %q", r.status, r.Message)
		}
	}
	if created != 1 || dup != n-1 {
		t.Errorf("%d created, %d duplicates; want 1 and %d", created, dup, n-1)
	}
	if got := len(s.Profiles()); got != 1 {
		t.Errorf("%d profiles stored, want 1", got)
	}
	if files := dirFiles(t, s.opts.Dir); len(files) != 1 {
		t.Errorf("dir holds %v, want one file", files)
	}
	var stats Stats
	decode(t, []byte(mustJSON(t, s.Stats())), &stats)
	if stats.Requests != n || stats.Accepted != 1 || stats.ByStatus["201"] != 1 || stats.ByStatus["400"] != n-1 {
		t.Errorf("stats = %+v", stats)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
