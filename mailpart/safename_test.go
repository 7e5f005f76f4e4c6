package mailpart

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// validSafeName reports whether s has every property SafeName promises.
func validSafeName(s string) bool {
	if s == "" || len(s) > maxNameBytes || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	if strings.Trim(s, ".") == "" || strings.ContainsAny(s, `/\`) {
		return false
	}
	if len(s) >= 2 && s[1] == ':' && unicode.IsLetter(rune(s[0])) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || isBidiControl(r) {
			return false
		}
	}
	return true
}

func TestSafeName(t *testing.T) {
	pdf := []byte("%PDF-1.4\n")
	long := strings.Repeat("é", 150) + ".pdf" // 304 bytes
	tests := []struct {
		name string
		head []byte
		want string
	}{
		{"cv.pdf", pdf, "cv.pdf"},
		{"  cv.pdf \t", pdf, "cv.pdf"},
		{"../../etc/passwd", nil, "passwd"},
		{"..", pdf, "attachment.pdf"},
		{"...", nil, "attachment.bin"},
		{"/", pdf, "attachment.pdf"},
		{`C:\Users\x\cv.pdf`, pdf, "cv.pdf"},
		{`C:cv.pdf`, pdf, "cv.pdf"},
		{`\\server\share\cv.doc`, nil, "cv.doc"},
		{"cv\x00.pdf", pdf, "cv.pdf"},
		{"c\tv\r\n.pdf\x7f", pdf, "cv.pdf"},
		{"cv\u0085\u009b.pdf", pdf, "cv.pdf"},
		{"cv\u202Efdp.exe", nil, "cvfdp.exe"},
		{"\xffcv.pdf", pdf, "\uFFFDcv.pdf"},
		{"Lebenslauf Müller.pdf", pdf, "Lebenslauf Müller.pdf"},
		{"", pdf, "attachment.pdf"},
		{"", []byte("{\\rtf1\\ansi hello}"), "attachment.rtf"},
		{"", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "attachment.png"},
		{"", nil, "attachment.bin"},
		{"\x00\x01", []byte{0, 1, 2, 3}, "attachment.bin"},
		{strings.Repeat("a", 300), nil, strings.Repeat("a", 255)},
		{long, pdf, strings.Repeat("é", 125) + ".pdf"},
		{strings.Repeat("x", 251) + " .pdf", pdf, strings.Repeat("x", 251) + ".pdf"},
	}
	for _, tt := range tests {
		got := SafeName(tt.name, tt.head)
		if got != tt.want {
			t.Errorf("SafeName(%q) = %q, want %q", tt.name, got, tt.want)
		}
		if !validSafeName(got) {
			t.Errorf("SafeName(%q) = %q: not a safe name", tt.name, got)
		}
	}
}
