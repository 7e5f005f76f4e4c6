package mailpart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrUnsupportedEncoding is returned (wrapped, with the encoding's name) for
// a Content-Transfer-Encoding cvfeed cannot undo. The part is skipped.
var ErrUnsupportedEncoding = errors.New("unsupported transfer encoding")

// Decode returns a reader of r's bytes with the transfer encoding enc
// (a Content-Transfer-Encoding, as in PartRef.Encoding) undone, streaming:
// base64 and quoted-printable leniently, x-uuencode, and 7bit, 8bit,
// binary or none as they are. Another encoding gives ErrUnsupportedEncoding.
func Decode(enc string, r io.Reader) (io.Reader, error) { return newDecoder(enc, r) }

func newDecoder(enc string, r io.Reader) (io.Reader, error) {
	switch e := normEncoding(enc); {
	case isIdentity(e):
		return r, nil
	case e == "base64":
		return &base64Reader{r: r, in: make([]byte, 16<<10)}, nil
	case e == "quoted-printable":
		return &qpReader{br: bufio.NewReaderSize(r, 16<<10)}, nil
	case isUUEncode(e):
		return &uuReader{br: bufio.NewReaderSize(r, 4<<10)}, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedEncoding, e)
	}
}

// normEncoding returns a transfer encoding in lower case, without
// parameters or spaces some mailers add.
func normEncoding(enc string) string {
	enc = strings.ToLower(strings.TrimSpace(enc))
	if i := strings.IndexAny(enc, "; \t"); i >= 0 {
		enc = enc[:i]
	}
	return enc
}

// isIdentity reports whether a transfer encoding leaves bytes as they are.
func isIdentity(enc string) bool {
	switch normEncoding(enc) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

func isUUEncode(enc string) bool {
	switch normEncoding(enc) {
	case "x-uuencode", "x-uue", "uuencode", "uue":
		return true
	}
	return false
}

// supportedEncoding reports whether Decode can undo enc.
func supportedEncoding(enc string) bool {
	e := normEncoding(enc)
	return isIdentity(e) || e == "base64" || e == "quoted-printable" || isUUEncode(e)
}

// b64 maps a byte to its base64 value, 0xFF for bytes outside the alphabet.
var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// base64Dec decodes base64 leniently, as mail readers do: bytes outside the
// alphabet (line breaks, spaces, garbage) are ignored, "=" ends a quantum
// wherever it is (so concatenated encodings decode), and a final partial
// quantum yields the bytes it holds (bad padding, cpython's msg_39).
type base64Dec struct {
	quad [4]byte
	n    int
}

func (d *base64Dec) write(out, in []byte) []byte {
	for _, c := range in {
		v := b64[c]
		if v == 0xFF {
			if c == '=' {
				out = d.flush(out)
			}
			continue
		}
		d.quad[d.n] = v
		d.n++
		if d.n == 4 {
			q := d.quad
			out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2, q[2]<<6|q[3])
			d.n = 0
		}
	}
	return out
}

func (d *base64Dec) flush(out []byte) []byte {
	q := d.quad
	switch d.n {
	case 2:
		out = append(out, q[0]<<2|q[1]>>4)
	case 3:
		out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2)
	}
	d.n = 0
	return out
}

// decodeBase64Bytes decodes b with base64Dec's leniency.
func decodeBase64Bytes(b []byte) []byte {
	var d base64Dec
	return d.flush(d.write(make([]byte, 0, len(b)*3/4+2), b))
}

type base64Reader struct {
	r   io.Reader
	in  []byte
	out []byte // decoded, not yet read; aliases buf
	buf []byte
	dec base64Dec
	err error
}

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		n, err := b.r.Read(b.in)
		b.buf = b.dec.write(b.buf[:0], b.in[:n])
		if err != nil {
			if err == io.EOF {
				b.buf = b.dec.flush(b.buf)
			}
			b.err = err
		}
		b.out = b.buf
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// qpReader decodes quoted-printable leniently: "=" not followed by two hex
// digits stays as it is, trailing spaces of a line are dropped, a line
// ending in "=" joins the next, other line ends are kept as they are.
type qpReader struct {
	br    *bufio.Reader
	carry []byte // an incomplete "=" or "=X" at the end of an overlong chunk
	line  []byte
	out   []byte
	buf   []byte
	err   error
}

