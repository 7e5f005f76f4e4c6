package mailpart

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gabriel-vasile/mimetype"
)

// maxNameBytes is the longest name SafeName returns, in bytes: what most
// file systems allow for one name.
const maxNameBytes = 255

// SafeName returns the file name sent to the API for a part named name
// (from DecodeFilename) whose decoded bytes start with head. It is a base
// name only: everything up to the last "/" or "\" and a drive letter are
// dropped ("../../etc/passwd" is "passwd", "C:\Users\x\cv.pdf" is "cv.pdf").
// It is valid UTF-8 without control characters, NUL or bidirectional
// overrides (which disguise "cv\u202Efdp.exe"), trimmed, and at most 255
// bytes, cut at a character boundary with the extension kept. It is never
// empty, ".", or "..": without a usable name it is "attachment" with the
// extension of the type detected in head ("attachment.pdf"), or
// "attachment.bin".
//
// The name is a label for the API only; spooled files are named by their
// SHA-256, never by this.
func SafeName(name string, head []byte) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if len(name) >= 2 && name[1] == ':' && ('a' <= name[0]|0x20 && name[0]|0x20 <= 'z') {
		name = name[2:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || isBidiControl(r) || r == '\uFEFF' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if len(name) > maxNameBytes {
		name = truncateName(name, maxNameBytes)
	}
	if strings.Trim(name, ".") == "" {
		return "attachment" + fallbackExt(head)
	}
	return name
}

func isBidiControl(r rune) bool {
	return r == '\u200E' || r == '\u200F' || r == '\u061C' ||
		'\u202A' <= r && r <= '\u202E' || '\u2066' <= r && r <= '\u2069'
}

// truncateName cuts name to at most n bytes at a character boundary,
// keeping a short extension.
func truncateName(name string, n int) string {
	ext := path.Ext(name)
	if len(ext) > 16 || len(ext) >= n || !utf8.ValidString(ext) {
		ext = ""
	}
	base := name[:len(name)-len(ext)]
	limit := n - len(ext)
	for limit > 0 && !utf8.RuneStart(base[limit]) {
		limit--
	}
	return strings.TrimSpace(base[:limit]) + ext
}

func fallbackExt(head []byte) string {
	if len(head) > 0 {
		if ext := mimetype.Detect(head).Extension(); ext != "" {
			return ext
		}
	}
	return ".bin"
}
