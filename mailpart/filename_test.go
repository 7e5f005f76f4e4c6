package mailpart

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeFilename(t *testing.T) {
	pdf := []byte("%PDF-1.7\n")
	long := strings.Repeat("a", 296) + ".pdf"
	tests := []struct {
		disp, ctype string // header values, as in the message
		want        string // DecodeFilename
		wantSafe    string // SafeName of it, for a PDF
	}{
		// RFC 2231: charsets, continuations, order, gaps.
		{`attachment; filename*=iso-8859-1''cv%E9.pdf`, ``, "cvé.pdf", "cvé.pdf"},
		{`attachment; filename*=utf-8'en'%E2%9C%94.pdf`, ``, "✔.pdf", "✔.pdf"},
		{`attachment; filename*0*=UTF-8''Lebenslauf%20J%C3%BC; filename*1*=rgen%20M%C3%BCller.pdf`, ``,
			"Lebenslauf Jürgen Müller.pdf", "Lebenslauf Jürgen Müller.pdf"},
		{`attachment;` + "\r\n\t" + `filename*0*=utf-8''%E3%81%8B%E3; filename*1*=%81%8D.txt`, ``, "かき.txt", "かき.txt"},
		{`attachment; filename*0="Curriculum "; filename*1="Vitae.pdf"`, ``, "Curriculum Vitae.pdf", "Curriculum Vitae.pdf"},
		{`attachment; filename*1*=b.pdf; filename*0*=utf-8''a`, ``, "ab.pdf", "ab.pdf"},
		{`attachment; filename*0*=utf-8''a; filename*2*=c`, ``, "a", "a"},
		{`attachment; filename*=''cv.pdf`, ``, "cv.pdf", "cv.pdf"},
		{`attachment; filename*=cv%20final.pdf`, ``, "cv final.pdf", "cv final.pdf"},
		{`attachment; filename*=windows-1251''%D0%E5%E7%FE%EC%E5.pdf`, ``, "Резюме.pdf", "Резюме.pdf"},
		{`attachment; filename*=x-unknown''cv%E9.pdf`, ``, "cvé.pdf", "cvé.pdf"},
		{`attachment; filename*=utf-8''cv%E9.pdf`, ``, "cvé.pdf", "cvé.pdf"}, // lies about UTF-8
		{`attachment; filename*=utf-8''100%.pdf`, ``, "100%.pdf", "100%.pdf"},
		{``, `application/octet-stream; name*=iso-2022-jp'ja'01%20Dij%8aat.mp3`, "01 Dij\uFFFDat.mp3", "01 Dij\uFFFDat.mp3"},
		// Which parameter wins.
		{`attachment; filename="a.pdf"; filename*=utf-8''b.pdf`, `application/pdf; name="c.pdf"`, "b.pdf", "b.pdf"},
		{`inline; filename="truncated.png"`, `image/png; name="byo-ror-cover.png"`, "truncated.png", "truncated.png"},
		{`attachment`, `application/pdf; name="c.pdf"`, "c.pdf", "c.pdf"},
		{``, `application/pdf; name*=utf-8''%C3%A9.pdf; name="e.pdf"`, "é.pdf", "é.pdf"},
		{`attachment; FILENAME="A.PDF"`, ``, "A.PDF", "A.PDF"},
		{`attachment; filename=""`, `application/pdf; name="c.pdf"`, "c.pdf", "c.pdf"},
		// RFC 2047, B and Q, in quoted and unquoted parameters.
		{`attachment; filename="=?UTF-8?B?Q3VycmljdWx1bSBWaXTDpiDigJMgWm/Dqy5wZGY=?="`, ``,
			"Curriculum Vitæ – Zoë.pdf", "Curriculum Vitæ – Zoë.pdf"},
		{``, `image/jpeg; name="=?ISO-8859-1?Q?Eelanal=FC=FCsi_p=E4ring.jpg?="`, "Eelanalüüsi päring.jpg", "Eelanalüüsi päring.jpg"},
		{`attachment; filename="=?utf-8?q?Lebenslauf_M=C3=BCller.pdf?="`, ``, "Lebenslauf Müller.pdf", "Lebenslauf Müller.pdf"},
		{`attachment; filename==?utf-8?B?VGhpcyBpcyBhIHRlc3QucGRm?=`, ``, "This is a test.pdf", "This is a test.pdf"},
		{``, `image/gif; name="nyan cat =?UTF-8?Q?=E2=9C=94=2Egif?="`, "nyan cat ✔.gif", "nyan cat ✔.gif"},
		{``, `text/plain; name="=?koi8-r?B?0sXawM3FLnBkZg==?="`, "резюме.pdf", "резюме.pdf"},
		// Encoded words split in the middle of a character.
		{`attachment; filename="=?utf-8?Q?Caf=C3?= =?utf-8?Q?=A9.pdf?="`, ``, "Café.pdf", "Café.pdf"},
		{`attachment; filename="=?UTF-8?B?ww==?=` + "\r\n " + `=?UTF-8?B?qS5wZGY=?="`, ``, "é.pdf", "é.pdf"},
		{`attachment; filename="=?shift_jis?B?l5qX?= =?shift_jis?B?8I+RLnBkZg==?="`, ``, "履歴書.pdf", "履歴書.pdf"},
		{`attachment; filename="=?ISO-2022-JP?B?GyRCTXpOchsoQg==?= =?ISO-2022-JP?B?GyRCPXEbKEIucGRm?="`, ``, "履歴書.pdf", "履歴書.pdf"},
		{``, `text/plain; name="=?utf-8?B?44GL44GN?=` + "\r\n " + `=?utf-8?B?LnR4dA==?="`, "かき.txt", "かき.txt"},
		// Words in different charsets, and words that do not decode.
		{`attachment; filename="=?iso-8859-1?Q?=E9?= =?utf-8?Q?=C3=A9?="`, ``, "éé", "éé"},
		{`attachment; filename="=?x-unknown?Q?caf=E9.pdf?="`, ``, "café.pdf", "café.pdf"},
		{`attachment; filename="=?utf-8?X?abc?=.pdf"`, ``, "=?utf-8?X?abc?=.pdf", "=?utf-8?X?abc?=.pdf"},
		{`attachment; filename="cv =?utf-8?Q?=C3=A9 ?= .pdf"`, ``, "cv é  .pdf", "cv é  .pdf"},
		{`attachment; filename="=?utf-8?q?broken"`, ``, "=?utf-8?q?broken", "=?utf-8?q?broken"},
		// Raw 8-bit bytes, unquoted values.
		{`attachment; filename=ciële.txt`, `text/plain; name=ciële.txt`, "ciële.txt", "ciële.txt"},
		{"attachment; filename=\"cv\xe9 \x80.pdf\"", ``, "cvé €.pdf", "cvé €.pdf"},
		{`attachment; filename=This is a test.txt`, ``, "This is a test.txt", "This is a test.txt"},
		{`attachment; filename=cv.pdf;size=1`, ``, "cv.pdf", "cv.pdf"},
		{`attachment; filename="unterminated.pdf`, ``, "unterminated.pdf", "unterminated.pdf"},
		{`attachment; filename="say \"hi\".pdf"`, ``, `say "hi".pdf`, `say "hi".pdf`},
		{`attachment filename="nosemicolon.pdf"`, ``, "nosemicolon.pdf", "nosemicolon.pdf"},
		// Names that must not become paths or reach the API as they are.
		{`attachment; filename="../../etc/passwd"`, ``, "../../etc/passwd", "passwd"},
		{`attachment; filename="C:\Users\x\cv.pdf"`, ``, `C:\Users\x\cv.pdf`, "cv.pdf"},
		{`attachment; filename="=?utf-8?Q?..=2F..=2Fcv.pdf?="`, ``, "../../cv.pdf", "cv.pdf"},
		{`attachment; filename*=utf-8''%2Fetc%2Fcron.d%2Fx`, ``, "/etc/cron.d/x", "x"},
		{"attachment; filename=\"cv\x01\x7f.pdf\"", ``, "cv\x01\x7f.pdf", "cv.pdf"},
		{`attachment; filename="=?utf-8?Q?cv=00=0A=E2=80=AEfdp.exe?="`, ``, "cv\x00\n\u202efdp.exe", "cvfdp.exe"},
		{`attachment; filename="` + long + `"`, ``, long, strings.Repeat("a", 251) + ".pdf"},
		{`attachment; filename=".."`, ``, "..", "attachment.pdf"},
		{`attachment; filename=""`, ``, "", "attachment.pdf"},
		{`attachment; filename="   "`, ``, "", "attachment.pdf"},
		{``, ``, "", "attachment.pdf"},
	}
	for _, tt := range tests {
		_, dp := parseHeaderValue(tt.disp)
		_, cp := parseHeaderValue(tt.ctype)
		got := DecodeFilename(dp, cp)
		if got != tt.want {
			t.Errorf("DecodeFilename(%q, %q) = %q, want %q", tt.disp, tt.ctype, got, tt.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("DecodeFilename(%q, %q) = %q: not UTF-8", tt.disp, tt.ctype, got)
		}
		if safe := SafeName(got, pdf); safe != tt.wantSafe {
			t.Errorf("SafeName(%q) = %q, want %q", got, safe, tt.wantSafe)
		}
	}
}

func TestParseHeaderValue(t *testing.T) {
	tests := []struct {
		in, value string
		params    map[string]string
	}{
		{`text/plain`, "text/plain", nil},
		{` Multipart/Mixed ;boundary="a;b" ; ; charset=x`, "multipart/mixed", map[string]string{"boundary": "a;b", "charset": "x"}},
		{`attachment; filename="a.pdf"; FileName="b.pdf"`, "attachment", map[string]string{"filename": "a.pdf"}},
		{`inline; broken; filename = "a.pdf"`, "inline", map[string]string{"filename": "a.pdf"}},
		{`application/pdf; name=cv (1).pdf`, "application/pdf", map[string]string{"name": "cv (1).pdf"}},
		{``, "", nil},
	}
	for _, tt := range tests {
		v, p := parseHeaderValue(tt.in)
		if v != tt.value || len(p) != len(tt.params) {
			t.Errorf("parseHeaderValue(%q) = %q, %v, want %q, %v", tt.in, v, p, tt.value, tt.params)
			continue
		}
		for k, want := range tt.params {
			if p[k] != want {
				t.Errorf("parseHeaderValue(%q)[%q] = %q, want %q", tt.in, k, p[k], want)
			}
		}
	}
}
