package mailpart

// A reader of TNEF (MS-OXTNEF), the container Outlook and Exchange send as
// winmail.dat (application/ms-tnef) when a message is written in Rich Text:
// the real attachments are inside it. Only what finds the files is read.
//
// The stream is a signature (0x223E9F78, little endian), a 2-byte legacy
// key, then attributes until the end:
//
//	level (1: 1 message, 2 attachment) | id (4) | length (4) | data | checksum (2)
//
// At the attachment level, attAttachRendData starts a new attachment,
// attAttachTitle is its 8.3 name, attAttachData its bytes, and
// attAttachment a counted list of MAPI properties, among them
// PR_ATTACH_LONG_FILENAME (the real name) and PR_ATTACH_DATA_OBJ (the bytes
// when there is no attAttachData; for an embedded message, a TNEF stream of
// its own behind a 16-byte interface id, whose files are taken too).
//
// The input is hostile: every length is checked against the end of the
// stream before it is used, nothing is allocated by a declared size except
// names (bounded by maxTNEFName), and the numbers of attachments, properties
// and nested messages are bounded. The data is never copied: a file is a
// section of the io.ReaderAt. Checksums are not verified (a wrong one
// harms nobody here, and some writers get them wrong).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// tnefSignature starts every TNEF stream (little endian on the wire).
const tnefSignature = 0x223E9F78

// TNEF attribute ids (type in the high word) and MAPI property ids.
const (
	attAttachRendData          = 0x00069002
	attAttachTitle             = 0x00018010
	attAttachData              = 0x0006800F
	attAttachTransportFilename = 0x00019001
	attAttachment              = 0x00069005

	prAttachDataObj      = 0x3701
	prAttachFilename     = 0x3704
	prAttachMethod       = 0x3705
	prAttachLongFilename = 0x3707
	prAttachMimeTag      = 0x370E
	prDisplayName        = 0x3001

	attachEmbeddedMsg = 5 // PR_ATTACH_METHOD: an embedded message
)

// MAPI property types (MS-OXCDATA 2.11.1).
const (
	ptMultiFlag = 0x1000
	ptShort     = 0x0002
	ptLong      = 0x0003
	ptFloat     = 0x0004
	ptDouble    = 0x0005
	ptCurrency  = 0x0006
	ptAppTime   = 0x0007
	ptError     = 0x000A
	ptBoolean   = 0x000B
	ptObject    = 0x000D
	ptI8        = 0x0014
	ptString8   = 0x001E
	ptUnicode   = 0x001F
	ptSysTime   = 0x0040
	ptCLSID     = 0x0048
	ptBinary    = 0x0102
)

// Bounds against hostile input.
const (
	maxTNEFFiles = 256     // files per stream, nested messages included
	maxTNEFProps = 1 << 16 // properties per attAttachment
	maxTNEFDepth = 4       // nesting of embedded messages
	maxTNEFName  = 1024    // bytes of a name that are read
)

// ErrBadTNEF is wrapped by ReadTNEF's errors about the stream itself (not
// a TNEF stream, truncated, a length past the end): the container is bad,
// the connection and the message are fine.
var ErrBadTNEF = errors.New("bad TNEF")

// IsTNEF reports whether head starts a TNEF stream (a winmail.dat),
// whatever the part's declared type or name.
func IsTNEF(head []byte) bool {
	return len(head) >= 4 && binary.LittleEndian.Uint32(head) == tnefSignature
}

// TNEFFile is one file inside a TNEF stream.
type TNEFFile struct {
	// Name is the file's name: PR_ATTACH_LONG_FILENAME, else the 8.3
	// attAttachTitle or PR_ATTACH_FILENAME, else the transport name or
	// PR_DISPLAY_NAME; possibly empty, never safe as is (see SafeName).
	Name string
	// Type is PR_ATTACH_MIME_TAG when the sender set it (information only).
	Type string
	// Data is the file's bytes, a section of the stream.
	Data *io.SectionReader
}

// ReadTNEF lists the files of the TNEF stream in r (size bytes), in order,
// those of embedded messages after the attachment that holds them. On a
// damaged stream it returns the files found before the damage with an error
// wrapping ErrBadTNEF.
func ReadTNEF(r io.ReaderAt, size int64) ([]TNEFFile, error) {
	t := &tnefReader{r: r}
	err := t.stream(0, size, 0)
	return t.files, err
}

type tnefReader struct {
	r     io.ReaderAt
	files []TNEFFile
}

