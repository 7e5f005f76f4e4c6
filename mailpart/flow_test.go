package mailpart

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// sectionBody returns what BODY[section] returns for msg: the body of the
// part at path, still transfer-encoded.
func sectionBody(msg []byte, path []int) ([]byte, bool) {
	h, body := readHeader(bufio.NewReader(bytes.NewReader(msg)), true)
	return messageSection(h, body, path)
}

func messageSection(h textproto.Header, body io.Reader, path []int) ([]byte, bool) {
	ph := newParsedHeader(h, "")
	if ph.typ == "multipart" {
		return entitySection(ph, body, path)
	}
	if len(path) == 0 || path[0] != 1 {
		return nil, false
	}
	return leafSection(ph, body, path[1:])
}

func entitySection(ph *parsedHeader, body io.Reader, path []int) ([]byte, bool) {
	if len(path) == 0 {
		return nil, false
	}
	mr := newMultipartReader(body, ph.params["boundary"])
	for i := 1; ; i++ {
		part, err := mr.next()
		if err != nil {
			return nil, false
		}
		if i == path[0] {
			h, b := readHeader(bufio.NewReader(part), false)
			cph := newParsedHeader(h, ph.sub)
			if cph.typ == "multipart" && len(path) > 1 {
				return entitySection(cph, b, path[1:])
			}
			return leafSection(cph, b, path[1:])
		}
	}
}

func leafSection(ph *parsedHeader, body io.Reader, rest []int) ([]byte, bool) {
	if len(rest) == 0 {
		b, err := io.ReadAll(body)
		return b, err == nil
	}
	if ph.typ+"/"+ph.sub != "message/rfc822" {
		return nil, false
	}
	h, b := readHeader(bufio.NewReader(body), true)
	return messageSection(h, b, rest)
}

// TestFlow runs the flow doc.go describes over every fixture, through the
// structure (SelectParts, a fetch per section, ParsePart) and through the
// whole message (ParseMessage), and checks that both spool the same files:
// under accept = ["all"], expected.json's files less the empty ones, with
// the files inside a winmail.dat in place of the container.
func TestFlow(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.File, func(t *testing.T) {
			msg := readFixture(t, fx.File)
			policy := Policy{All: true, MaxSize: 10 << 20}
			dir := t.TempDir()
			var viaStructure, viaMessage []string
			var take func(got *[]string) func(PartRef, io.Reader) error
			take = func(got *[]string) func(PartRef, io.Reader) error {
				return func(ref PartRef, body io.Reader) error {
					dec, err := Decode(ref.Encoding, body)
					if err != nil {
						return err
					}
					br := bufio.NewReaderSize(dec, HeadSize)
					head, _ := br.Peek(HeadSize)
					if IsTNEF(head) {
						_, err := UnpackTNEF(ref, br, dir, policy.MaxSize, take(got))
						return err
					}
					if ok, _ := policy.AcceptContent(ref, head); !ok {
						return nil
					}
					_, sha, _, err := Spool(dir, "binary", br, policy.MaxSize)
					if errors.Is(err, ErrTooLarge) {
						return nil
					}
					*got = append(*got, hex.EncodeToString(sha[:8])+" "+SafeName(ref.Filename, head))
					return err
				}
			}
			for _, ref := range SelectParts(buildStructure(msg), policy) {
				if ref.Skip != "" {
					continue
				}
				body, ok := sectionBody(msg, ref.Path)
				if !ok {
					t.Fatalf("no section %s in the message", ref.Section)
				}
				var err error
				if ref.NeedsParse {
					err = ParsePart(ref, bytes.NewReader(body), policy, take(&viaStructure))
				} else {
					err = take(&viaStructure)(ref, bytes.NewReader(body))
				}
				if err != nil {
					t.Fatalf("part %s: %v", ref.Section, err)
				}
			}
			if err := ParseMessage(bytes.NewReader(msg), policy, take(&viaMessage)); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, e := range fx.uploads() {
				if e.Size > 0 {
					want = append(want, e.SHA256+" "+SafeName(e.name(fx.File), nil))
				}
			}
			// SafeName's fallback for a nameless part depends on the head.
			trim := func(s []string) []string {
				out := make([]string, len(s))
				for i, v := range s {
					out[i] = v[:16]
				}
				return out
			}
			if !slices.Equal(trim(viaStructure), trim(want)) || !slices.Equal(viaStructure, viaMessage) {
				t.Errorf("spooled via the structure %q, via the message %q, want %q", viaStructure, viaMessage, want)
			}
		})
	}
}
