package mailpart

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// maxHeaderBytes bounds one entity's header; the rest of a longer one is
// read as body. Real headers stay far below (a long Received chain is a
// few KiB).
const maxHeaderBytes = 256 << 10

// readHeader reads an entity's header from br leniently and returns it
// with the entity's body. go-message's textproto.ReadHeader fails a whole
// message on one malformed line, so the lines are screened here first:
// header fields and their continuation lines go to ReadHeader (which
// unfolds them), and the first line that is neither ends the header and
// starts the body, as in Python's email package.
//
// At the start of a message (message is true) it also skips what Dovecot
// and mbox files leave there: blank lines and an mbox "From " line.
func readHeader(br *bufio.Reader, message bool) (textproto.Header, io.Reader) {
	var raw bytes.Buffer
	var pushback []byte
	start := true
	for {
		line, err := readLine(br)
		if len(line) == 0 {
			break // end of input
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if start && message && (len(bytes.TrimSpace(trimmed)) == 0 || bytes.HasPrefix(trimmed, []byte("From "))) {
			// Blank lines or an mbox separator before a message's header.
			if err != nil {
				break
			}
			continue
		}
		start = false
		switch {
		case len(trimmed) == 0:
			// The blank line that ends the header.
			return finishHeader(&raw, br, nil)
		case trimmed[0] == ' ' || trimmed[0] == '\t':
			if raw.Len() > 0 {
				raw.Write(trimmed)
				raw.WriteString("\r\n")
			}
			// A continuation with nothing to continue is dropped.
		case isFieldLine(trimmed):
			raw.Write(trimmed)
			raw.WriteString("\r\n")
		default:
			pushback = line
		}
		if pushback != nil || err != nil {
			break
		}
		if raw.Len() > maxHeaderBytes {
			break
		}
	}
	return finishHeader(&raw, br, pushback)
}

func finishHeader(raw *bytes.Buffer, br *bufio.Reader, pushback []byte) (textproto.Header, io.Reader) {
	raw.WriteString("\r\n")
	h, _ := textproto.ReadHeader(bufio.NewReader(raw))
	var body io.Reader = br
	if pushback != nil {
		body = io.MultiReader(bytes.NewReader(pushback), br)
	}
	return h, body
}

// readLine reads one line with its line end, a copy. A line longer than
// the reader's buffer is returned in pieces.
func readLine(br *bufio.Reader) ([]byte, error) {
	l, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		err = nil
	}
	return bytes.Clone(l), err
}

// isFieldLine reports whether l starts a header field: a name of printable
// characters other than ":", a colon.
func isFieldLine(l []byte) bool {
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return false
	}
	name := bytes.TrimRight(l[:i], " \t") // "Subject : x" is seen in the wild
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// parsedHeader is the partHeader of an entity parsed from bytes.
type parsedHeader struct {
	typ, sub string
	params   map[string]string
	disp     string
	dparams  map[string]string
	cid      string
	enc      string
}

func (p *parsedHeader) mediaType() (string, string, map[string]string) {
	return p.typ, p.sub, p.params
}

func (p *parsedHeader) disposition() (string, map[string]string) { return p.disp, p.dparams }

func (p *parsedHeader) contentID() string { return p.cid }

// newParsedHeader extracts what the rules need from h. A missing or
// unusable Content-Type is text/plain, or message/rfc822 in a digest.
func newParsedHeader(h textproto.Header, parent string) *parsedHeader {
	p := &parsedHeader{
		cid: strings.TrimSpace(h.Get("Content-Id")),
		enc: normEncoding(h.Get("Content-Transfer-Encoding")),
	}
	var mt string
	mt, p.params = parseHeaderValue(h.Get("Content-Type"))
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" {
		typ, sub = digestDefault(parent)
	}
	p.typ, p.sub = typ, sub
	if h.Has("Content-Disposition") {
		p.disp, p.dparams = parseHeaderValue(h.Get("Content-Disposition"))
	}
	return p
}
