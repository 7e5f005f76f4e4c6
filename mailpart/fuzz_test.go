package mailpart

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseMessage checks, on any bytes, that ParseMessage neither panics
// nor fails on its own, that every chosen part has a valid section, a UTF-8
// name and a safe API name, and that SelectParts on the structure a server
// would give chooses the same parts.
func FuzzParseMessage(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		if msg := readFixture(f, fx.File); len(msg) < 64<<10 {
			f.Add(msg)
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nQ29udGVudC1UeXBlOiBhcHBsaWNhdGlvbi9wZGYKCkE=\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nContent-Type: image/png; name*0*=utf-8''%C3; name*1*=%A9\r\n\r\nx\r\n--d--"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		policy := Policy{All: true, MaxSize: 1 << 20}
		var parsed []gotPart
		err := ParseMessage(bytes.NewReader(msg), policy, func(ref PartRef, r io.Reader) error {
			head, err := io.ReadAll(io.LimitReader(r, HeadSize))
			if err != nil && !errors.Is(err, ErrTooLarge) {
				return err
			}
			if ref.Section != sectionOf(ref.Path) || ref.Section == "" {
				t.Errorf("part %v: Section %q", ref.Path, ref.Section)
			}
			if !utf8.ValidString(ref.Filename) || strings.TrimSpace(ref.Filename) != ref.Filename {
				t.Errorf("part %s: Filename %q not trimmed UTF-8", ref.Section, ref.Filename)
			}
			if name := SafeName(ref.Filename, head); !validSafeName(name) {
				t.Errorf("part %s: SafeName(%q) = %q, not safe", ref.Section, ref.Filename, name)
			}
			if ok, why := (Policy{}).AcceptContent(ref, head); why == "" || ok && len(head) == 0 {
				t.Errorf("part %s: AcceptContent = %v, %q", ref.Section, ok, why)
			}
			parsed = append(parsed, gotPart{ref: ref})
			return nil
		})
		if err != nil {
			t.Fatalf("ParseMessage: %v", err)
		}
		crossCheck(t, SelectParts(buildStructure(msg), policy), parsed)
	})
}

// FuzzDecodeFilename checks that any parameters decode to trimmed UTF-8,
// and that SafeName makes a safe name of anything.
func FuzzDecodeFilename(f *testing.F) {
	seeds := [][2]string{
		{`attachment; filename*=iso-8859-1''cv%E9.pdf`, ``},
		{`attachment; filename*0*=UTF-8''%E3%81%8B; filename*1*=%E3%81%8D.txt`, ``},
		{`attachment; filename*0="a"; filename*1*=%41; filename*3=x`, ``},
		{``, `image/jpeg; name="=?ISO-8859-1?Q?Eelanal=FC=FCsi_p=E4ring.jpg?="`},
		{`attachment; filename="=?shift_jis?B?l5qX?= =?shift_jis?B?8I+RLnBkZg==?="`, ``},
		{`attachment; filename="=?ISO-2022-JP?B?GyRCTXpOchsoQg==?="`, ``},
		{`attachment; filename==?utf-8?B?VGhpcyBpcyBhIHRlc3QucGRm?=`, ``},
		{"attachment; filename=\"cv\xe9\x00\u202e.pdf\"", ``},
		{`attachment; filename="C:\Users\x\..\..\cv.pdf"`, `text/plain; name=This is a test.txt`},
		{`attachment; filename*=utf-16''%FF%FEa%00`, ``},
		{`attachment; filename="=?utf-8*en?q?=E2=9C=94?="`, ``},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, disp, ctype string) {
		_, dp := parseHeaderValue(disp)
		_, cp := parseHeaderValue(ctype)
		name := DecodeFilename(dp, cp)
		if !utf8.ValidString(name) || strings.TrimSpace(name) != name {
			t.Errorf("DecodeFilename(%q, %q) = %q: not trimmed UTF-8", disp, ctype, name)
		}
		for _, n := range []string{name, disp} {
			if s := SafeName(n, []byte(ctype)); !validSafeName(s) {
				t.Errorf("SafeName(%q) = %q: not safe", n, s)
			}
		}
	})
}

// FuzzDecoders checks that the lenient transfer decoders never fail or
// panic on any input, and agree when read in different chunk sizes.
func FuzzDecoders(f *testing.F) {
	f.Add("QUJD\r\nXX=\r\nQ", "caf=C3=A9 \r\nsoft=\r\nbreak=4", "begin 644 x\n#0V%T\n`\nend\n")
	f.Fuzz(func(t *testing.T, b64, qp, uu string) {
		for _, c := range []struct{ enc, in string }{{"base64", b64}, {"quoted-printable", qp}, {"x-uuencode", uu}} {
			d1, _ := newDecoder(c.enc, strings.NewReader(c.in))
			whole, err := io.ReadAll(d1)
			if err != nil {
				t.Fatalf("%s %q: %v", c.enc, c.in, err)
			}
			d2, _ := newDecoder(c.enc, &oneByte{strings.NewReader(c.in)})
			bytewise, err := io.ReadAll(d2)
			if err != nil || !bytes.Equal(whole, bytewise) {
				t.Fatalf("%s %q: %q whole, %q byte by byte (%v)", c.enc, c.in, whole, bytewise, err)
			}
		}
	})
}

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
