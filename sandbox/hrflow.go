package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// The HrFlow v1 API (riminder-api.md 7) under /v1/. It authenticates like
// the root API (X-API-KEY in any case, the same keys and permissions) and
// also wants X-USER-EMAIL; faults, latency, streaming and Dir are the same.

// hrflowFields are the text fields POST /v1/profile/parsing/file reads
// (riminder-api.md 7.1), with their size limits.
var hrflowFields = map[string]int64{
	"source_key":              maxField,
	"reference":               maxField,
	"key":                     maxField,
	"created_at":              maxField,
	"sync_parsing":            maxField,
	"sync_parsing_indexing":   maxField,
	"webhook_parsing_sending": maxField,
	"profile_content_type":    maxField,
	"labels":                  maxMetadata,
	"tags":                    maxMetadata,
	"metadatas":               maxMetadata,
}

// Messages of the HrFlow paths. The 202 text is the docs' own, typo
// included.
const (
	msgQueued       = "Your profile as been sent successfully to the Parsing Queue."
	msgParsed       = "Profile parsed successfully. Profile extraction finished in 0.00 seconds."
	msgDuplicateRef = "Profile reference already exists in this source"
)

// checkUserEmail checks X-USER-EMAIL, which every HrFlow client sends with
// the key. The sandbox knows no users: any address of the form a@b does.
func checkUserEmail(email string) (reply, bool) {
	local, domain, found := strings.Cut(strings.TrimSpace(email), "@")
	if !found || local == "" || domain == "" {
		return fail(http.StatusUnauthorized, "Unauthorized. Invalid user email: "+email+" (the X-USER-EMAIL header must hold the email of the key's user)"), false
	}
	return reply{}, true
}

// invalidSource is the answer for a source key that is missing or unknown:
// the docs' "Invalid source fields", with the key.
func invalidSource(key string) reply {
	if key == "" {
		return badRequest("Invalid source fields: source_key is required")
	}
	return badRequest("Invalid source fields: could not find a source matching source_key " + key)
}

// postParsingFile handles POST /v1/profile/parsing/file: a streamed
// multipart upload, like POST /profile, with HrFlow's fields.
//
// A reference already used in the source is refused with 400 "Profile
// reference already exists in this source". What the real API does is not
// documented (riminder-api.md 7.1 and 9.3: re-parse, 400 or a second
// profile); the sandbox refuses, as HrFlow's JSON indexing does ("…Already
// used!") and as the root API's sandbox does, so that a client's
// exactly-once handling is tested the same way on both paths. Re-parsing
// by key is not supported: a non-empty key field is a 400.
//
// Without sync_parsing=1 the answer is 202 with data [] (queued, the
// default); with it, 201 with {parsing, profile}. Either way the profile is
// stored at once and GET /v1/profile/indexing finds it.
func (s *Server) postParsingFile(r *http.Request) reply {
	form, refused := s.readUpload(r, hrflowFields)
	defer form.cleanup()
	if refused != nil {
		return *refused
	}

	f := form.fields
	sourceKey := f["source_key"]
	if sourceKey == "" || !s.validSource(sourceKey) {
		return invalidSource(sourceKey)
	}
	if form.file == nil {
		return badRequest("Missing file")
	}
	if form.file.size == 0 {
		return badRequest("Empty file")
	}
	if f["key"] != "" {
		return badRequest("Invalid key: re-parsing an existing profile is not supported by the sandbox")
	}
	flags := map[string]bool{}
	for _, name := range []string{"sync_parsing", "sync_parsing_indexing", "webhook_parsing_sending"} {
		switch strings.TrimSpace(f[name]) {
		case "", "0":
		case "1":
			flags[name] = true
		default:
			return badRequest("Invalid " + name + ": " + f[name] + " (want 0 or 1)")
		}
	}
	var ts *int64
	if v := strings.TrimSpace(f["created_at"]); v != "" {
		t, err := parseISO8601(v)
		if err != nil {
			return badRequest("Invalid created_at: " + f["created_at"] + " (want an ISO 8601 date and time)")
		}
		sec := t.Unix()
		ts = &sec
	}
	labels, entries, err := parseLabels(f["labels"], s.knownFilter)
	if err != nil {
		return badRequest("Invalid labels: " + err.Error())
	}
	var named [2]json.RawMessage
	for i, name := range []string{"tags", "metadatas"} {
		if named[i], err = parseNamedList(f[name]); err != nil {
			return badRequest("Invalid " + name + ": " + err.Error())
		}
	}
	p := Profile{
		SourceID:           sourceKey,
		ProfileReference:   f["reference"],
		FileName:           form.file.name,
		FileSize:           form.file.size,
		SHA256:             form.file.sum,
		TrainingMetadata:   labels,
		TimestampReception: ts,
		FileID:             randomID(),
		ProfileID:          randomID(),
		hrflow:             true,
		tags:               named[0],
		metadatas:          named[1],
	}
	if rep, accepted := s.record(&p, form.file, entries, msgDuplicateRef); !accepted {
		return rep
	}
	s.log.Debug("upload accepted", "api", "hrflow", "source_key", p.SourceID, "reference", p.ProfileReference,
		"file_size", p.FileSize, "sha256", p.SHA256)
	if s.hooks != nil {
		// The Riminder event, which is what cvfeed's receiver reads; the
		// sandbox sends no HrFlow-style (HTTP-HRFLOW-SIGNATURE) events.
		s.hooks.enqueue(parseSuccess(p.ProfileID, p.ProfileReference))
	}
	if !flags["sync_parsing"] {
		return ok(http.StatusAccepted, msgQueued, []any{})
	}
	return ok(http.StatusCreated, msgParsed, map[string]any{
		"parsing": map[string]any{"key": p.FileID, "text_language": nil, "text": ""},
		"profile": hrflowProfileOf(&p),
	})
}

