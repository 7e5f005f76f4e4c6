package mailpart

import (
	"strings"
	"unicode"
)

// parseHeaderValue splits a Content-Type or Content-Disposition value into
// its lower-case value and its parameters, leniently: mime.ParseMediaType
// (and so go-message) rejects a whole header for one bad parameter, which
// drops real attachments. Accepted here: unquoted values with spaces
// ("filename=This is a test.txt"), raw 8-bit bytes, a quoted string without
// its closing quote, missing or doubled semicolons. RFC 822 comments are not
// removed: an unquoted "cv (1).pdf" is likelier than a comment there.
//
// Keys are lower case; values are kept undecoded (RFC 2231 sections stay
// separate, RFC 2047 words stay encoded), as a server's BODYSTRUCTURE gives
// them, so that DecodeFilename sees the same input from both. The first of
// duplicate parameters wins.
func parseHeaderValue(s string) (value string, params map[string]string) {
	end := strings.IndexByte(s, ';')
	if end < 0 {
		end = len(s)
	}
	value = strings.TrimSpace(s[:end])
	rest := s[end:]
	if j := strings.IndexFunc(value, unicode.IsSpace); j >= 0 {
		// "text/plain name=x": a forgotten semicolon.
		rest = value[j:] + rest
		value = value[:j]
	}
	value = strings.ToLower(value)
	for {
		rest = strings.TrimLeftFunc(rest, func(r rune) bool { return r == ';' || unicode.IsSpace(r) })
		if rest == "" {
			return value, params
		}
		k := 0
		for k < len(rest) && rest[k] != '=' && rest[k] != ';' {
			k++
		}
		key := strings.ToLower(strings.TrimSpace(rest[:k]))
		if k == len(rest) || rest[k] == ';' {
			rest = rest[k:] // a key without value: ignored
			continue
		}
		rest = strings.TrimLeftFunc(rest[k+1:], unicode.IsSpace)
		var val string
		val, rest = paramValue(rest)
		if key == "" {
			continue
		}
		if params == nil {
			params = make(map[string]string)
		}
		if _, dup := params[key]; !dup {
			params[key] = val
		}
	}
}

// paramValue reads one parameter value at the start of s: a quoted string
// (backslash escapes, the closing quote optional) or everything up to the
// next semicolon, trimmed.
func paramValue(s string) (val, rest string) {
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexByte(s, ';')
		if end < 0 {
			end = len(s)
		}
		return strings.TrimSpace(s[:end]), s[end:]
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:]
		case '\\':
			// RFC 822 quoted-pair. Windows paths in names are written
			// unescaped by some mailers ("C:\cv.pdf"): keep a backslash
			// that does not escape a quote or a backslash.
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
				b.WriteByte(s[i])
			} else {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}
