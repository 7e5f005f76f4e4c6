package mailpart

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// summary lists the parts ParseMessage finds: section, name, decoded bytes.
func summary(t *testing.T, msg string, policy Policy) []string {
	t.Helper()
	var got []string
	err := ParseMessage(strings.NewReader(msg), policy, func(ref PartRef, r io.Reader) error {
		b, err := io.ReadAll(r)
		if errors.Is(err, ErrTooLarge) {
			got = append(got, fmt.Sprintf("%s %q too large", ref.Section, ref.Filename))
			return nil
		}
		if err != nil {
			return err
		}
		s := fmt.Sprintf("%s %q %q", ref.Section, ref.Filename, b)
		if ref.Skip != "" {
			s += " skip: " + ref.Skip
		}
		got = append(got, s)
		return nil
	})
	if err != nil {
		t.Fatalf("ParseMessage: %v", err)
	}
	return got
}

func TestParseMessageLenient(t *testing.T) {
	att := func(name, body string) string {
		return "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=" + name + "\r\n\r\n" + body
	}
	tests := []struct {
		name, msg string
		want      []string
	}{
		{"mbox From line and blank lines",
			"\r\n\r\nFrom someone@example.com Tue May 10 11:26:39 2005\r\nSubject: x\r\n" +
				"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + att("a.pdf", "A") + "\r\n--b--\r\n",
			[]string{`1 "a.pdf" "A"`}},
		{"LF only",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody\n--b\n" +
				"Content-Type: application/pdf; name=a.pdf\n\nA\nB\n--b--\n",
			[]string{`2 "a.pdf" "A\nB"`}},
		{"line ends mixed",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\n" + att("a.pdf", "A") + "\n--b  \r\n" + att("b.pdf", "B") + "\r\n--b--",
			[]string{`1 "a.pdf" "A"`, `2 "b.pdf" "B"`}},
		{"garbage in a part header",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n" +
				"this line is no header\r\nA\r\n--b--\r\nepilogue",
			[]string{`1 "a.pdf" "this line is no header\r\nA"`}},
		{"unquoted 8-bit and spaces",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + att("Lebenslauf Jürgen.pdf", "A") + "\r\n--b--\r\n",
			[]string{`1 "Lebenslauf Jürgen.pdf" "A"`}},
		{"truncated, no close delimiter",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n" +
				"Content-Transfer-Encoding: base64\r\n\r\nQUJD\r\nRE",
			[]string{`1 "a.pdf" "ABCD"`}},
		{"boundary missing", "Content-Type: multipart/mixed\r\n\r\n--b\r\n" + att("a.pdf", "A"), nil},
		{"boundary never seen", "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--b\r\n" + att("a.pdf", "A"), nil},
		{"empty message", "", nil},
		{"header only", "Content-Type: application/pdf\r\nContent-Disposition: attachment", []string{`1 "" ""`}},
		{"no content-type, attachment", "Content-Disposition: attachment; filename=x.txt\r\n\r\nhi", []string{`1 "x.txt" "hi"`}},
		{"unknown charset in name",
			"Content-Type: application/pdf; name=\"=?x-klingon?Q?caf=E9.pdf?=\"\r\n\r\nA", []string{`1 "café.pdf" "A"`}},
		{"unsupported transfer encoding",
			"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: x-binhex\r\n\r\n(This file must be converted with BinHex 4.0)",
			[]string{`1 "a.pdf" "" skip: unsupported transfer encoding "x-binhex"`}},
		{"bounce: the returned message is not walked",
			"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nUndeliverable\r\n" +
				"--r\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.0.0\r\n--r\r\nContent-Type: message/rfc822\r\n\r\n" + att("sent.pdf", "A") + "\r\n--r--\r\n",
			nil},
		{"signed and encrypted",
			"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=s\r\n\r\n--s\r\n" + att("a.pdf", "A") +
				"\r\n--s\r\nContent-Type: application/pgp-signature; name=signature.asc\r\nContent-Disposition: attachment\r\n\r\nsig\r\n" +
				"--s\r\nContent-Type: multipart/encrypted; boundary=e\r\n\r\n--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n" +
				"--e\r\nContent-Type: application/octet-stream; name=encrypted.asc\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--e--\r\n--s--\r\n",
			[]string{`1 "a.pdf" "A"`}},
		{"digest parts are messages",
			"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\nA\r\n--d--\r\n",
			[]string{`1.1 "a.pdf" "A"`}},
		{"quoted-printable forwarded message",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
				"Content-Type: application/pdf; name=3Dcaf=3D.pdf\r\n\r\nA=3D\r\n--b--\r\n",
			[]string{`1.1 "caf=.pdf" "A="`}},
		{"max size",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + att("big.pdf", strings.Repeat("x", 31)) + "\r\n--b\r\n" + att("small.pdf", strings.Repeat("x", 30)) + "\r\n--b--",
			[]string{`1 "big.pdf" too large`, `2 "small.pdf" "` + strings.Repeat("x", 30) + `"`}},
	}
	for _, tt := range tests {
		got := summary(t, tt.msg, Policy{All: true, MaxSize: 30})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: ParseMessage found\n\t%s\nwant\n\t%s", tt.name, strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
		}
	}
}

