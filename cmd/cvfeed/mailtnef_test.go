package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
)

// winmailDat builds a TNEF stream (MS-OXTNEF) as Outlook writes it for a
// Rich Text message: message attributes, then one attachment with its
// RendData, 8.3 title, bytes and MAPI properties (the long file name).
func winmailDat(title, longName string, data []byte) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	attr := func(level byte, id uint32, d []byte) {
		b.WriteByte(level)
		le(id)
		le(uint32(len(d)))
		b.Write(d)
		var sum uint16
		for _, c := range d {
			sum += uint16(c)
		}
		le(sum)
	}
	le(uint32(0x223E9F78))
	le(uint16(0x0101))
	attr(1, 0x00089006, []byte{0, 0, 1, 0})                    // attTnefVersion
	attr(1, 0x00078008, []byte("IPM.Microsoft Mail.Note\x00")) // attMessageClass
	attr(2, 0x00069002, make([]byte, 14))                      // attAttachRendData
	attr(2, 0x00018010, append([]byte(title), 0))              // attAttachTitle
	attr(2, 0x0006800F, data)                                  // attAttachData
	var props bytes.Buffer
	pl := func(v any) { binary.Write(&props, binary.LittleEndian, v) }
	pl(uint32(1))
	pl(uint16(0x001F)) // PT_UNICODE
	pl(uint16(0x3707)) // PR_ATTACH_LONG_FILENAME
	var name []byte
	for _, c := range utf16.Encode([]rune(longName + "\x00")) {
		name = binary.LittleEndian.AppendUint16(name, c)
	}
	pl(uint32(1))
	pl(uint32(len(name)))
	props.Write(name)
	props.Write(make([]byte, (4-len(name)%4)%4))
	attr(2, 0x00069005, props.Bytes()) // attAttachment
	return b.Bytes()
}

func wrap76(s string) string {
	var w strings.Builder
	for len(s) > 76 {
		w.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return w.String() + s + "\r\n"
}

// tnefMessage is an Outlook Rich Text mail: a text body and winmail.dat.
func tnefMessage(i int, tnef []byte) []byte {
	return []byte(fmt.Sprintf("From: Outlook User <o%d@example.com>\r\nTo: jobs@example.com\r\nSubject: Application %d\r\n"+
		"Date: Mon, 30 Nov 2026 10:%02d:00 +0000\r\nMessage-ID: <tnef%d@example.com>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMy CV is attached.\r\n"+
		"--b\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\nContent-Disposition: attachment; filename=\"winmail.dat\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s--b--\r\n", i, i, i, i, wrap76(base64.StdEncoding.EncodeToString(tnef))))
}

// TestBackfillWinmailDat: with the default accept = "cv", the PDF inside
// an Outlook winmail.dat is uploaded under its long name, and the TNEF
// container, whose first KiB holds the PDF's "%PDF-", is not; a large
// container (fetched by its head first) too. A uuencoded CV in a text body
// and an opaque S/MIME message are not taken, and named at INFO. On
// Dovecot and on Cyrus.
func TestBackfillWinmailDat(t *testing.T) { forEachServer(t, testBackfillWinmailDat) }

func testBackfillWinmailDat(t *testing.T, dv *mailServer) {
	sb := startSandbox(t)
	dir := t.TempDir()
	small := []byte("%PDF-1.4\n% CV of Jean-Étienne\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
	large := []byte("%PDF-1.7\n% a scanned CV\n" + strings.Repeat("stream data of a scanned page\n", 2000) + "%%EOF\n")
	tnefSmall := winmailDat("CVJEAN~1.PDF", "CV Jean-Étienne.pdf", small)
	tnefLarge := winmailDat("SCAN~1.PDF", "scan of my CV.pdf", large)
	if !bytes.Contains(tnefSmall[:min(len(tnefSmall), 1024)], []byte("%PDF-")) {
		t.Fatal("the container's first KiB holds no %PDF-: it would not test the old mistake")
	}
	uu := "From: Old Mailer <old@example.com>\r\nTo: jobs@example.com\r\nSubject: uuencoded CV\r\nMessage-ID: <uu@example.com>\r\n\r\n" +
		"Here is my CV.\r\n\r\nbegin 644 my-cv.pdf\r\nM)5!$1BTQ+C0*)2!#5B!O9B!C86YD:61A=&4@,0IL:6YE(#$@;&EN92`Q(&QI\r\n`\r\nend\r\n" +
		strings.Repeat("Kind regards and thank you for reading.\r\n", 4)
	smime := "From: Secure <s@example.com>\r\nTo: jobs@example.com\r\nSubject: encrypted CV\r\nMessage-ID: <sm@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=smime.p7m\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggFE\r\n"
	for i, raw := range [][]byte{tnefMessage(1, tnefSmall), tnefMessage(2, tnefLarge), []byte(uu), []byte(smime)} {
		if _, err := dv.Append("cvfeed", "INBOX", raw, nil); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	cfg := mailConfig(t, dir, sb.url, dv.Addr, "")
	r := runCvfeed(t, []string{"JOBS_IMAP_PASSWORD=" + mailPassword}, "backfill", "-config", cfg, "-no-progress")
	if r.code != 0 {
		t.Fatalf("backfill exit %d\n%s", r.code, tail(r.stderr, 30))
	}
	exactlyOnce(t, sb.profiles(t), map[string]string{
		"CV Jean-Étienne.pdf": shaHex(small),
		"scan of my CV.pdf":   shaHex(large),
	})
	for _, p := range sb.profiles(t) {
		if p.SHA256 == shaHex(tnefSmall) || p.SHA256 == shaHex(tnefLarge) || p.FileName == "winmail.dat" {
			t.Errorf("the TNEF container was uploaded: %+v", p)
		}
	}
	for _, want := range []string{"my-cv.pdf", "uuencoded file inside the text body", "opaque S/MIME"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the log does not name %q:\n%s", want, tail(r.stderr, 30))
		}
	}
	if !strings.Contains(r.stdout, "skipped 2") {
		t.Errorf("summary %q: want the uuencoded file and the S/MIME part counted as skipped", r.stdout)
	}
}