// tnefAttach is an attachment being read: where its bytes are, and names.
type tnefAttach struct {
	title, transport, long, short, display, mime string
	dataOff, dataLen                             int64
	hasData                                      bool
	method                                       uint32
	objOff, objLen                               int64 // PR_ATTACH_DATA_OBJ
	objIsObject                                  bool
	hasObj                                       bool
}

func badTNEF(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadTNEF, fmt.Sprintf(format, args...))
}

func (t *tnefReader) u16(off int64) (uint16, error) {
	var b [2]byte
	if _, err := t.r.ReadAt(b[:], off); err != nil {
		return 0, badTNEF("truncated at byte %d", off)
	}
	return binary.LittleEndian.Uint16(b[:]), nil
}

func (t *tnefReader) u32(off int64) (uint32, error) {
	var b [4]byte
	if _, err := t.r.ReadAt(b[:], off); err != nil {
		return 0, badTNEF("truncated at byte %d", off)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// bytesAt reads n bytes at off, at most maxTNEFName of them.
func (t *tnefReader) bytesAt(off, n int64) ([]byte, error) {
	b := make([]byte, min(n, maxTNEFName))
	if _, err := t.r.ReadAt(b, off); err != nil && !(err == io.EOF && len(b) == 0) {
		return nil, badTNEF("truncated at byte %d", off)
	}
	return b, nil
}

// stream reads the TNEF stream in [start, end).
func (t *tnefReader) stream(start, end int64, depth int) error {
	if depth > maxTNEFDepth {
		return badTNEF("embedded messages nested deeper than %d", maxTNEFDepth)
	}
	sig, err := t.u32(start)
	if err != nil || sig != tnefSignature || end-start < 6 {
		return badTNEF("no TNEF signature")
	}
	var cur *tnefAttach
	finish := func() error {
		if cur == nil {
			return nil
		}
		a := cur
		cur = nil
		return t.finish(a, end, depth)
	}
	for off := start + 6; off < end; {
		if end-off < 11 {
			_ = finish()
			return badTNEF("truncated attribute at byte %d", off-start)
		}
		var hdr [9]byte
		if _, err := t.r.ReadAt(hdr[:], off); err != nil {
			_ = finish()
			return badTNEF("truncated attribute at byte %d", off-start)
		}
		level, id := hdr[0], binary.LittleEndian.Uint32(hdr[1:5])
		n := int64(binary.LittleEndian.Uint32(hdr[5:9]))
		data := off + 9
		if n > end-data-2 {
			_ = finish()
			return badTNEF("attribute 0x%08X at byte %d is %d bytes long, past the end", id, off-start, n)
		}
		off = data + n + 2
		if level != 2 {
			continue // the message's own attributes: no file there
		}
		if id == attAttachRendData || cur == nil {
			if err := finish(); err != nil {
				return err
			}
			cur = &tnefAttach{}
		}
		switch id {
		case attAttachTitle:
			cur.title, err = t.string8(data, n)
		case attAttachTransportFilename:
			cur.transport, err = t.string8(data, n)
		case attAttachData:
			cur.dataOff, cur.dataLen, cur.hasData = data, n, true
		case attAttachment:
			err = t.props(cur, data, data+n)
		}
		if err != nil {
			_ = finish()
			return err
		}
	}
	return finish()
}

// finish adds a complete attachment's file(s).
func (t *tnefReader) finish(a *tnefAttach, end int64, depth int) error {
	if a.method == attachEmbeddedMsg && a.hasObj && a.objIsObject && a.objLen > 16 {
		// An embedded message: a TNEF stream behind the interface id.
		return t.stream(a.objOff+16, a.objOff+a.objLen, depth+1)
	}
	off, n := a.dataOff, a.dataLen
	if !a.hasData {
		if !a.hasObj {
			return nil // no bytes: nothing to take
		}
		off, n = a.objOff, a.objLen
		if a.objIsObject { // PT_OBJECT: a 16-byte interface id first
			off, n = off+16, n-16
		}
	}
	if n <= 0 {
		return nil
	}
	if len(t.files) >= maxTNEFFiles {
		return badTNEF("more than %d files", maxTNEFFiles)
	}
	name := firstNonEmpty(a.long, a.title, a.short, a.transport, a.display)
	t.files = append(t.files, TNEFFile{Name: name, Type: a.mime, Data: io.NewSectionReader(t.r, off, n)})
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// string8 reads an 8-bit string attribute (NUL-terminated, in the
// sender's code page: valid UTF-8 is kept, else read as Windows-1252).
func (t *tnefReader) string8(off, n int64) (string, error) {
	b, err := t.bytesAt(off, n)
	if err != nil {
		return "", err
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return toUTF8("", b), nil
}

// unicode reads a UTF-16LE string value (NUL-terminated).
func (t *tnefReader) unicode(off, n int64) (string, error) {
	b, err := t.bytesAt(off, n)
	if err != nil {
		return "", err
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

// props reads the MAPI properties of attAttachment in [off, end) into a.
func (t *tnefReader) props(a *tnefAttach, off, end int64) error {
	count, err := t.u32(off)
	if err != nil {
		return err
	}
	if count > maxTNEFProps {
		return badTNEF("%d properties in one attachment", count)
	}
	off += 4
	for i := uint32(0); i < count; i++ {
		if end-off < 4 {
			return badTNEF("property list cut short")
		}
		typ, err := t.u16(off)
		if err != nil {
			return err
		}
		id, err := t.u16(off + 2)
		if err != nil {
			return err
		}
		off += 4
		if id >= 0x8000 { // a named property: GUID, kind, id or name
			if end-off < 20 {
				return badTNEF("named property cut short")
			}
			kind, err := t.u32(off + 16)
			if err != nil {
				return err
			}
			off += 20
			if kind == 1 {
				n, err := t.u32(off)
				if err != nil {
					return err
				}
				if int64(n) > end-off-4 {
					return badTNEF("property name past the end")
				}
				off += 4 + pad4(int64(n))
			} else {
				off += 4
			}
		}
		next, err := t.value(a, typ, id, off, end)
		if err != nil {
			return err
		}
		off = next
	}
	return nil
}

func pad4(n int64) int64 { return (n + 3) &^ 3 }

// fixedSize is the size of a fixed-length property value in TNEF (short
// and boolean are padded to 4), or 0 for a variable-length type.
func fixedSize(typ uint16) int64 {
	switch typ {
	case ptShort, ptLong, ptFloat, ptError, ptBoolean:
		return 4
	case ptDouble, ptCurrency, ptAppTime, ptI8, ptSysTime:
		return 8
	case ptCLSID:
		return 16
	case 0x0001: // PT_NULL
		return 4
	}
	return 0
}

// value reads one property value at off and returns the offset after it.
func (t *tnefReader) value(a *tnefAttach, typ, id uint16, off, end int64) (int64, error) {
	base := typ &^ ptMultiFlag
	multi := typ&ptMultiFlag != 0
	if fs := fixedSize(base); fs > 0 {
		count := int64(1)
		if multi {
			c, err := t.u32(off)
			if err != nil {
				return 0, err
			}
			off, count = off+4, int64(c)
		}
		if count > (end-off)/fs {
			return 0, badTNEF("property 0x%04X past the end", id)
		}
		if !multi && id == prAttachMethod && base == ptLong {
			m, err := t.u32(off)
			if err != nil {
				return 0, err
			}
			a.method = m
		}
		return off + count*fs, nil
	}
	switch base {
	case ptString8, ptUnicode, ptBinary, ptObject:
	default:
		return 0, badTNEF("property 0x%04X of unknown type 0x%04X", id, typ)
	}
	// Variable length, single or multi: a count, then size + bytes + padding.
	c, err := t.u32(off)
	if err != nil {
		return 0, err
	}
	off += 4
	if int64(c) > (end-off)/4 {
		return 0, badTNEF("property 0x%04X past the end", id)
	}
	for j := uint32(0); j < c; j++ {
		sz, err := t.u32(off)
		if err != nil {
			return 0, err
		}
		n := int64(sz)
		if n > end-off-4 {
			return 0, badTNEF("property 0x%04X is %d bytes long, past the end", id, n)
		}
		if j == 0 && !multi {
			if err := t.keep(a, base, id, off+4, n); err != nil {
				return 0, err
			}
		}
		off += 4 + pad4(n)
	}
	return min(off, end), nil
}

// keep records a single-valued variable-length property a needs.
func (t *tnefReader) keep(a *tnefAttach, typ, id uint16, off, n int64) error {
	str := func() (string, error) {
		if typ == ptUnicode {
			return t.unicode(off, n)
		}
		return t.string8(off, n)
	}
	var err error
	switch {
	case id == prAttachDataObj && (typ == ptBinary || typ == ptObject):
		a.objOff, a.objLen, a.objIsObject, a.hasObj = off, n, typ == ptObject, true
	case typ != ptString8 && typ != ptUnicode:
	case id == prAttachLongFilename:
		a.long, err = str()
	case id == prAttachFilename:
		a.short, err = str()
	case id == prDisplayName:
		a.display, err = str()
	case id == prAttachMimeTag:
		a.mime, err = str()
		a.mime = strings.ToLower(a.mime)
	}
	return err
}
