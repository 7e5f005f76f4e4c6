package mailpart

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/charmap"
)

// DecodeFilename returns the file name of a part from the parameters of its
// Content-Disposition and Content-Type, as a server's BODYSTRUCTURE or
// parseHeaderValue gives them: keys lower case, values undecoded. It tries,
// in order, the disposition's filename* (RFC 2231, continuations
// filename*0*, filename*1 ... and charset), its filename, the type's name*
// and name. RFC 2047 encoded words are decoded anywhere in a value (Outlook
// writes them inside quoted parameters, and Gmail unquoted); adjacent words
// in one charset are joined before conversion, so a character split across
// two words survives. Bytes that are not UTF-8 after that are read as
// Windows-1252 (a superset of Latin-1).
//
// The result is valid UTF-8, trimmed, possibly empty, and not safe to use
// as a path or as the API's file name: see SafeName.
func DecodeFilename(disposition, contentType map[string]string) string {
	for _, c := range []struct {
		params map[string]string
		key    string
	}{{disposition, "filename"}, {contentType, "name"}} {
		if s := rfc2231Param(c.params, c.key); s != "" {
			return s
		}
		if s := strings.TrimSpace(decodeWords(c.params[c.key])); s != "" {
			return s
		}
	}
	return ""
}

// maxSections bounds the RFC 2231 continuations read for one parameter.
const maxSections = 1000

// rfc2231Param decodes key* or the continuations key*0, key*0*, key*1 ...
// (RFC 2231 sections 3 and 4). Sections are joined in numeric order; a gap
// ends them. An unknown charset leaves the bytes to toUTF8's guess.
func rfc2231Param(params map[string]string, key string) string {
	if len(params) == 0 {
		return ""
	}
	if v, ok := params[key+"*"]; ok {
		cs, raw := splitExtended(v)
		return strings.TrimSpace(decodeWords(toUTF8(cs, pctDecode(raw))))
	}
	// Probe key*0, key*1 ... in order rather than range over the map: the
	// result must not depend on map order, nor may the work done (the
	// fuzzer reads varying coverage as news).
	var cs string
	var buf []byte
	for n := 0; n < maxSections; n++ {
		k := key + "*" + strconv.Itoa(n)
		if val, ok := params[k+"*"]; ok {
			if n == 0 {
				cs, val = splitExtended(val)
			}
			buf = append(buf, pctDecode(val)...)
		} else if val, ok := params[k]; ok {
			buf = append(buf, val...)
		} else {
			break
		}
	}
	if buf == nil {
		return ""
	}
	return strings.TrimSpace(decodeWords(toUTF8(cs, buf)))
}

// splitExtended splits an RFC 2231 extended value charset'language'text.
// Without the two quotes, the whole value is text.
func splitExtended(v string) (cs, text string) {
	i := strings.IndexByte(v, '\'')
	if i < 0 {
		return "", v
	}
	j := strings.IndexByte(v[i+1:], '\'')
	if j < 0 {
		return "", v
	}
	return v[:i], v[i+1+j+1:]
}

// pctDecode undoes %XX escapes; a % not followed by two hex digits stays.
func pctDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// toUTF8 converts b from charset cs to UTF-8. With no charset, an unknown
// one, or a conversion that fails, valid UTF-8 is kept and anything else is
// read as Windows-1252. Characters the charset cannot map become U+FFFD.
func toUTF8(cs string, b []byte) string {
	cs = strings.ToLower(strings.TrimSpace(cs))
	if i := strings.IndexByte(cs, '*'); i >= 0 {
		cs = cs[:i] // RFC 2231 section 5: charset*language
	}
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
	default:
		if r, err := charset.Reader(cs, bytes.NewReader(b)); err == nil {
			if out, err := io.ReadAll(r); err == nil {
				return strings.ToValidUTF8(string(out), "\uFFFD")
			}
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}

// decodeWords decodes the RFC 2047 encoded words in s, wherever they are.
// Whitespace between two adjacent encoded words is dropped; the bytes of
// adjacent words in the same charset are joined before conversion. Text
// outside words is kept (raw 8-bit bytes go through toUTF8), and so is a
// word that does not parse.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return toUTF8("", []byte(s))
	}
	type token struct {
		word bool
		cs   string
		data []byte // word: decoded bytes; text: raw bytes
	}
	var toks []token
	for s != "" {
		i := strings.Index(s, "=?")
		if i < 0 {
			toks = append(toks, token{data: []byte(s)})
			break
		}
		cs, data, n, ok := encodedWord(s[i:])
		if !ok {
			toks = append(toks, token{data: []byte(s[:i+2])})
			s = s[i+2:]
			continue
		}
		if i > 0 {
			toks = append(toks, token{data: []byte(s[:i])})
		}
		toks = append(toks, token{word: true, cs: cs, data: data})
		s = s[i+n:]
	}
	blank := func(i int) bool {
		return i < len(toks) && !toks[i].word && len(bytes.Trim(toks[i].data, " \t\r\n")) == 0
	}
	isWord := func(i int) bool { return i >= 0 && i < len(toks) && toks[i].word }
	var out strings.Builder
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if !t.word {
			if blank(i) && isWord(i-1) && isWord(i+1) {
				continue
			}
			out.WriteString(toUTF8("", t.data))
			continue
		}
		data := append([]byte(nil), t.data...)
		for {
			j := i + 1
			if blank(j) {
				j++
			}
			if !isWord(j) || !strings.EqualFold(toks[j].cs, t.cs) {
				break
			}
			data = append(data, toks[j].data...)
			i = j
		}
		out.WriteString(toUTF8(t.cs, data))
	}
	return out.String()
}

// encodedWord parses the RFC 2047 encoded word =?charset?E?text?= at the
// start of s and returns its charset, its decoded bytes and its length.
func encodedWord(s string) (cs string, data []byte, n int, ok bool) {
	rest, _ := strings.CutPrefix(s, "=?")
	q := strings.IndexByte(rest, '?')
	if q <= 0 || q > 64 || strings.ContainsAny(rest[:q], " \t\r\n") {
		return "", nil, 0, false
	}
	cs = rest[:q]
	rest = rest[q+1:]
	if len(rest) < 2 || rest[1] != '?' {
		return "", nil, 0, false
	}
	enc := rest[0]
	rest = rest[2:]
	end := strings.Index(rest, "?=")
	if end < 0 {
		return "", nil, 0, false
	}
	text := rest[:end]
	switch enc {
	case 'b', 'B':
		data = decodeBase64Bytes([]byte(text))
	case 'q', 'Q':
		data = decodeQWord(text)
	default:
		return "", nil, 0, false
	}
	n = 2 + q + 1 + 2 + end + 2
	return cs, data, n, true
}

// decodeQWord decodes RFC 2047 "Q" text: _ is a space, =XX a byte.
func decodeQWord(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			b = append(b, ' ')
		case c == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b
}
