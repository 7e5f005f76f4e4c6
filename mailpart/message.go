package mailpart

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// ErrTooLarge is returned when a part's decoded bytes exceed the policy's
// MaxSize: by Spool, and by the readers ParseMessage hands to visit.
var ErrTooLarge = errors.New("part over max size")

// ParseMessage reads a whole message (BODY.PEEK[] bytes, or a message
// saved to a file) and calls visit for each file part, in order, with the
// part's decoded bytes. It chooses the same parts, with the same IMAP part
// numbers and names, as SelectParts on the server's structure of the same
// message, and in addition walks into forwarded messages whose transfer
// encoding is base64 or quoted-printable.
//
// Parsing is lenient, since the messages come from anywhere: an mbox
// "From " line or blank lines before the header, malformed header lines,
// unquoted or 8-bit parameters, unknown charsets, missing or reused
// boundaries, truncated input and bad base64 are all read as far as they
// make sense, like Python's email package and Dovecot do. Only a read error
// from r, or an error from visit, stops it; that error is returned.
//
// The reader given to visit is valid only during the call; what visit does
// not read is skipped. Its parts have Encoding "binary" (the stream is
// already decoded) and Size -1. A part with Skip set (an unsupported
// transfer encoding) comes with an empty reader. When the policy has a
// MaxSize, reading past it fails with ErrTooLarge; visit may log that and
// return nil to go on with the next part.
func ParseMessage(r io.Reader, policy Policy, visit func(PartRef, io.Reader) error) error {
	t := &errTrap{r: r}
	w := &walker{policy: policy, visit: visit}
	err := w.message(t, nil, false, 0)
	if t.err != nil {
		return t.err
	}
	return err
}

// ParsePart finds the files inside a forwarded message that SelectParts
// marked NeedsParse: r is the part's bytes as BODY.PEEK[ref.Section]
// returns them, still in the part's transfer encoding. The parts given to
// visit are numbered below ref.Path, as ParseMessage numbers them.
func ParsePart(ref PartRef, r io.Reader, policy Policy, visit func(PartRef, io.Reader) error) error {
	t := &errTrap{r: r}
	dec, err := newDecoder(ref.Encoding, t)
	if err != nil {
		return err
	}
	w := &walker{policy: policy, visit: visit}
	err = w.message(dec, ref.Path, true, 1)
	if t.err != nil {
		return t.err
	}
	return err
}

// errTrap remembers a read error other than EOF, so that the lenient
// parser, which reads a read error as the end of input, cannot hide it.
type errTrap struct {
	r   io.Reader
	err error
}

func (t *errTrap) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

type walker struct {
	policy Policy
	visit  func(PartRef, io.Reader) error
}

// message walks a message whose header starts r. Its root is numbered
// like a server does: a multipart root's children are prefix.1, prefix.2
// ..., a single-part root is prefix.1.
func (w *walker) message(r io.Reader, prefix []int, inRFC822 bool, depth int) error {
	h, body := readHeader(bufio.NewReaderSize(r, 16<<10), true)
	ph := newParsedHeader(h, "")
	path := prefix
	if ph.typ != "multipart" {
		path = childPath(prefix, 1)
	}
	return w.entity(ph, body, path, scope{}, inRFC822, depth)
}

func (w *walker) entity(ph *parsedHeader, body io.Reader, path []int, sc scope, inRFC822 bool, depth int) error {
	act, reason, name := classify(ph, sc)
	switch act {
	case actMultipart:
		boundary := ph.params["boundary"]
		if depth >= maxDepth || boundary == "" {
			return nil
		}
		mr := newMultipartReader(body, boundary)
		for i := 1; ; i++ {
			part, err := mr.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			h, pbody := readHeader(bufio.NewReaderSize(part, 16<<10), false)
			cph := newParsedHeader(h, ph.sub)
			csc := scope{parent: ph.sub, index: i}
			if err := w.entity(cph, pbody, childPath(path, i), csc, inRFC822, depth+1); err != nil {
				return err
			}
		}
	case actMessage:
		if depth >= maxDepth {
			return nil
		}
		dec, err := newDecoder(ph.enc, body)
		if err != nil {
			return nil // cannot be read: nothing to find inside
		}
		return w.message(dec, path, true, depth+1)
	case actNote:
		return w.visit(PartRef{
			Path: path, Section: sectionOf(path), Type: ph.typ + "/" + ph.sub, Disposition: ph.disp,
			Encoding: "binary", Size: -1, InRFC822: inRFC822, Reason: reason, Skip: reason,
		}, strings.NewReader(""))
	case actFile:
		ref := PartRef{
			Path:        path,
			Section:     sectionOf(path),
			Filename:    name,
			Type:        ph.typ + "/" + ph.sub,
			Disposition: ph.disp,
			Encoding:    "binary",
			Size:        -1,
			InRFC822:    inRFC822,
			Reason:      reason,
		}
		dec, err := newDecoder(ph.enc, body)
		if err != nil {
			ref.Skip = skipEncPref + strconv.Quote(ph.enc)
			return w.visit(ref, strings.NewReader(""))
		}
		if w.policy.MaxSize > 0 {
			dec = &maxReader{r: dec, left: w.policy.MaxSize}
		}
		return w.visit(ref, dec)
	}
	return nil
}

// maxReader fails with ErrTooLarge once more than left bytes would be read.
type maxReader struct {
	r    io.Reader
	left int64
}

func (m *maxReader) Read(p []byte) (int, error) {
	if m.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > m.left+1 {
		p = p[:m.left+1]
	}
	n, err := m.r.Read(p)
	m.left -= int64(n)
	if m.left < 0 {
		return n + int(m.left), ErrTooLarge
	}
	return n, err
}
