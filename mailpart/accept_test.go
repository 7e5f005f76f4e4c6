package mailpart

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func zipOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i+1 < len(entries); i += 2 {
		method := zip.Deflate
		if entries[i] == "mimetype" {
			method = zip.Store // ODF wants it first and stored
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: entries[i], Method: method})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, entries[i+1])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ole2 returns a compound file header (v3, 512-byte sectors) with the
// directory at sector 0, followed by sector 0 as given.
func ole2(sector0 []byte) []byte {
	b := make([]byte, 1024)
	copy(b, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1")
	b[26], b[28], b[29], b[30] = 3, 0xFE, 0xFF, 9
	copy(b[512:], sector0)
	return b
}

// dirEntry returns a 128-byte directory entry naming a stream.
func dirEntry(name string) []byte {
	e := make([]byte, 128)
	for i, r := range name {
		e[2*i] = byte(r)
	}
	e[64], e[66] = byte(2*len(name)+2), 2
	return e
}

func content(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "content", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAcceptContent(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")
	jpeg := []byte("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01")
	tiff := []byte("II*\x00\x08\x00\x00\x00")
	gif := []byte("GIF89a\x01\x00\x01\x00")
	att := PartRef{Disposition: "attachment"}
	inl := PartRef{Disposition: "inline"}
	none := PartRef{}
	tests := []struct {
		name string
		ref  PartRef
		head []byte
		want bool
	}{
		{"pdf", none, []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), true},
		{"pdf inline", inl, []byte("%PDF-1.7\n"), true},
		{"pdf after junk", att, []byte("\r\n\r\nsome mailer junk\n%PDF-1.3\n1 0 obj"), true},
		{"zip holding a pdf", att, zipOf(t, "cv.pdf", "%PDF-1.4 ..."), false},
		{"docx (mimetype testdata)", att, content(t, "docx.docx"), true},
		{"docx built", att, zipOf(t, "[Content_Types].xml", "<Types/>", "_rels/.rels", "<Relationships/>", "word/document.xml", "<w:document/>"), true},
		{"docx, word/ first", att, zipOf(t, "word/document.xml", "<w:document/>", "[Content_Types].xml", "<Types/>"), true},
		{"xlsx", att, zipOf(t, "[Content_Types].xml", "<Types/>", "xl/workbook.xml", "<workbook/>"), false},
		{"odt", att, zipOf(t, "mimetype", "application/vnd.oasis.opendocument.text", "content.xml", "<office/>"), true},
		{"ods", att, zipOf(t, "mimetype", "application/vnd.oasis.opendocument.spreadsheet", "content.xml", "<office/>"), false},
		{"plain zip", att, zipOf(t, "notes.txt", "hello"), false},
		{"rtf", none, []byte(`{\rtf1\ansi\deff0 {\fonttbl} Curriculum}`), true},
		{"doc (mimetype testdata)", att, content(t, "doc.doc"), true},
		{"doc by Word FIB", att, ole2([]byte("\xEC\xA5\xC1\x00")), true},
		{"doc by WordDocument entry", att, ole2(append(dirEntry("Root Entry"), dirEntry("WordDocument")...)), true},
		{"msg (mimetype testdata)", att, content(t, "msg.msg"), false},
		{"xls (mimetype testdata)", att, content(t, "xls.xls"), false},
		{"generic ole2", att, ole2(dirEntry("Root Entry")), false},
		{"png attached", att, png, true},
		{"png inline", inl, png, false},
		{"png no disposition", none, png, false},
		{"jpeg attached", att, jpeg, true},
		{"tiff attached", att, tiff, true},
		{"gif attached", att, gif, false},
		{"text", att, []byte("Dear HR, please find my CV attached.\n"), false},
		{"html", att, []byte("<html><body>CV</body></html>"), false},
		{"exe", att, []byte("MZ\x90\x00\x03\x00\x00\x00"), false},
		{"empty", att, nil, false},
	}
	for _, tt := range tests {
		got, why := Policy{}.AcceptContent(tt.ref, tt.head)
		if got != tt.want || why == "" {
			t.Errorf("%s: AcceptContent = %v, %q, want %v and a reason", tt.name, got, why, tt.want)
		}
		all, why := Policy{All: true}.AcceptContent(tt.ref, tt.head)
		if all != (len(tt.head) > 0) {
			t.Errorf("%s: All: AcceptContent = %v, %q, want %v", tt.name, all, why, len(tt.head) > 0)
		}
	}
}

func TestIsWordOLE(t *testing.T) {
	tests := []struct {
		name string
		head []byte
		want bool
	}{
		{"FIB at 512", ole2([]byte("\xEC\xA5\xC1\x00")), true},
		{"WordDocument entry", ole2(slices.Concat(dirEntry("Root Entry"), dirEntry("WordDocument"))), true},
		{"WordDocument entry, misaligned", ole2(slices.Concat([]byte{0}, dirEntry("Root Entry"), dirEntry("WordDocument"))), false},
		{"WordDocument storage, not stream", ole2(slices.Concat(dirEntry("Root Entry"), func() []byte {
			e := dirEntry("WordDocument")
			e[66] = 1
			return e
		}())), false},
		{"msg holding a Word stream", ole2(slices.Concat(dirEntry("Root Entry"), dirEntry("__substg1.0_3701000D"), dirEntry("WordDocument"))), false},
		{"nothing", ole2(dirEntry("Root Entry")), false},
		{"short", []byte("\xD0\xCF\x11\xE0"), false},
	}
	for _, tt := range tests {
		if got := isWordOLE(tt.head); got != tt.want {
			t.Errorf("isWordOLE(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDefaultPolicyMessage runs the default policy's two steps over one
// message: the bytes decide, not the declared type, name or extension.
func TestDefaultPolicyMessage(t *testing.T) {
	pdf := "%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	part := func(ctype, disp, body string) string {
		h := "Content-Type: " + ctype + "\r\nContent-Transfer-Encoding: base64\r\n"
		if disp != "" {
			h += "Content-Disposition: " + disp + "\r\n"
		}
		return "--b\r\n" + h + "\r\n" + b64(body) + "\r\n"
	}
	msg := "From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nHello, my CV is attached.\r\n" +
		part(`text/plain; name="cv.txt"`, `attachment; filename="cv.txt"`, pdf) +
		part(`application/pdf; name="cv.pdf"`, `attachment; filename="cv.pdf"`, "just text, no PDF\n") +
		part(`application/octet-stream; name="photo.png"`, `inline; filename="photo.png"`, png) +
		part(`image/png; name="scan.png"`, `attachment; filename="scan.png"`, png) +
		part(`image/png; name="logo.png"`, `inline; filename="logo.png"`, png) +
		"--b--\r\n"
	var got []string
	err := ParseMessage(strings.NewReader(msg), Policy{}, func(ref PartRef, r io.Reader) error {
		head, err := io.ReadAll(io.LimitReader(r, HeadSize))
		if err != nil {
			return err
		}
		ok, why := Policy{}.AcceptContent(ref, head)
		got = append(got, fmt.Sprintf("%s %s %v", ref.Section, SafeName(ref.Filename, head), ok))
		if why == "" {
			t.Errorf("part %s: no reason", ref.Section)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2 cv.txt true",     // a PDF named .txt
		"3 cv.pdf false",    // text named .pdf
		"4 photo.png false", // a PNG sent inline (declared octet-stream)
		"5 scan.png true",   // an attached PNG
		// 6: an inline image/png is no file at all
	}
	if !slices.Equal(got, want) {
		t.Errorf("default policy chose\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