func TestParseMessageDeepNesting(t *testing.T) {
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: application/pdf; name=deep.pdf\r\n\r\nA\r\n")
	if got := summary(t, b.String(), Policy{All: true}); len(got) != 0 {
		t.Errorf("ParseMessage found %v past the depth limit", got)
	}
	var fw strings.Builder
	for range 200 {
		fw.WriteString("Content-Type: message/rfc822\r\n\r\n")
	}
	if got := summary(t, fw.String(), Policy{All: true}); len(got) != 0 {
		t.Errorf("ParseMessage found %v in 200 nested messages", got)
	}
}

func TestParseMessageErrors(t *testing.T) {
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\nAAAA"
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader(msg), iotest.ErrReader(boom))
	err := ParseMessage(r, Policy{}, func(ref PartRef, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if !errors.Is(err, boom) {
		t.Errorf("ParseMessage over a failing reader: %v, want %v", err, boom)
	}
	// Even when visit reads nothing, the read error is not hidden.
	r = io.MultiReader(strings.NewReader(msg), iotest.ErrReader(boom))
	if err := ParseMessage(r, Policy{}, func(PartRef, io.Reader) error { return nil }); !errors.Is(err, boom) {
		t.Errorf("ParseMessage over a failing reader, nothing read: %v, want %v", err, boom)
	}
	stop := errors.New("stop")
	if err := ParseMessage(strings.NewReader(msg), Policy{}, func(PartRef, io.Reader) error { return stop }); err != stop {
		t.Errorf("ParseMessage with a failing visit: %v, want %v", err, stop)
	}
}

// TestParsePart follows a forwarded message in base64 (forbidden, and
// real: Thunderbird's rfc822_base64_attachment) holding a CV: SelectParts
// marks it NeedsParse, ParsePart on the fetched section finds the CV where
// ParseMessage on the whole message finds it.
func TestParsePart(t *testing.T) {
	inner := "From: candidate@example.com\r\nSubject: my CV\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n" +
		"--in\r\nContent-Type: text/plain\r\n\r\nHello\r\n--in\r\nContent-Type: application/pdf; name=\"=?utf-8?Q?CV_J=C3=BCrgen.pdf?=\"\r\n" +
		"Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 cv")) + "\r\n--in--\r\n"
	section := base64.StdEncoding.EncodeToString([]byte(inner))
	msg := "Content-Type: multipart/mixed; boundary=out\r\n\r\n--out\r\nContent-Type: text/plain\r\n\r\nFYI\r\n" +
		"--out\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + section + "\r\n--out--\r\n"

	want := []string{`2.2 "CV Jürgen.pdf" "%PDF-1.4 cv"`}
	if got := summary(t, msg, Policy{}); !slices.Equal(got, want) {
		t.Errorf("ParseMessage = %q, want %q", got, want)
	}
	refs := SelectParts(buildStructure([]byte(msg)), Policy{})
	if len(refs) != 1 || !refs[0].NeedsParse || refs[0].Section != "2" || refs[0].Encoding != "base64" {
		t.Fatalf("SelectParts = %+v, want part 2 with NeedsParse", refs)
	}
	var got []string
	err := ParsePart(refs[0], strings.NewReader(section), Policy{}, func(ref PartRef, r io.Reader) error {
		b, err := io.ReadAll(r)
		if !ref.InRFC822 || !slices.Equal(ref.Path, []int{2, 2}) {
			t.Errorf("ParsePart part %+v: want InRFC822 and path [2 2]", ref)
		}
		got = append(got, fmt.Sprintf("%s %q %q", ref.Section, ref.Filename, b))
		return err
	})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ParsePart = %q, %v, want %q", got, err, want)
	}
}
