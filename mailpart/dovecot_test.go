package mailpart

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The files in testdata/dovecot are Dovecot 2.3.19's FETCH BODYSTRUCTURE
// responses for the fixtures, byte-exact (see testdata/README.md). Here
// they are replayed to go-imap's client by a scripted server, so that
// SelectParts sees exactly what it will see in production: parameters as
// Dovecot writes them (RFC 2231 sections joined into filename*, RFC 2047
// kept encoded, raw 8-bit literals) after go-imap's client has read them.

// fetchReplayed returns the body structure go-imap's client reads from the
// FETCH response resp.
func fetchReplayed(t *testing.T, resp []byte) imap.BodyStructure {
	t.Helper()
	// The capture's sequence number is rewritten to the one fetched.
	resp = regexp.MustCompile(`^\* \d+ FETCH`).ReplaceAll(resp, []byte("* 1 FETCH"))
	cli, srv := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer srv.Close()
		srv.SetDeadline(time.Now().Add(10 * time.Second))
		srv.Write([]byte("* OK [CAPABILITY IMAP4rev1] replay\r\n"))
		br := bufio.NewReader(srv)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch verb, _, _ := strings.Cut(strings.ToUpper(cmd), " "); verb {
			case "FETCH":
				srv.Write(resp)
				srv.Write([]byte(tag + " OK FETCH completed\r\n"))
			case "LOGOUT":
				srv.Write([]byte("* BYE\r\n" + tag + " OK LOGOUT completed\r\n"))
				return
			default:
				srv.Write([]byte(tag + " BAD unexpected\r\n"))
			}
		}
	}()
	c := imapclient.New(cli, nil)
	defer func() {
		c.Close()
		<-done
	}()
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if len(msgs) != 1 || msgs[0].BodyStructure == nil {
		t.Fatalf("FETCH returned %d messages, want 1 with a body structure", len(msgs))
	}
	return msgs[0].BodyStructure
}

// dovecotDiffers lists where Dovecot's structure of a malformed message
// differs from ParseMessage's reading (Python's), and what SelectParts
// then chooses: file -> expected part keys. Both readings are defensible;
// the bytes fetched are the same files.
var dovecotDiffers = map[string][]string{
	// Dovecot reads the inner multipart/alternative that reuses its
	// parent's boundary as three alternatives of two parts each; Python and
	// ParseMessage see one empty alternative and two parts. Same bytes.
	"cpython__msg_39.eml": {
		`1.1.1 "" rfc822=false non-text`, `1.1.2 "" rfc822=false non-text`,
		`1.2.1 "" rfc822=false non-text`, `1.2.2 "" rfc822=false non-text`,
		`1.3.1 "" rfc822=false non-text`, `1.3.2 "" rfc822=false non-text`,
	},
	// Dovecot cuts the unquoted "filename=This is a test.txt" at the
	// space, as Python's default policy does.
	"ruby-mail__attachment_with_unquoted_name.eml": {`2 "This" rfc822=false attachment`},
}

func TestSelectPartsDovecot(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.File, func(t *testing.T) {
			name := strings.TrimSuffix(fx.File, ".eml") + ".bodystructure"
			resp, err := os.ReadFile(filepath.Join("testdata", "dovecot", name))
			if err != nil {
				t.Fatal(err)
			}
			refs := SelectParts(fetchReplayed(t, resp), Policy{All: true})
			if want, ok := dovecotDiffers[fx.File]; ok {
				var got []string
				for _, r := range refs {
					got = append(got, partKey(r))
				}
				if !slices.Equal(got, want) {
					t.Errorf("SelectParts chose\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
				}
				return
			}
			crossCheck(t, refs, parseAll(t, readFixture(t, fx.File), Policy{All: true}))
		})
	}
}

// TestSelectPartsDovecotDetails checks the fields a client acts on.
func TestSelectPartsDovecotDetails(t *testing.T) {
	tests := []struct {
		file string
		want PartRef
	}{
		{"thunderbird__rfc822_base64_attachment", PartRef{
			Path: []int{2}, Section: "2", Type: "message/rfc822", Encoding: "base64", Size: 220,
			NeedsParse: true, Reason: reasonEncodedMsg,
		}},
		{"ruby-mail__content_transfer_encoding_x_uuencode", PartRef{
			Path: []int{2}, Section: "2", Filename: "PGP_Cmts_on_12-14-01_Pkg.doc", Type: "application/msword",
			Disposition: "attachment", Encoding: "x-uuencode", Size: 0, Reason: reasonAttachment, Skip: SkipEmpty,
		}},
		{"ruby-mail__japanese_attachment_long_name", PartRef{
			Path: []int{1}, Section: "1", Filename: "かきくけこかきくけこかきくけこかきくけこかきくけこ.txt",
			Type: "text/plain", Disposition: "attachment", Encoding: "7bit", Size: 18, Reason: reasonAttachment,
		}},
		{"ruby-mail__attachment_with_encoded_name", PartRef{
			Path: []int{2}, Section: "2", Filename: "01 Quien Te Dij\uFFFDat. Pitbull.mp3",
			Type: "application/octet-stream", Disposition: "attachment", Encoding: "base64", Size: 544, Reason: reasonAttachment,
		}},
		{"ruby-mail__attachment_message_rfc822", PartRef{
			Path: []int{2, 2}, Section: "2.2", Filename: "broken.pdf", Type: "application/pdf",
			Disposition: "attachment", Encoding: "base64", Size: 1402, InRFC822: true, Reason: reasonAttachment,
		}},
	}
	for _, tt := range tests {
		resp, err := os.ReadFile(filepath.Join("testdata", "dovecot", tt.file+".bodystructure"))
		if err != nil {
			t.Fatal(err)
		}
		refs := SelectParts(fetchReplayed(t, resp), Policy{All: true, MaxSize: 1 << 20})
		if len(refs) != 1 {
			t.Fatalf("%s: SelectParts = %+v, want one part", tt.file, refs)
		}
		if got := refs[0]; !refEqual(got, tt.want) {
			t.Errorf("%s: SelectParts = %+v, want %+v", tt.file, got, tt.want)
		}
	}
}

func refEqual(a, b PartRef) bool { return reflect.DeepEqual(a, b) }
