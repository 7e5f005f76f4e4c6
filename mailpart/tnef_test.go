package mailpart

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

// tnefBuilder writes TNEF streams the way Outlook lays them out
// (MS-OXTNEF 2.1.3): signature, key, then attributes with checksums.
type tnefBuilder struct{ b bytes.Buffer }

func newTNEF() *tnefBuilder {
	t := &tnefBuilder{}
	binary.Write(&t.b, binary.LittleEndian, uint32(tnefSignature))
	binary.Write(&t.b, binary.LittleEndian, uint16(0x1234))
	// A message-level attribute first, as real streams have (attTnefVersion).
	t.attr(1, 0x00089006, []byte{0, 0, 1, 0})
	return t
}

func (t *tnefBuilder) attr(level byte, id uint32, data []byte) *tnefBuilder {
	t.b.WriteByte(level)
	binary.Write(&t.b, binary.LittleEndian, id)
	binary.Write(&t.b, binary.LittleEndian, uint32(len(data)))
	t.b.Write(data)
	var sum uint16
	for _, c := range data {
		sum += uint16(c)
	}
	binary.Write(&t.b, binary.LittleEndian, sum)
	return t
}

func (t *tnefBuilder) bytes() []byte { return t.b.Bytes() }

// attachment adds an attachment: RendData, Title (8.3), Data, then the
// MAPI properties (props may be nil).
func (t *tnefBuilder) attachment(title string, data []byte, props []byte) *tnefBuilder {
	t.attr(2, attAttachRendData, make([]byte, 14))
	if title != "" {
		t.attr(2, attAttachTitle, append([]byte(title), 0))
	}
	if data != nil {
		t.attr(2, attAttachData, data)
	}
	if props != nil {
		t.attr(2, attAttachment, props)
	}
	return t
}

// mapiProps encodes MAPI properties (the data of attAttachment).
type mapiProps struct {
	n int
	b bytes.Buffer
}

func (p *mapiProps) tag(typ, id uint16) {
	p.n++
	binary.Write(&p.b, binary.LittleEndian, typ)
	binary.Write(&p.b, binary.LittleEndian, id)
}

func (p *mapiProps) long(id uint16, v uint32) *mapiProps {
	p.tag(ptLong, id)
	binary.Write(&p.b, binary.LittleEndian, v)
	return p
}

func (p *mapiProps) varValue(typ, id uint16, v []byte) *mapiProps {
	p.tag(typ, id)
	binary.Write(&p.b, binary.LittleEndian, uint32(1))
	binary.Write(&p.b, binary.LittleEndian, uint32(len(v)))
	p.b.Write(v)
	p.b.Write(make([]byte, pad4(int64(len(v)))-int64(len(v))))
	return p
}

func (p *mapiProps) unicode(id uint16, s string) *mapiProps {
	var v []byte
	for _, c := range utf16.Encode([]rune(s + "\x00")) {
		v = binary.LittleEndian.AppendUint16(v, c)
	}
	return p.varValue(ptUnicode, id, v)
}

// named adds a named property (GUID, kind 1, a UTF-16 name) of type long.
func (p *mapiProps) named(name string, v uint32) *mapiProps {
	p.tag(ptLong, 0x8005)
	p.b.Write(make([]byte, 16))
	binary.Write(&p.b, binary.LittleEndian, uint32(1))
	var nb []byte
	for _, c := range utf16.Encode([]rune(name + "\x00")) {
		nb = binary.LittleEndian.AppendUint16(nb, c)
	}
	binary.Write(&p.b, binary.LittleEndian, uint32(len(nb)))
	p.b.Write(nb)
	p.b.Write(make([]byte, pad4(int64(len(nb)))-int64(len(nb))))
	binary.Write(&p.b, binary.LittleEndian, v)
	return p
}

func (p *mapiProps) bytes() []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(p.n)), p.b.Bytes()...)
}

var (
	tnefPDF  = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	tnefDOCX = append([]byte("PK\x03\x04"), make([]byte, 40)...)
)

type tnefGot struct {
	name string
	data string
}

func readAllTNEF(t *testing.T, b []byte) ([]tnefGot, error) {
	t.Helper()
	files, err := ReadTNEF(bytes.NewReader(b), int64(len(b)))
	var got []tnefGot
	for _, f := range files {
		d, rerr := io.ReadAll(f.Data)
		if rerr != nil {
			t.Fatalf("read file %q: %v", f.Name, rerr)
		}
		got = append(got, tnefGot{f.Name, string(d)})
	}
	return got, err
}

