package mailpart

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestFindUUBlocks(t *testing.T) {
	tests := []struct {
		body string
		want []string
	}{
		{"Hello,\r\nmy CV:\r\n\r\nbegin 644 cv.pdf\r\nM)5!$1BTQ+C0*)2!#5B!O9B!C86YD:61A=&4@,0IL:6YE(#$@;&EN92`Q(&QI\r\n`\r\nend\r\n", []string{"cv.pdf"}},
		{"begin 0644 Lebenslauf M\xfcller.doc\n#0V%T\n`\nend\nbegin 600 b.pdf\n#0V%T\n`\nend\n", []string{"Lebenslauf Müller.doc", "b.pdf"}},
		{"We begin 644 meetings at nine.\r\nbegin 644 soon\r\nno data here\r\n", nil},
		{"begin 9999 x.pdf\r\nM)5!$\r\n", nil},
		{strings.Repeat("x", 10000) + "\nbegin 644 after-a-long-line.pdf\n#0V%T\n", []string{"after-a-long-line.pdf"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := FindUUBlocks(strings.NewReader(tt.body)); !slices.Equal(got, tt.want) {
			t.Errorf("FindUUBlocks(%.40q) = %q, want %q", tt.body, got, tt.want)
		}
	}
	var many bytes.Buffer
	for range 100 {
		many.WriteString("begin 644 a.pdf\n#0V%T\n")
	}
	if got := FindUUBlocks(&many); len(got) != maxUUBlocks {
		t.Errorf("FindUUBlocks of 100 blocks = %d names, want %d", len(got), maxUUBlocks)
	}
}

func TestTextBodies(t *testing.T) {
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
		"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbody\r\n" +
		"--a\r\nContent-Type: text/html\r\n\r\n<p>body</p>\r\n--a--\r\n" +
		"--b\r\nContent-Type: text/plain; name=notes.txt\r\n\r\nan attached text file\r\n" +
		"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\n\r\nforwarded text\r\n--b--\r\n"
	var got []string
	for _, r := range TextBodies(buildStructure([]byte(msg))) {
		got = append(got, r.Section+" "+r.Encoding)
	}
	// The named text part is a file (SelectParts takes it), the HTML is no
	// place for uuencode; the forwarded message's text is.
	if want := []string{"1.1 quoted-printable", "3.1 7bit"}; !slices.Equal(got, want) {
		t.Errorf("TextBodies = %q, want %q", got, want)
	}
}

// TestOpaqueSMIMENamed: an application/pkcs7-mime part comes back from
// both SelectParts and ParseMessage with SkipOpaqueSMIME, so it is named,
// never fetched.
func TestOpaqueSMIMENamed(t *testing.T) {
	msg := []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n")
	refs := SelectParts(buildStructure(msg), Policy{})
	if len(refs) != 1 || refs[0].Skip != SkipOpaqueSMIME || refs[0].Section != "1" {
		t.Fatalf("SelectParts = %+v, want part 1 with Skip %q", refs, SkipOpaqueSMIME)
	}
	var visited []PartRef
	err := ParseMessage(bytes.NewReader(msg), Policy{}, func(ref PartRef, r io.Reader) error {
		visited = append(visited, ref)
		return nil
	})
	if err != nil || len(visited) != 1 || visited[0].Skip != SkipOpaqueSMIME {
		t.Errorf("ParseMessage visited %+v (%v), want part 1 with Skip %q", visited, err, SkipOpaqueSMIME)
	}
}