// parseISO8601 parses the ISO 8601 forms clients send for created_at: with
// an offset ("Z", "+02:00", "+0200"), without one (Python's isoformat() of
// a naive datetime, as hrflow-importer sends the file's mtime; read as
// UTC), with or without fractional seconds or seconds, or a bare date.
func parseISO8601(s string) (time.Time, error) {
	for _, layout := range []string{
		"2006-01-02T15:04:05Z07:00",
		"2006-01-02T15:04:05Z0700",
		"2006-01-02T15:04:05",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
		"2006-01-02",
	} {
		// Fractional seconds after the seconds are accepted by Parse
		// even when the layout has none.
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not ISO 8601")
}

var hrflowStages = map[string]string{"new": "NEW", "yes": "YES", "later": "LATER", "no": "NO"}

// parseLabels validates the labels field and returns it compacted ([] when
// missing, "" or []), with the entries that count in GET /filter's stage
// counts (by job_reference). It must be a JSON array of objects, each with
// a non-empty string job_reference or job_key (a job_reference must be a
// known filter: the -filter list names jobs too), a stage null or new, yes,
// later or no (lowercase, as HrFlow writes them), a rating null or a number
// from 0 to 5 (the docs show 0.5, py-hf 1..5), date_stage and date_rating
// null or ISO 8601 strings, and stage_timestamp and rating_timestamp (the
// docs' older form) null or integers. Absent keys count as null; other
// keys are accepted.
func parseLabels(s string, known func(string) bool) (json.RawMessage, []metaEntry, error) {
	elems, err := jsonObjects(s)
	if err != nil {
		return nil, nil, err
	}
	var entries []metaEntry
	for i, obj := range elems {
		e, err := checkLabel(obj, known)
		if err != nil {
			return nil, nil, fmt.Errorf("element %d: %v", i, err)
		}
		if e.reference != "" {
			entries = append(entries, e)
		}
	}
	return compactArray(s), entries, nil
}

func checkLabel(obj map[string]json.RawMessage, known func(string) bool) (metaEntry, error) {
	var e metaEntry
	var jobKey string
	var boardKey string
	for _, k := range []struct {
		name string
		dst  *string
	}{{"job_reference", &e.reference}, {"job_key", &jobKey}, {"board_key", &boardKey}} {
		if v, set := nonNull(obj, k.name); set && json.Unmarshal(v, k.dst) != nil {
			return e, fmt.Errorf("%s must be a string", k.name)
		}
	}
	if e.reference == "" && jobKey == "" {
		return e, errors.New("job_reference or job_key must be a non-empty string")
	}
	if e.reference != "" && !known(e.reference) {
		return e, fmt.Errorf("unknown job_reference: %s", e.reference)
	}
	if v, set := nonNull(obj, "stage"); set {
		var stage string
		if json.Unmarshal(v, &stage) != nil || hrflowStages[stage] == "" {
			return e, errors.New("stage must be null, new, yes, later or no")
		}
		e.stage = hrflowStages[stage]
	}
	if v, set := nonNull(obj, "rating"); set {
		var r float64
		if json.Unmarshal(v, &r) != nil || math.IsNaN(r) || r < 0 || r > 5 {
			return e, errors.New("rating must be null or a number from 0 to 5")
		}
	}
	for _, key := range []string{"date_stage", "date_rating"} {
		if v, set := nonNull(obj, key); set {
			var d string
			if json.Unmarshal(v, &d) != nil {
				return e, fmt.Errorf("%s must be null or an ISO 8601 string", key)
			}
			if _, err := parseISO8601(d); err != nil {
				return e, fmt.Errorf("%s must be null or an ISO 8601 string", key)
			}
		}
	}
	for _, key := range []string{"stage_timestamp", "rating_timestamp"} {
		if v, set := nonNull(obj, key); set {
			var n int64
			if json.Unmarshal(v, &n) != nil {
				return e, fmt.Errorf("%s must be null or an integer", key)
			}
		}
	}
	return e, nil
}

// parseNamedList validates tags or metadatas: a JSON array of objects
// {"name": non-empty string, "value": anything} (riminder-api.md 7.1),
// returned compacted; missing, "" and [] are the empty array.
func parseNamedList(s string) (json.RawMessage, error) {
	elems, err := jsonObjects(s)
	if err != nil {
		return nil, err
	}
	for i, obj := range elems {
		var name string
		if json.Unmarshal(obj["name"], &name) != nil || name == "" {
			return nil, fmt.Errorf("element %d: name must be a non-empty string", i)
		}
	}
	return compactArray(s), nil
}

// jsonObjects parses s as a JSON array of objects; "" (after trimming) is
// the empty array.
func jsonObjects(s string) ([]map[string]json.RawMessage, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil || raw == nil {
		return nil, errors.New("not a JSON array of objects")
	}
	out := make([]map[string]json.RawMessage, 0, len(raw))
	for i, r := range raw {
		var obj map[string]json.RawMessage
		if !bytes.HasPrefix(bytes.TrimSpace(r), []byte("{")) || json.Unmarshal(r, &obj) != nil {
			return nil, fmt.Errorf("element %d: not an object", i)
		}
		out = append(out, obj)
	}
	return out, nil
}

// compactArray returns s, a valid JSON array or "", compacted; "" is [].
func compactArray(s string) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, []byte(strings.TrimSpace(s))) != nil || buf.Len() == 0 {
		return json.RawMessage("[]")
	}
	return buf.Bytes()
}
