package mailpart

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Old mailers (and some scanners' "send by e-mail") put a file in the
// text body itself, uuencoded: a "begin 644 cv.pdf" line, lines of
// uuencoded data, "end". Such a file is not a MIME part and is not taken;
// FindUUBlocks finds it so that it is named in the log.

// maxUUBlocks bounds the names FindUUBlocks returns, maxTextBodies the
// text parts TextBodies returns.
const (
	maxUUBlocks   = 16
	maxTextBodies = 4
)

// FindUUBlocks returns the names of the uuencoded files in a text body (r
// reads its decoded bytes): each "begin MODE NAME" line followed by a line
// of uuencoded data. Memory stays bounded whatever the input; at most
// maxUUBlocks names.
func FindUUBlocks(r io.Reader) []string {
	br := bufio.NewReaderSize(r, 4096)
	var names []string
	pending := "" // name of a begin line, waiting for its first data line
	lineStart := true
	for len(names) < maxUUBlocks {
		line, err := br.ReadSlice('\n')
		if lineStart {
			l := bytes.TrimRight(line, "\r\n")
			switch {
			case pending != "" && isUULine(l):
				names = append(names, pending)
				pending = ""
			default:
				pending = uuBegin(l)
			}
		}
		lineStart = err != bufio.ErrBufferFull
		if err != nil && err != bufio.ErrBufferFull {
			break
		}
	}
	return names
}

// uuBegin returns the file name of a "begin MODE NAME" line, or "".
func uuBegin(l []byte) string {
	rest, ok := bytes.CutPrefix(l, []byte("begin "))
	if !ok {
		return ""
	}
	mode, name, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(mode) < 3 || len(mode) > 4 {
		return ""
	}
	for _, c := range mode {
		if c < '0' || c > '7' {
			return ""
		}
	}
	n := strings.TrimSpace(toUTF8("", name))
	if n == "" {
		return ""
	}
	return n
}

// isUULine reports whether l is a line of uuencoded data: a length
// character for 1 to 45 bytes and at least the characters that length
// needs, all in the uuencode alphabet.
func isUULine(l []byte) bool {
	if len(l) < 2 || l[0] < '!' || l[0] > 'M' {
		return false
	}
	n := int(l[0]-' ') & 63
	if len(l)-1 < (n+2)/3*4 {
		return false
	}
	for _, c := range l[1:] {
		if c < ' ' || c > '`' {
			return false
		}
	}
	return true
}

// TextBodies returns the text/plain parts of a message that SelectParts
// does not choose (the body's text), at most maxTextBodies, with their
// section, transfer encoding and size: where a uuencoded file may hide.
// Callers fetch them only to name such files (FindUUBlocks), and only for
// a message that gave no CV otherwise. ParseMessage does not look for them.
func TextBodies(bs imap.BodyStructure) []PartRef {
	var out []PartRef
	var walk func(bs imap.BodyStructure, path []int, sc scope, depth int)
	walk = func(bs imap.BodyStructure, path []int, sc scope, depth int) {
		if depth >= maxDepth || len(out) >= maxTextBodies {
			return
		}
		act, _, _ := classify(bsHeader{bs: bs, parent: sc.parent}, sc)
		switch b := bs.(type) {
		case *imap.BodyStructureMultiPart:
			if act != actMultipart {
				return
			}
			sub := strings.ToLower(b.Subtype)
			for i, c := range b.Children {
				walk(c, childPath(path, i+1), scope{parent: sub, index: i + 1}, depth+1)
			}
		case *imap.BodyStructureSinglePart:
			if act == actMessage && isIdentity(b.Encoding) && b.MessageRFC822 != nil && b.MessageRFC822.BodyStructure != nil {
				inner := b.MessageRFC822.BodyStructure
				p := path
				if _, single := inner.(*imap.BodyStructureSinglePart); single {
					p = childPath(path, 1)
				}
				walk(inner, p, scope{}, depth+1)
				return
			}
			if act != actSkip || !strings.EqualFold(b.Type, "text") || !strings.EqualFold(b.Subtype, "plain") {
				return
			}
			enc := normEncoding(b.Encoding)
			if enc == "" {
				enc = "7bit"
			}
			out = append(out, PartRef{Path: path, Section: sectionOf(path), Type: "text/plain",
				Encoding: enc, Size: int64(b.Size)})
		}
	}
	p := []int(nil)
	if _, single := bs.(*imap.BodyStructureSinglePart); single {
		p = []int{1}
	}
	walk(bs, p, scope{}, 0)
	return out
}
