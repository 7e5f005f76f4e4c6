package mailpart

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// SelectParts returns the file parts of a message from its BODYSTRUCTURE,
// in order: the parts to fetch with BODY.PEEK[ref.Section]. The choice is
// the rule in rules.go, the same as ParseMessage's, and does not depend on
// policy.All: under the default policy these are the candidates, which
// AcceptContent then judges on their first bytes.
//
// Parameters are expected as servers send them, undecoded: DecodeFilename
// reads RFC 2231 sections (split, as Gmail sends them, or joined into
// filename*, as Dovecot does) and RFC 2047 words (which go-imap's client
// may already have decoded). Forwarded message/rfc822 parts are walked into
// and their files numbered below them ("2.1.2"); one whose own transfer
// encoding is not 7bit, 8bit or binary cannot be addressed inside and comes
// back whole with NeedsParse set.
//
// A file part is returned with Skip set when its size or encoding already
// rules it out: empty, over policy.MaxSize, or an encoding Spool cannot
// undo.
func SelectParts(bs imap.BodyStructure, policy Policy) []PartRef {
	s := &selector{policy: policy}
	s.message(bs, nil, false, 0)
	return s.refs
}

type selector struct {
	policy Policy
	refs   []PartRef
}

func (s *selector) message(bs imap.BodyStructure, prefix []int, inRFC822 bool, depth int) {
	path := prefix
	switch bs.(type) {
	case *imap.BodyStructureMultiPart:
	case *imap.BodyStructureSinglePart:
		path = childPath(prefix, 1)
	default:
		return // nil
	}
	s.entity(bs, path, scope{}, inRFC822, depth)
}

func (s *selector) entity(bs imap.BodyStructure, path []int, sc scope, inRFC822 bool, depth int) {
	act, reason, name := classify(bsHeader{bs: bs, parent: sc.parent}, sc)
	switch act {
	case actMultipart:
		mp, ok := bs.(*imap.BodyStructureMultiPart)
		if !ok || depth >= maxDepth {
			return
		}
		sub := strings.ToLower(mp.Subtype)
		for i, c := range mp.Children {
			s.entity(c, childPath(path, i+1), scope{parent: sub, index: i + 1}, inRFC822, depth+1)
		}
	case actMessage:
		sp, ok := bs.(*imap.BodyStructureSinglePart)
		if !ok || depth >= maxDepth {
			return
		}
		if msg := sp.MessageRFC822; isIdentity(sp.Encoding) && msg != nil && msg.BodyStructure != nil {
			s.message(msg.BodyStructure, path, true, depth+1)
			return
		}
		ref := s.newRef(sp, path, inRFC822, reasonEncodedMsg, "")
		ref.NeedsParse = true
		if !supportedEncoding(ref.Encoding) {
			ref.Skip = skipEncPref + strconv.Quote(ref.Encoding)
		}
		s.refs = append(s.refs, ref)
	case actNote:
		if sp, ok := bs.(*imap.BodyStructureSinglePart); ok {
			ref := s.newRef(sp, path, inRFC822, reason, "")
			ref.Skip = reason
			s.refs = append(s.refs, ref)
		}
	case actFile:
		sp, ok := bs.(*imap.BodyStructureSinglePart)
		if !ok {
			return
		}
		ref := s.newRef(sp, path, inRFC822, reason, name)
		switch {
		case !supportedEncoding(ref.Encoding):
			ref.Skip = skipEncPref + strconv.Quote(ref.Encoding)
		case ref.Size == 0:
			ref.Skip = SkipEmpty
		case s.policy.MaxSize > 0 && minDecodedSize(ref.Size, ref.Encoding) > s.policy.MaxSize:
			ref.Skip = SkipTooBig
		}
		s.refs = append(s.refs, ref)
	}
}

func (s *selector) newRef(sp *imap.BodyStructureSinglePart, path []int, inRFC822 bool, reason, name string) PartRef {
	ref := PartRef{
		Path:     path,
		Section:  sectionOf(path),
		Filename: name,
		Type:     sp.MediaType(),
		Encoding: normEncoding(sp.Encoding),
		Size:     int64(sp.Size),
		InRFC822: inRFC822,
		Reason:   reason,
	}
	if ref.Encoding == "" {
		ref.Encoding = "7bit"
	}
	if d := sp.Disposition(); d != nil {
		ref.Disposition = strings.ToLower(strings.TrimSpace(d.Value))
	}
	return ref
}

// minDecodedSize is a lower bound of the decoded size of a part of size
// encoded bytes: base64 lines of at least 16 characters, quoted-printable
// at worst "=XX" for every byte.
func minDecodedSize(size int64, enc string) int64 {
	switch normEncoding(enc) {
	case "base64":
		return size * 2 / 3
	case "quoted-printable":
		return size / 3
	}
	if isUUEncode(enc) {
		return size / 2
	}
	return size
}

// bsHeader is the partHeader of a BODYSTRUCTURE entity.
type bsHeader struct {
	bs     imap.BodyStructure
	parent string // subtype of the enclosing multipart, for digest defaults
}

func (h bsHeader) mediaType() (string, string, map[string]string) {
	switch bs := h.bs.(type) {
	case *imap.BodyStructureMultiPart:
		var params map[string]string
		if bs.Extended != nil {
			params = lowerKeys(bs.Extended.Params)
		}
		return "multipart", strings.ToLower(bs.Subtype), params
	case *imap.BodyStructureSinglePart:
		typ, sub := strings.ToLower(bs.Type), strings.ToLower(bs.Subtype)
		if typ == "" || sub == "" {
			typ, sub = digestDefault(h.parent)
		}
		return typ, sub, lowerKeys(bs.Params)
	}
	typ, sub := digestDefault(h.parent)
	return typ, sub, nil
}

func (h bsHeader) disposition() (string, map[string]string) {
	d := h.bs.Disposition()
	if d == nil {
		return "", nil
	}
	return strings.ToLower(strings.TrimSpace(d.Value)), lowerKeys(d.Params)
}

func (h bsHeader) contentID() string {
	if sp, ok := h.bs.(*imap.BodyStructureSinglePart); ok {
		return strings.TrimSpace(sp.ID)
	}
	return ""
}

// lowerKeys returns m with lower-case keys; go-imap's client lowers them
// already, a hand-built structure may not. Of keys differing in case only,
// the lower-case one wins, else the smallest; the result does not depend
// on map order.
func lowerKeys(m map[string]string) map[string]string {
	upper := false
	for k := range m {
		if strings.ToLower(k) != k {
			upper = true
		}
	}
	if !upper {
		return m
	}
	out := make(map[string]string, len(m))
	from := make(map[string]string, len(m)) // lower key -> original key
	for k, v := range m {
		lk := strings.ToLower(k)
		if prev, ok := from[lk]; !ok || k == lk || prev != lk && k < prev {
			out[lk], from[lk] = v, k
		}
	}
	return out
}
