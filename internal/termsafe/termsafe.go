// Package termsafe makes text that comes from outside (file names, names
// from e-mails, messages of the API, paths in errors) safe to print where a
// person reads it: a terminal, a pager, a log viewer.
//
// A file on an HR share can be named "\x1b[2J\rOK    api fake\n.pdf": the
// escape sequence clears the screen, the carriage return and the newline
// forge a line of cvfeed's own output. Escape writes such characters the
// way Go's strconv does (\x1b, \r, \n, \u009b), so the name is shown, not
// obeyed; printable characters, "é" and "日本" included, are kept as they
// are. The characters escaped are the C0 controls, DEL, the C1 controls,
// the Unicode line and paragraph separators, the bidirectional controls
// (which reorder what is shown around them), and bytes that are not UTF-8.
package termsafe

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unsafeRune reports whether r is a character a terminal may act upon, or
// that changes how the text around it is shown.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20 || r == 0x7f: // C0 controls and DEL
		return true
	case r >= 0x80 && r <= 0x9f: // C1 controls (CSI is U+009B)
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	case r == 0x061c || r == 0x200e || r == 0x200f: // ALM, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// clean reports whether s has nothing to escape: the common case, checked
// without allocating.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// Escape returns s with the characters a terminal may act upon escaped as
// strconv writes them (\n, \x1b, \u009b, \u202e) and each byte that is not
// UTF-8 as \xNN. Everything else, backslashes included, is kept.
func Escape(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case unsafeRune(r):
			q := strconv.QuoteRune(r) // '\x1b'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Lines is Escape for text of several lines, such as joined errors: each
// line is escaped and the newlines between them are kept.
func Lines(s string) string {
	if clean(strings.ReplaceAll(s, "\n", "")) {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return strings.Join(lines, "\n")
}

// JSON returns JSON text with the characters encoding/json leaves as they
// are but a terminal may act upon (DEL, the C1 controls, the bidirectional
// controls) written as \u escapes: the text decodes to the same values.
// encoding/json already escapes the C0 controls inside strings and
// replaces bytes that are not UTF-8; the C0 bytes left are the text's own
// white space, kept.
func JSON(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < 0x7f {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x20 && unsafeRune(r) {
			out = append(out, `\u`...)
			out = append(out, hex2(byte(r>>8))...)
			out = append(out, hex2(byte(r))...)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

// hex2 is a byte in two lowercase hex digits.
func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

// URL returns the URL s with the password of its user information
// replaced by "xxxxx", as url.URL.Redacted does
// (https://user:xxxxx@host/path), and escaped. Text that does not parse as
// a URL is returned with everything up to its last "@" before the host
// replaced, in case it holds a password.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if scheme, rest, ok := strings.Cut(s, "://"); ok {
			host := rest
			if i := strings.IndexAny(rest, "/?#"); i >= 0 {
				host = rest[:i]
			}
			if at := strings.LastIndexByte(host, '@'); at >= 0 {
				s = scheme + "://xxxxx@" + rest[at+1:]
			}
		}
		return Escape(s)
	}
	return Escape(u.Redacted())
}
