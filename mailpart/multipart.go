package mailpart

import (
	"bufio"
	"bytes"
	"io"
)

// multipartReader splits a multipart body into its parts, streaming and
// leniently. go-message's textproto.MultipartReader (a copy of
// mime/multipart) fixes the line-end style at the first boundary, fails the
// whole multipart on a malformed part header or a stray line between parts,
// and fails a truncated last part. Real mail has all of those; here:
//
//   - each delimiter line is recognised with either line end;
//   - a part is raw bytes up to the next delimiter, its header parsed later
//     by readHeader (lenient);
//   - no delimiter at all means no parts (cpython's msg_39, whose inner
//     multipart reuses its parent's boundary and is empty);
//   - the end of input ends the last part and the multipart, with or
//     without the close delimiter.
//
// A delimiter line is "--boundary" followed by optional spaces and the line
// end; the close delimiter is "--boundary--" followed by anything. The line
// end before a delimiter belongs to it, not to the part (RFC 2046 5.1.1).
type multipartReader struct {
	br   *bufio.Reader
	dash []byte // "--" + boundary
	cur  *partReader
	done bool
	err  error // a read error other than EOF, sticky
}

func newMultipartReader(r io.Reader, boundary string) *multipartReader {
	return &multipartReader{
		br:   bufio.NewReaderSize(r, 16<<10),
		dash: []byte("--" + boundary),
	}
}

// Delimiter kinds.
const (
	notDelim = iota
	delim
	closeDelim
)

func (mr *multipartReader) delimiter(line []byte) int {
	rest, ok := bytes.CutPrefix(line, mr.dash)
	if !ok {
		return notDelim
	}
	if bytes.HasPrefix(rest, []byte("--")) {
		return closeDelim
	}
	if len(bytes.TrimRight(rest, " \t\r\n")) == 0 {
		return delim
	}
	return notDelim
}

// next returns the raw bytes (header and body) of the next part, or io.EOF
// when there is none. The previous part is drained first.
func (mr *multipartReader) next() (io.Reader, error) {
	if mr.cur != nil {
		if _, err := io.Copy(io.Discard, mr.cur); err != nil {
			return nil, err
		}
		mr.cur = nil
	} else if !mr.done {
		if err := mr.skipPreamble(); err != nil {
			return nil, err
		}
	}
	if mr.err != nil {
		return nil, mr.err
	}
	if mr.done {
		return nil, io.EOF
	}
	mr.cur = &partReader{mr: mr, lineStart: true}
	return mr.cur, nil
}

// skipPreamble reads up to and including the first delimiter line.
func (mr *multipartReader) skipPreamble() error {
	lineStart := true
	for {
		line, err := mr.br.ReadSlice('\n')
		if lineStart {
			switch mr.delimiter(line) {
			case delim:
				return nil
			case closeDelim:
				mr.done = true
				return nil
			}
		}
		lineStart = len(line) > 0 && line[len(line)-1] == '\n'
		switch err {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			mr.done = true
			return nil
		default:
			mr.err = err
			return err
		}
	}
}

// partReader reads one part's raw bytes, holding back each line end until
// the next line shows it is not the one before a delimiter.
type partReader struct {
	mr        *multipartReader
	lineStart bool
	eof       bool
	eol       []byte // line end held back
	buf       []byte
	pending   []byte // ready to return; aliases buf
}

func (p *partReader) Read(b []byte) (int, error) {
	for len(p.pending) == 0 {
		if p.eof {
			return 0, io.EOF
		}
		if p.mr.err != nil {
			return 0, p.mr.err
		}
		line, err := p.mr.br.ReadSlice('\n')
		if p.lineStart && len(line) > 0 {
			switch p.mr.delimiter(line) {
			case delim:
				p.eof = true
				continue
			case closeDelim:
				p.eof, p.mr.done = true, true
				continue
			}
		}
		p.buf = append(p.buf[:0], p.eol...)
		p.eol = p.eol[:0]
		p.lineStart = len(line) > 0 && line[len(line)-1] == '\n'
		if p.lineStart {
			end := len(line) - 1
			if end > 0 && line[end-1] == '\r' {
				end--
			}
			p.buf = append(p.buf, line[:end]...)
			p.eol = append(p.eol, line[end:]...)
		} else {
			p.buf = append(p.buf, line...)
		}
		p.pending = p.buf
		switch err {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			// Truncated: the input ends the part and the multipart.
			p.eof, p.mr.done = true, true
		default:
			p.mr.err = err
		}
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}
