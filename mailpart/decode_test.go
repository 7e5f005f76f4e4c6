package mailpart

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"
)

func decodeAll(t *testing.T, enc, in string) string {
	t.Helper()
	for _, wrap := range []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r },
		iotest.OneByteReader,
		iotest.HalfReader,
	} {
		d, err := newDecoder(enc, wrap(strings.NewReader(in)))
		if err != nil {
			t.Fatalf("newDecoder(%q): %v", enc, err)
		}
		out, err := io.ReadAll(d)
		if err != nil {
			t.Fatalf("decode %s %q: %v", enc, in, err)
		}
		if d2, _ := newDecoder(enc, strings.NewReader(in)); d2 != nil {
			if err := iotest.TestReader(d2, out); err != nil {
				t.Errorf("decode %s %q: %v", enc, in, err)
			}
		}
		if len(out) > 0 || in == "" {
			return string(out)
		}
	}
	return ""
}

func TestDecoders(t *testing.T) {
	long := strings.Repeat("x", 40000) + "=C3=A9" + strings.Repeat("y", 3) + "=\r\nz"
	tests := []struct {
		enc, in, want string
	}{
		{"base64", "QUJD", "ABC"},
		{"BASE64", "QU\r\nJD\r\n", "ABC"},
		{" base64 ; x", "QUJD", "ABC"},
		{"base64", "QUJD\r\n*** ***\r\n", "ABC"},
		{"base64", "XXX\n", "]u"}, // bad padding, as in cpython msg_39
		{"base64", "QQ", "A"},
		{"base64", "QQ==QUJD", "AABC"},
		{"base64", "QUJD===\r\n", "ABC"},
		{"base64", "Q", ""},
		{"base64", "", ""},
		{"quoted-printable", "caf=C3=A9\r\n", "café\r\n"},
		{"quoted-printable", "caf=c3=a9", "café"},
		{"quoted-printable", "abc=\r\ndef\n", "abcdef\n"},
		{"quoted-printable", "abc  \t\r\nd", "abc\r\nd"},
		{"quoted-printable", "a=XYb=\n=4", "a=XYb=4"},
		{"quoted-printable", long, strings.Repeat("x", 40000) + "éyyyz"},
		{"x-uuencode", "begin 644 cat.txt\n#0V%T\n`\nend\n", "Cat"},
		{"x-uuencode", "junk\r\nbegin 600 x\r\n/,#$R,S0U-C<X.6%B8V1E\r\n#0V%T\r\nend\r\n", "0123456789abcdeCat"},
		{"x-uuencode", "", ""},
		{"x-uuencode", "no begin line\n#0V%T\n", ""},
		{"7bit", "as is\r\n", "as is\r\n"},
		{"", "as is", "as is"},
		{"binary", "\x00\xff", "\x00\xff"},
	}
	for _, tt := range tests {
		if got := decodeAll(t, tt.enc, tt.in); got != tt.want {
			t.Errorf("decode %s %q = %q, want %q", tt.enc, tt.in, got, tt.want)
		}
	}
	if _, err := newDecoder("x-binhex", strings.NewReader("")); !errors.Is(err, ErrUnsupportedEncoding) {
		t.Errorf("newDecoder(x-binhex) error = %v, want ErrUnsupportedEncoding", err)
	}
}

// TestDecodersMatchStdlib checks the lenient decoders on valid input
// against the standard library, over random data and line lengths.
func TestDecodersMatchStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		data := make([]byte, rng.IntN(100000))
		for j := range data {
			data[j] = byte(rng.UintN(256))
		}
		enc := base64.StdEncoding.EncodeToString(data)
		var lines strings.Builder
		width := 4 + rng.IntN(100)
		for len(enc) > width {
			lines.WriteString(enc[:width] + "\r\n")
			enc = enc[width:]
		}
		lines.WriteString(enc)
		if got := decodeAll(t, "base64", lines.String()); got != string(data) {
			t.Fatalf("round %d: base64 of %d bytes decoded wrong", i, len(data))
		}
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		w.Binary = true
		w.Write(data)
		w.Close()
		if got := decodeAll(t, "quoted-printable", qp.String()); got != string(data) {
			t.Fatalf("round %d: quoted-printable of %d bytes decoded wrong", i, len(data))
		}
	}
}
