package uploader

import "testing"

func TestQuoteName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Candidate 000001 CV.pdf", "Candidate 000001 CV.pdf"},
		{"Émilie Dupré — CV.docx", "Émilie Dupré — CV.docx"},
		{`say "hi".pdf`, `say \"hi\".pdf`},
		{`back\slash.pdf`, `back\\slash.pdf`},
		{"tab\there\r\n.pdf", "tabhere.pdf"},
		{"del\x7f.pdf", "del.pdf"},
		{"bad\xffutf8.pdf", "bad_utf8.pdf"},
		{"", "cv"},
		{"\x01\x02", "cv"},
	}
	for _, tt := range tests {
		if got := quoteName(tt.in); got != tt.want {
			t.Errorf("quoteName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
