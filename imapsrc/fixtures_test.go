package imapsrc

// The e-mail fixtures live with the MIME code, in
// ../mailpart/testdata/eml (provenance in its README.md); the account
// tests append them to real servers.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// emlDir is where the fixtures are.
var emlDir = filepath.Join("..", "mailpart", "testdata", "eml")

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
	b, err := os.ReadFile(filepath.Join(emlDir, "expected.json"))
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
	b, err := os.ReadFile(filepath.Join(emlDir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dovecotDiffers are the fixtures whose structure Dovecot reads unlike
// ParseMessage (see mailpart's dovecot_test.go for how): their names are
// not compared.
var dovecotDiffers = map[string]struct{}{
	"cpython__msg_39.eml":                          {},
	"ruby-mail__attachment_with_unquoted_name.eml": {},
}
