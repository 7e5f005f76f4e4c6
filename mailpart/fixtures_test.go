package mailpart

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fixture is one entry of testdata/eml/expected.json.
type fixture struct {
	File            string         `json:"file"`
	ExpectedUploads []expectedPart `json:"expected_uploads"`
	NotUploaded     []expectedPart `json:"not_uploaded"`
	Notes           string         `json:"notes"`
}

type expectedPart struct {
	Part     string  `json:"part"`
	Filename *string `json:"filename"`
	Size     int64   `json:"size"`
	SHA256   string  `json:"sha256"` // first 16 hex
	InRFC822 bool    `json:"in_rfc822"`
}

// nameOverrides are the names expected.json's notes give where its
// filename field (Python's default policy) is not what a lenient reader
// finds: file -> part -> name.
var nameOverrides = map[string]map[string]string{
	// "Unquoted parameter with spaces ... Expected (lenient): 'This is a test.txt'."
	"ruby-mail__attachment_with_unquoted_name.eml": {"2": "This is a test.txt"},
	// "UNQUOTED RFC 2047 encoded-word as parameter value ... expected 'This is a test.pdf'."
	"ruby-mail__attachment_with_base64_encoded_name.eml": {"2": "This is a test.pdf"},
}

// tnefUploads are the files taken from fixtures whose attachment is a TNEF
// container (winmail.dat), in place of expected.json's uploads, which list
// the container itself: its notes say "a TNEF-aware one should yield the
// inner files" (rich-text: the picture, attached once and again inside an
// embedded message; ukr: the container holds no file).
var tnefUploads = map[string][]expectedPart{
	"mimekit__tnef-rich-text.eml": {
		{Part: "2/tnef-1", Filename: ptr("kitten-playing-with-a-christmas-tree.jpg"), Size: 375081, SHA256: "f79d79bf20d19d17"},
		{Part: "2/tnef-2", Filename: ptr("kitten-playing-with-a-christmas-tree.jpg"), Size: 375081, SHA256: "f79d79bf20d19d17"},
	},
	"mimekit__tnef-ukr.eml": {},
}

func ptr(s string) *string { return &s }

// uploads are the files a TNEF-aware reader takes from the fixture.
func (fx fixture) uploads() []expectedPart {
	if ups, ok := tnefUploads[fx.File]; ok {
		return ups
	}
	return fx.ExpectedUploads
}

func (e expectedPart) name(file string) string {
	if n, ok := nameOverrides[file][e.Part]; ok {
		return n
	}
	if e.Filename == nil {
		return ""
	}
	return *e.Filename
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "eml", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	if err := json.Unmarshal(b, &fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) == 0 {
		t.Fatal("no fixtures")
	}
	return fs
}

func readFixture(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "eml", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gotPart is a part found by ParseMessage with its decoded bytes' digest.
type gotPart struct {
	ref  PartRef
	size int64
	sha  string // first 16 hex
}

func parseAll(t testing.TB, msg []byte, policy Policy) []gotPart {
	t.Helper()
	var got []gotPart
	err := ParseMessage(bytes.NewReader(msg), policy, func(ref PartRef, r io.Reader) error {
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		got = append(got, gotPart{ref, n, hex.EncodeToString(h.Sum(nil))[:16]})
		return nil
	})
	if err != nil {
		t.Fatalf("ParseMessage: %v", err)
	}
	return got
}

func TestParseMessageFixtures(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.File, func(t *testing.T) {
			got := parseAll(t, readFixture(t, fx.File), Policy{All: true})
			if len(got) != len(fx.ExpectedUploads) {
				for _, g := range got {
					t.Logf("got part %s %q size %d sha %s", g.ref.Section, g.ref.Filename, g.size, g.sha)
				}
				t.Fatalf("ParseMessage found %d files, want %d", len(got), len(fx.ExpectedUploads))
			}
			for i, want := range fx.ExpectedUploads {
				g := got[i]
				if g.ref.Section != want.Part {
					t.Errorf("file %d: part %q, want %q", i, g.ref.Section, want.Part)
				}
				if g.ref.Filename != want.name(fx.File) {
					t.Errorf("part %s: filename %q, want %q", want.Part, g.ref.Filename, want.name(fx.File))
				}
				if g.size != want.Size || g.sha != want.SHA256 {
					t.Errorf("part %s: size %d sha %s, want size %d sha %s", want.Part, g.size, g.sha, want.Size, want.SHA256)
				}
				if g.ref.InRFC822 != want.InRFC822 {
					t.Errorf("part %s: InRFC822 %v, want %v", want.Part, g.ref.InRFC822, want.InRFC822)
				}
				if g.ref.Encoding != "binary" || g.ref.Size != -1 || g.ref.Skip != "" || g.ref.Reason == "" {
					t.Errorf("part %s: Encoding %q Size %d Skip %q Reason %q, want binary, -1, no skip, a reason",
						want.Part, g.ref.Encoding, g.ref.Size, g.ref.Skip, g.ref.Reason)
				}
				if s := SafeName(g.ref.Filename, nil); !validSafeName(s) {
					t.Errorf("part %s: SafeName(%q) = %q, not a safe name", want.Part, g.ref.Filename, s)
				}
			}
			for _, no := range fx.NotUploaded {
				for _, g := range got {
					if g.ref.Section == no.Part {
						t.Errorf("part %s (%s) uploaded, want not", no.Part, g.ref.Filename)
					}
				}
			}
		})
	}
}
