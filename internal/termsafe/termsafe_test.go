package termsafe

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"cv.pdf", "cv.pdf"},
		{"Rénée Müller – CV 日本.pdf", "Rénée Müller – CV 日本.pdf"},
		{"\x1b[2J\rOK    api fake\n.pdf", `\x1b[2J\rOK    api fake\n.pdf`},
		{"bell\a tab\t del\x7f", `bell\a tab\t del\x7f`},
		{"csi\u009b31m nel\u0085", `csi\u009b31m nel\u0085`},
		{"evil\u202egpj.exe", `evil\u202egpj.exe`},
		{"isolate\u2066x\u2069 sep\u2028", `isolate\u2066x\u2069 sep\u2028`},
		{"latin1 \xe9t\xe9.pdf", `latin1 \xe9t\xe9.pdf`},
		{`C:\kept\as-is`, `C:\kept\as-is`},
		{"", ""},
	} {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := Escape(tt.in); strings.ContainsFunc(got, func(r rune) bool { return unsafeRune(r) }) {
			t.Errorf("Escape(%q) = %q still holds a control character", tt.in, got)
		}
	}
}

func TestLines(t *testing.T) {
	in := "c.toml:3: folder[0].path: \"a\x1bb\"\nc.toml:4: folder[0].settle: bad\r"
	want := "c.toml:3: folder[0].path: \"a\\x1bb\"\nc.toml:4: folder[0].settle: bad\\r"
	if got := Lines(in); got != want {
		t.Errorf("Lines(%q) = %q, want %q", in, got, want)
	}
}

func TestJSON(t *testing.T) {
	v := []string{"\x1b[2J\r\n", "csi\u009bm del\x7f", "rlo\u202e", "é"}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	got := JSON(b)
	for _, c := range string(got[:len(got)-1]) {
		if unsafeRune(c) {
			t.Fatalf("JSON(%q) = %q holds %U", b, got, c)
		}
	}
	if got[len(got)-1] != '\n' {
		t.Errorf("JSON dropped the final newline: %q", got)
	}
	var back []string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("JSON(%q) = %q: not JSON: %v", b, got, err)
	}
	for i := range v {
		if back[i] != v[i] {
			t.Errorf("JSON changed element %d: %q, want %q", i, back[i], v[i])
		}
	}
	if plain := []byte(`{"a":"b"}`); &JSON(plain)[0] != &plain[0] {
		t.Error("JSON copied text with nothing to escape")
	}
}

func TestURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://user:secret@api.example.com/v1.0", "https://user:xxxxx@api.example.com/v1.0"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://token@api.example.com/", "https://token@api.example.com/"},
		{"http://user:secret@host:badport/x", "http://xxxxx@host:badport/x"},
		{"http://us\x1ber:pw@host/", "http://xxxxx@host/"},
	} {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