func (q *qpReader) Read(p []byte) (int, error) {
	for len(q.out) == 0 {
		if q.err != nil {
			return 0, q.err
		}
		chunk, err := q.br.ReadSlice('\n')
		q.line = append(append(q.line[:0], q.carry...), chunk...)
		q.carry = q.carry[:0]
		q.buf = q.buf[:0]
		switch {
		case err == bufio.ErrBufferFull:
			// A line longer than the buffer: decode all but a split escape.
			l := q.line
			if i := bytes.LastIndexByte(l, '='); i >= 0 && i >= len(l)-2 {
				q.carry = append(q.carry, l[i:]...)
				l = l[:i]
			}
			q.buf = qpDecode(q.buf, l)
		case err != nil:
			q.buf = q.decodeLine(q.buf, q.line)
			q.err = err
		default:
			q.buf = q.decodeLine(q.buf, q.line)
		}
		q.out = q.buf
	}
	n := copy(p, q.out)
	q.out = q.out[n:]
	return n, nil
}

// decodeLine decodes one whole line, with its line end if it has one.
func (q *qpReader) decodeLine(out, l []byte) []byte {
	body := bytes.TrimRight(l, "\r\n")
	eol := l[len(body):]
	body = bytes.TrimRight(body, " \t")
	if bytes.HasSuffix(body, []byte("=")) {
		return qpDecode(out, body[:len(body)-1]) // soft line break
	}
	return append(qpDecode(out, body), eol...)
}

func qpDecode(out, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// uuReader decodes a uuencoded body: the lines between "begin mode name" and
// "end" (or a zero-length line). A body without a begin line is empty.
type uuReader struct {
	br    *bufio.Reader
	begun bool
	done  bool
	out   []byte
	buf   []byte
}

func (u *uuReader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.done {
			return 0, io.EOF
		}
		line, err := u.br.ReadSlice('\n')
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			return 0, err
		}
		if err == io.EOF {
			u.done = true
		}
		l := bytes.TrimRight(line, "\r\n")
		switch {
		case !u.begun:
			u.begun = bytes.HasPrefix(l, []byte("begin "))
		case bytes.Equal(bytes.TrimSpace(l), []byte("end")):
			u.done = true
		case len(l) > 0:
			n := int((l[0] - ' ') & 63)
			if n == 0 {
				u.done = true
				break
			}
			u.buf = uuDecodeLine(u.buf[:0], l[1:], n)
			u.out = u.buf
		}
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// uuDecodeLine decodes n bytes from the characters of one uuencoded line;
// a short line is padded with zero bits.
func uuDecodeLine(out, l []byte, n int) []byte {
	start := len(out)
	for i := 0; len(out)-start < n; i += 4 {
		var c [4]byte
		for k := range c {
			if i+k < len(l) {
				c[k] = (l[i+k] - ' ') & 63
			}
		}
		out = append(out, c[0]<<2|c[1]>>4, c[1]<<4|c[2]>>2, c[2]<<6|c[3])
	}
	return out[:start+n]
}

// EncodedLen is how many encoded bytes of a part hold n decoded bytes.
func EncodedLen(n int64, enc string) int64 {
	switch normEncoding(enc) {
	case "base64":
		return n*78/57 + 160 // 76-character lines and CRLF, one extra line
	case "quoted-printable":
		return n * 3
	}
	if isUUEncode(enc) {
		return n*62/45 + 200
	}
	return n
}

// IsBase64 reports whether a transfer encoding is base64 (the one a
// server's BINARY undoes for us).
func IsBase64(enc string) bool { return normEncoding(enc) == "base64" }
