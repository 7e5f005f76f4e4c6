package mailpart

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// buildStructure returns the BODYSTRUCTURE a server would give for msg:
// parameters undecoded (RFC 2231 sections split, as Gmail sends them; RFC
// 2047 words encoded), sizes of the encoded bodies, and the bogus inner
// structure of a base64-encoded message/rfc822 (a server parses the
// encoded text as a message, as Dovecot does).
func buildStructure(msg []byte) imap.BodyStructure {
	h, body := readHeader(bufio.NewReader(bytes.NewReader(msg)), true)
	return buildEntity(h, body, "", 0)
}

func buildEntity(h textproto.Header, body io.Reader, parent string, depth int) imap.BodyStructure {
	ph := newParsedHeader(h, parent)
	var disp *imap.BodyStructureDisposition
	if h.Has("Content-Disposition") {
		disp = &imap.BodyStructureDisposition{Value: ph.disp, Params: ph.dparams}
	}
	if ph.typ == "multipart" {
		mp := &imap.BodyStructureMultiPart{
			Subtype:  ph.sub,
			Extended: &imap.BodyStructureMultiPartExt{Params: ph.params, Disposition: disp},
		}
		if b := ph.params["boundary"]; b != "" && depth < maxDepth {
			mr := newMultipartReader(body, b)
			for {
				part, err := mr.next()
				if err != nil {
					break
				}
				ch, cb := readHeader(bufio.NewReader(part), false)
				mp.Children = append(mp.Children, buildEntity(ch, cb, ph.sub, depth+1))
			}
		}
		return mp
	}
	raw, _ := io.ReadAll(body)
	sp := &imap.BodyStructureSinglePart{
		Type:     ph.typ,
		Subtype:  ph.sub,
		Params:   ph.params,
		ID:       ph.cid,
		Encoding: ph.enc,
		Size:     uint32(len(raw)),
		Extended: &imap.BodyStructureSinglePartExt{Disposition: disp},
	}
	if sp.MediaType() == "message/rfc822" && depth < maxDepth {
		ih, ib := readHeader(bufio.NewReader(bytes.NewReader(raw)), true)
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{BodyStructure: buildEntity(ih, ib, "", depth+1)}
	}
	return sp
}

// partKey is what both representations must agree on.
func partKey(ref PartRef) string {
	return fmt.Sprintf("%s %q rfc822=%v %s", ref.Section, ref.Filename, ref.InRFC822, ref.Reason)
}

// crossCheck compares SelectParts' choice with ParseMessage's. Parts that
// ParseMessage finds under a NeedsParse part are covered by it.
func crossCheck(t *testing.T, refs []PartRef, parsed []gotPart) {
	t.Helper()
	var want, got []string
	var needsParse [][]int
	for _, r := range refs {
		if r.NeedsParse {
			needsParse = append(needsParse, r.Path)
			continue
		}
		got = append(got, partKey(r))
	}
	for _, p := range parsed {
		covered := slices.ContainsFunc(needsParse, func(np []int) bool {
			return len(p.ref.Path) > len(np) && slices.Equal(p.ref.Path[:len(np)], np)
		})
		if !covered {
			want = append(want, partKey(p.ref))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("SelectParts chose\n\t%s\nParseMessage chose\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestSelectPartsFixtures checks, on every fixture, that SelectParts on
// the message's structure chooses what ParseMessage chooses on its bytes.
func TestSelectPartsFixtures(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.File, func(t *testing.T) {
			msg := readFixture(t, fx.File)
			refs := SelectParts(buildStructure(msg), Policy{All: true})
			crossCheck(t, refs, parseAll(t, msg, Policy{All: true}))
			for _, r := range refs {
				if r.Section != sectionOf(r.Path) || r.Size < 0 || r.Encoding == "" {
					t.Errorf("part %v: Section %q Size %d Encoding %q", r.Path, r.Section, r.Size, r.Encoding)
				}
			}
		})
	}
}

func TestSelectPartsSkips(t *testing.T) {
	single := func(typ, sub, enc string, size uint32, disp string) imap.BodyStructure {
		return &imap.BodyStructureSinglePart{
			Type: typ, Subtype: sub, Encoding: enc, Size: size,
			Params:   map[string]string{"NAME": "cv.pdf"},
			Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: disp}},
		}
	}
	tests := []struct {
		bs       imap.BodyStructure
		max      int64
		wantSkip string
	}{
		{single("APPLICATION", "PDF", "BASE64", 1000, "ATTACHMENT"), 0, ""},
		{single("application", "pdf", "base64", 0, "attachment"), 0, SkipEmpty},
		{single("application", "pdf", "base64", 3000, "attachment"), 2000, ""}, // may decode to 2000
		{single("application", "pdf", "base64", 3003, "attachment"), 2000, SkipTooBig},
		{single("application", "pdf", "7bit", 2001, "attachment"), 2000, SkipTooBig},
		{single("application", "pdf", "quoted-printable", 6000, "attachment"), 2000, ""},
		{single("application", "pdf", "x-binhex", 10, "attachment"), 0, `unsupported transfer encoding "x-binhex"`},
	}
	for _, tt := range tests {
		refs := SelectParts(tt.bs, Policy{MaxSize: tt.max})
		if len(refs) != 1 {
			t.Fatalf("SelectParts(%v) = %d parts, want 1", tt.bs, len(refs))
		}
		r := refs[0]
		if r.Skip != tt.wantSkip || r.Section != "1" || r.Filename != "cv.pdf" || r.Type != "application/pdf" || r.Disposition != "attachment" {
			t.Errorf("SelectParts(%s, %s, %d, max %d) = %+v, want Skip %q", r.Type, r.Encoding, r.Size, tt.max, r, tt.wantSkip)
		}
	}
	if refs := SelectParts(nil, Policy{}); refs != nil {
		t.Errorf("SelectParts(nil) = %v, want nil", refs)
	}
}