func TestReadTNEF(t *testing.T) {
	// An embedded message: its own TNEF stream behind a 16-byte IID.
	inner := newTNEF().attachment("INNER~1.PDF", []byte("%PDF-inner"), new(mapiProps).
		unicode(prAttachLongFilename, "inner résumé.pdf").bytes()).bytes()
	obj := append(make([]byte, 16), inner...)

	tests := []struct {
		name string
		tnef []byte
		want []tnefGot
	}{
		{"long name wins over the 8.3 title",
			newTNEF().attachment("CV_JEA~1.PDF", tnefPDF, new(mapiProps).
				long(prAttachMethod, 1).
				named("x-custom", 7).
				unicode(prAttachLongFilename, "CV Jean-Étienne Dupont.pdf").bytes()).bytes(),
			[]tnefGot{{"CV Jean-Étienne Dupont.pdf", string(tnefPDF)}}},
		{"8.3 title alone",
			newTNEF().attachment("RESUME.PDF", tnefPDF, nil).bytes(),
			[]tnefGot{{"RESUME.PDF", string(tnefPDF)}}},
		{"bytes in PR_ATTACH_DATA_OBJ, no attAttachData",
			newTNEF().attachment("", nil, new(mapiProps).
				varValue(ptBinary, prAttachDataObj, tnefDOCX).
				unicode(prAttachLongFilename, "cv.docx").bytes()).bytes(),
			[]tnefGot{{"cv.docx", string(tnefDOCX)}}},
		{"two attachments and an embedded message",
			newTNEF().
				attachment("A.PDF", []byte("%PDF-a"), nil).
				attachment("Untitled Attachment", []byte("This attachment is a MAPI 1.0 embedded message"), new(mapiProps).
					long(prAttachMethod, attachEmbeddedMsg).
					varValue(ptObject, prAttachDataObj, obj).bytes()).
				attachment("B.DOC", []byte("doc bytes"), nil).bytes(),
			[]tnefGot{{"A.PDF", "%PDF-a"}, {"inner résumé.pdf", "%PDF-inner"}, {"B.DOC", "doc bytes"}}},
		{"an 8-bit title in Windows-1252",
			newTNEF().attachment("R\xc9SUM\xc9.PDF", []byte("x"), nil).bytes(),
			[]tnefGot{{"RÉSUMÉ.PDF", "x"}}},
		{"body only: no file",
			newTNEF().attr(1, 0x00069003, new(mapiProps).long(0x0E07, 1).bytes()).bytes(),
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAllTNEF(t, tt.tnef)
			if err != nil {
				t.Fatalf("ReadTNEF: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ReadTNEF = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("file %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReadTNEFDamaged(t *testing.T) {
	good := newTNEF().attachment("A.PDF", []byte("%PDF-a"), nil).bytes()
	full := newTNEF().attachment("A.PDF", []byte("%PDF-a"), nil).attachment("B.PDF", tnefPDF, nil).bytes()
	hugeLen := newTNEF().attachment("A.PDF", []byte("%PDF-a"), nil).attr(2, attAttachRendData, nil).bytes()
	hugeLen = append(hugeLen, 2)
	hugeLen = binary.LittleEndian.AppendUint32(hugeLen, attAttachData)
	hugeLen = binary.LittleEndian.AppendUint32(hugeLen, 0xFFFFFFF0)
	hugeLen = append(hugeLen, "%PDF-"...)
	manyProps := newTNEF().attachment("A.PDF", []byte("%PDF-a"), binary.LittleEndian.AppendUint32(nil, 0xFFFFFFFF)).bytes()

	tests := []struct {
		name  string
		tnef  []byte
		files int
	}{
		{"not TNEF", []byte("%PDF-1.4 not a TNEF stream"), 0},
		{"signature only", good[:4], 0},
		{"cut inside the second attachment's data", full[:len(full)-20], 1},
		{"a length past the end", hugeLen, 1},
		{"a property count no attribute can hold", manyProps, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAllTNEF(t, tt.tnef)
			if !errors.Is(err, ErrBadTNEF) {
				t.Errorf("ReadTNEF error = %v, want ErrBadTNEF", err)
			}
			if len(got) != tt.files {
				t.Errorf("ReadTNEF found %q, want %d file(s) found before the damage", got, tt.files)
			}
		})
	}
}

// TestReadTNEFFixture reads a real winmail.dat (Outlook 2016, from MimeKit:
// see testdata/eml/README.md): one picture attached, and two embedded
// messages, one of which carries the same picture again.
func TestReadTNEFFixture(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // name and the first 16 hex of the SHA-256
	}{
		{"mimekit__tnef-rich-text.eml", []string{
			"kitten-playing-with-a-christmas-tree.jpg 375081 f79d79bf20d19d17",
			"kitten-playing-with-a-christmas-tree.jpg 375081 f79d79bf20d19d17",
		}},
		{"mimekit__tnef-ukr.eml", nil}, // only the rich-text body inside
	} {
		t.Run(tc.file, func(t *testing.T) {
			var got []string
			containers := 0
			err := ParseMessage(bytes.NewReader(readFixture(t, tc.file)), Policy{All: true}, func(ref PartRef, r io.Reader) error {
				b, err := io.ReadAll(r)
				if err != nil || !IsTNEF(b) {
					return err
				}
				containers++
				if ok, why := (Policy{All: true}).AcceptContent(ref, b); ok || why != SkipTNEF {
					t.Errorf("AcceptContent(winmail.dat) = %v, %q; want false, %q", ok, why, SkipTNEF)
				}
				n, err := UnpackTNEF(ref, bytes.NewReader(b), t.TempDir(), 0, func(in PartRef, r io.Reader) error {
					h := sha256.New()
					size, err := io.Copy(h, r)
					if !in.InTNEF || in.Disposition != "attachment" || !strings.HasPrefix(in.Section, "2/tnef-") || in.Size != size {
						t.Errorf("inner ref %+v (read %d bytes)", in, size)
					}
					got = append(got, in.Filename+" "+strconv.FormatInt(size, 10)+" "+hex.EncodeToString(h.Sum(nil))[:16])
					return err
				})
				if n != len(got) {
					t.Errorf("UnpackTNEF = %d, visited %d", n, len(got))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if containers != 1 {
				t.Fatalf("%d TNEF containers, want 1", containers)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("files in winmail.dat:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestUnpackTNEFLimits(t *testing.T) {
	tn := newTNEF().attachment("A.PDF", tnefPDF, nil).bytes()
	dir := t.TempDir()
	ref := PartRef{Path: []int{2}, Section: "2"}
	if _, err := UnpackTNEF(ref, bytes.NewReader(tn), dir, int64(len(tn)-1), func(PartRef, io.Reader) error { return nil }); !errors.Is(err, ErrTooLarge) {
		t.Errorf("UnpackTNEF over max size: %v, want ErrTooLarge", err)
	}
	cut := tn[:len(tn)-10]
	n, err := UnpackTNEF(ref, bytes.NewReader(cut), dir, 0, func(PartRef, io.Reader) error { return nil })
	if n != 0 || !errors.Is(err, ErrBadTNEF) {
		t.Errorf("UnpackTNEF(truncated) = %d, %v; want 0, ErrBadTNEF", n, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("UnpackTNEF left %d file(s) in its directory", len(ents))
	}
}

// FuzzReadTNEF: on any bytes, ReadTNEF neither panics nor hangs, finds at
// most maxTNEFFiles files, each a section inside the input, with a UTF-8
// name of bounded length, and fails only with ErrBadTNEF.
func FuzzReadTNEF(f *testing.F) {
	inner := newTNEF().attachment("I.PDF", []byte("%PDF-i"), nil).bytes()
	f.Add(newTNEF().attachment("CV~1.PDF", tnefPDF, new(mapiProps).long(prAttachMethod, 1).
		unicode(prAttachLongFilename, "cv.pdf").named("n", 1).bytes()).bytes())
	f.Add(newTNEF().attachment("U", nil, new(mapiProps).long(prAttachMethod, attachEmbeddedMsg).
		varValue(ptObject, prAttachDataObj, append(make([]byte, 16), inner...)).bytes()).bytes())
	f.Add(newTNEF().bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		files, err := ReadTNEF(bytes.NewReader(b), int64(len(b)))
		if err != nil && !errors.Is(err, ErrBadTNEF) {
			t.Fatalf("ReadTNEF: %v, not ErrBadTNEF", err)
		}
		if len(files) > maxTNEFFiles {
			t.Fatalf("%d files", len(files))
		}
		for _, fl := range files {
			if fl.Data.Size() <= 0 || fl.Data.Size() > int64(len(b)) {
				t.Errorf("file %q of size %d in %d bytes", fl.Name, fl.Data.Size(), len(b))
			}
			if n, err := io.Copy(io.Discard, fl.Data); err != nil || n != fl.Data.Size() {
				t.Errorf("file %q: read %d of %d bytes: %v", fl.Name, n, fl.Data.Size(), err)
			}
			if len(fl.Name) > 4*maxTNEFName {
				t.Errorf("name of %d bytes", len(fl.Name))
			}
		}
	})
}
