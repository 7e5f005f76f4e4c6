package config

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// reader turns rawValues into typed values, expanding ${VAR} in strings
// and recording every problem instead of stopping at the first.
//
// Messages about a wrong type name the type only, never the value: the
// same code reads api_key.
type reader struct {
	probs     *problems
	lookupEnv func(string) (string, bool)
	readFile  func(string) ([]byte, error)
	base      string // directory of the config file, absolute
	// skipSecrets checks secrets for their shape only (LoadOptions).
	skipSecrets bool
}

// typeName names the TOML type of a decoded value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// str returns a string value with ${VAR} expanded; ok is false if the
// value is unset or was reported.
func (r *reader) str(key string, v rawValue) (s string, ok bool) {
	if !v.set {
		return "", false
	}
	raw, isString := v.v.(string)
	if !isString {
		r.probs.addf(key, "expected a string, got %s", typeName(v.v))
		return "", false
	}
	s, err := expand(raw, r.lookupEnv)
	if err != nil {
		r.probs.add(key, err)
		return "", false
	}
	return s, true
}

// required returns a string value that must be set and not empty.
func (r *reader) required(key string, v rawValue) (string, bool) {
	if !v.set {
		r.probs.missing(key, "required")
		return "", false
	}
	s, ok := r.str(key, v)
	if ok && s == "" {
		r.probs.addf(key, "must not be empty")
		return "", false
	}
	return s, ok
}

// path returns a path value resolved against the config's directory.
func (r *reader) path(key string, v rawValue) (string, bool) {
	s, ok := r.str(key, v)
	if !ok {
		return "", false
	}
	if s == "" {
		r.probs.addf(key, "must not be empty")
		return "", false
	}
	return r.resolve(s), true
}

// resolve makes a path absolute against the config's directory. "~" is
// not special.
func (r *reader) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(r.base, p)
}

// enum returns a string value that must be one of allowed.
func (r *reader) enum(key string, v rawValue, allowed ...string) (string, bool) {
	s, ok := r.str(key, v)
	if ok && !slices.Contains(allowed, s) {
		r.probs.addf(key, "%q is not one of %s", s, strings.Join(allowed, ", "))
		return "", false
	}
	return s, ok
}

// boolean returns a boolean value.
func (r *reader) boolean(key string, v rawValue) (bool, bool) {
	if !v.set {
		return false, false
	}
	b, ok := v.v.(bool)
	if !ok {
		r.probs.addf(key, "expected true or false, got %s", typeName(v.v))
	}
	return b, ok
}

// integer returns an integer value in lo..hi.
func (r *reader) integer(key string, v rawValue, lo, hi int64) (int64, bool) {
	if !v.set {
		return 0, false
	}
	n, ok := v.v.(int64)
	switch {
	case !ok:
		r.probs.addf(key, "expected an integer, got %s", typeName(v.v))
		return 0, false
	case n < lo && lo == 0:
		r.probs.addf(key, "%d is negative", n)
		return 0, false
	case n < lo || n > hi:
		r.probs.addf(key, "%d is out of range %d..%d", n, lo, hi)
		return 0, false
	}
	return n, true
}

// number returns a finite, non-negative number, integer or float.
func (r *reader) number(key string, v rawValue) (float64, bool) {
	if !v.set {
		return 0, false
	}
	var f float64
	switch n := v.v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		r.probs.addf(key, "expected a number, got %s", typeName(v.v))
		return 0, false
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		r.probs.addf(key, "%v is not a finite number", f)
		return 0, false
	case f < 0:
		r.probs.addf(key, "%v is negative", f)
		return 0, false
	}
	return f, true
}

// duration returns a duration written as a string ("2s", "500ms"), not
// negative, and positive if positive is set.
func (r *reader) duration(key string, v rawValue, positive bool) (time.Duration, bool) {
	switch n := v.v.(type) {
	case int64, float64:
		r.probs.addf(key, `%v is not a duration: write a string like "2s"`, n)
		return 0, false
	}
	s, ok := r.str(key, v)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		r.probs.addf(key, "invalid duration %q", s)
		return 0, false
	case d < 0:
		r.probs.addf(key, "%q is negative", s)
		return 0, false
	case d == 0 && positive:
		r.probs.addf(key, "must be more than 0")
		return 0, false
	}
	return d, true
}

// strList returns an array of strings, each expanded.
func (r *reader) strList(key string, v rawValue) ([]string, bool) {
	if !v.set {
		return nil, false
	}
	arr, isArray := v.v.([]any)
	if !isArray {
		r.probs.addf(key, "expected an array of strings, got %s", typeName(v.v))
		return nil, false
	}
	out := make([]string, 0, len(arr))
	ok := true
	for i, e := range arr {
		s, good := r.str(fmt.Sprintf("%s[%d]", key, i), rawValue{v: e, set: true})
		out = append(out, s)
		ok = ok && good
	}
	return out, ok
}

// expand replaces each ${NAME} in s with the value of the environment
// variable NAME. $${ is a literal ${; any other $ is kept as is. An unset
// variable or a malformed ${...} is an error; the error never quotes s,
// which may be a secret.
func expand(s string, lookupEnv func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(rest, "${"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", errors.New("unterminated ${ (write $${ for a literal ${)")
			}
			name := rest[2:end]
			if !validEnvName(name) {
				return "", errors.New("invalid ${...}: a variable name is letters, digits and _, not starting with a digit (write $${ for a literal ${)")
			}
			val, ok := lookupEnv(name)
			if !ok {
				return "", fmt.Errorf("environment variable %s is not set", name)
			}
			b.WriteString(val)
			i += end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// validEnvName reports whether name matches [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
