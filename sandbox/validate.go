package sandbox

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// validSource reports whether id is a source: one of Options.Sources, or in
// open mode any 40 lowercase hex characters (Riminder ids look like SHA-1).
func (s *Server) validSource(id string) bool {
	if s.sources != nil {
		return s.sources[id]
	}
	return is40Hex(id)
}

// knownFilter reports whether a filter reference exists: one of
// Options.Filters, or in open mode any non-empty reference.
func (s *Server) knownFilter(ref string) bool {
	if s.filters != nil {
		_, found := s.filters[ref]
		return found
	}
	return ref != ""
}

func is40Hex(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// filterID is the id the sandbox gives a filter reference: its SHA-1 in hex.
func filterID(ref string) string {
	sum := sha1.Sum([]byte(ref))
	return hex.EncodeToString(sum[:])
}

// parseUnix parses Unix seconds sent as a decimal string. "" (after trimming
// spaces) is absent. A fraction, as py-rim sends with str(float), is
// truncated: "1530607434.12" is 1530607434.
func parseUnix(s string) (*int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	whole, frac, dot := strings.Cut(s, ".")
	if !digits(whole) || (dot && !digits(frac)) {
		return nil, errors.New("not a decimal number")
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// metaEntry is what the sandbox keeps of a training_metadata element.
type metaEntry struct {
	reference string
	stage     string // "" for null
}

var stages = map[string]bool{"NEW": true, "YES": true, "LATER": true, "NO": true}

// parseTrainingMetadata validates the training_metadata field (riminder-api.md
// 2.2 and 10.2) and returns it compacted. Missing, "" and "[]" are the empty
// array. Otherwise it must be a JSON array of objects, each with a non-empty
// string filter_reference that exists (known), a stage null or NEW, YES,
// LATER or NO, a rating null or an integer 1..4, and stage_timestamp and
// rating_timestamp null or integers. Absent keys count as null; unknown keys
// are accepted.
func parseTrainingMetadata(s string, known func(string) bool) (json.RawMessage, []metaEntry, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "[]" {
		return json.RawMessage("[]"), nil, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal([]byte(s), &elems); err != nil || elems == nil {
		return nil, nil, errors.New("not a JSON array of objects")
	}
	entries := make([]metaEntry, 0, len(elems))
	for i, raw := range elems {
		e, err := checkMetaElement(raw, known)
		if err != nil {
			return nil, nil, fmt.Errorf("element %d: %v", i, err)
		}
		entries = append(entries, e)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		return nil, nil, errors.New("not a JSON array of objects")
	}
	return buf.Bytes(), entries, nil
}

func checkMetaElement(raw json.RawMessage, known func(string) bool) (metaEntry, error) {
	var obj map[string]json.RawMessage
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) || json.Unmarshal(raw, &obj) != nil {
		return metaEntry{}, errors.New("not an object")
	}
	var e metaEntry
	if json.Unmarshal(obj["filter_reference"], &e.reference) != nil || e.reference == "" {
		return e, errors.New("filter_reference must be a non-empty string")
	}
	if !known(e.reference) {
		return e, fmt.Errorf("unknown filter_reference: %s", e.reference)
	}
	if v, set := nonNull(obj, "stage"); set {
		if json.Unmarshal(v, &e.stage) != nil || !stages[e.stage] {
			return e, errors.New("stage must be null, NEW, YES, LATER or NO")
		}
	}
	if v, set := nonNull(obj, "rating"); set {
		if n, err := strconv.ParseInt(string(v), 10, 64); err != nil || n < 1 || n > 4 {
			return e, errors.New("rating must be null or an integer from 1 to 4")
		}
	}
	for _, key := range []string{"stage_timestamp", "rating_timestamp"} {
		if v, set := nonNull(obj, key); set {
			if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
				return e, fmt.Errorf("%s must be null or an integer", key)
			}
		}
	}
	return e, nil
}

// nonNull returns obj[key] unless it is absent or null.
func nonNull(obj map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	v, found := obj[key]
	if !found || string(bytes.TrimSpace(v)) == "null" {
		return nil, false
	}
	return bytes.TrimSpace(v), true
}
