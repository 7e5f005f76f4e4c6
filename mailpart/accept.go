package mailpart

import (
	"bytes"
	"encoding/binary"

	"github.com/gabriel-vasile/mimetype"
)

// HeadSize is how many decoded bytes from the start of a part
// AcceptContent wants. 4 KiB decide every type but OLE2 (.doc), whose
// directory may lie further in; a shorter head (a small part) is fine.
const HeadSize = 64 << 10

// AcceptContent decides, on the first bytes of a chosen part (up to
// HeadSize, decoded), whether it is uploaded, and says why. An empty part
// is never uploaded, nor is a TNEF container (winmail.dat), under any
// policy: its files are (UnpackTNEF). With p.All every other part is.
// Otherwise the part must be a CV document by its bytes, whatever its
// declared type or name:
//
//   - PDF (the "%PDF-" signature; within the first KiB, as readers accept
//     it, when the bytes before it are no other known format);
//   - DOCX and ODT (zip with word/ entries; the ODT mimetype entry);
//   - RTF;
//   - DOC: an OLE2 compound file that is a Word document. OLE2 also holds
//     Outlook .msg (a forwarded mail), Excel, PowerPoint, Publisher and
//     installers, none of them CVs; the file is taken when mimetype
//     identifies Word (summary information, root CLSID), or when it is not
//     identified as anything else and the head shows a Word FIB at offset
//     512 (how file(1) knows Word) or a "WordDocument" stream in the
//     directory. A generic OLE2 file without either is refused;
//   - images JPEG, PNG and TIFF only with Content-Disposition: attachment
//     (a scanned CV is attached; inline pictures are signatures and logos).
func (p Policy) AcceptContent(ref PartRef, head []byte) (bool, string) {
	if len(head) == 0 {
		return false, SkipEmpty
	}
	if IsTNEF(head) {
		return false, SkipTNEF
	}
	if p.All {
		return true, "all files accepted"
	}
	m := mimetype.Detect(head)
	mt := m.String()
	switch {
	case m.Is("application/pdf"):
		return true, "pdf"
	case (m.Is("application/octet-stream") || m.Is("text/plain")) &&
		bytes.Contains(head[:min(len(head), 1024)], []byte("%PDF-")):
		return true, "pdf"
	case m.Is("application/vnd.openxmlformats-officedocument.wordprocessingml.document"):
		return true, "docx"
	case m.Is("application/zip") && zipHasWord(head):
		return true, "docx"
	case m.Is("application/vnd.oasis.opendocument.text"):
		return true, "odt"
	case m.Is("text/rtf"):
		return true, "rtf"
	case m.Is("application/msword"):
		return true, "doc"
	case m.Is("application/x-ole-storage"):
		if isWordOLE(head) {
			return true, "doc"
		}
		return false, "OLE2 file that is not a Word document (" + mt + ")"
	case m.Is("image/jpeg") || m.Is("image/png") || m.Is("image/tiff"):
		if ref.Disposition == "attachment" {
			return true, "attached image (" + mt + ")"
		}
		return false, "image not sent as an attachment (" + mt + ")"
	}
	return false, "not a CV document (" + mt + ")"
}

// NeedsLongerHead reports whether a part refused on head might be
// accepted on a longer one: a zip whose word/ entries may come later, an
// OLE2 file whose Word markers may lie further in. Every other verdict
// rests on the first 3 KiB (mimetype's read limit).
func NeedsLongerHead(head []byte) bool {
	if len(head) >= HeadSize {
		return false
	}
	for m := mimetype.Detect(head); m != nil; m = m.Parent() {
		if m.Is("application/zip") || m.Is("application/x-ole-storage") {
			return true
		}
	}
	return false
}

// zipHasWord reports whether a zip's local file headers in head name a
// word/ entry: a DOCX whose first entries are not the ones mimetype expects.
func zipHasWord(head []byte) bool {
	sig := []byte("PK\x03\x04")
	for i := 0; i < 200; i++ {
		at := bytes.Index(head, sig)
		if at < 0 || at+30 > len(head) {
			return false
		}
		n := int(binary.LittleEndian.Uint16(head[at+26:]))
		name := head[at+30 : min(at+30+n, len(head))]
		if bytes.HasPrefix(name, []byte("word/")) {
			return true
		}
		head = head[at+4:]
	}
	return false
}

// wordDocumentName is the directory name of a Word stream, UTF-16LE, and
// msgMarker the prefix of Outlook .msg property streams, whose attachment
// storages may hold a Word document's streams.
var (
	wordDocumentName = []byte("W\x00o\x00r\x00d\x00D\x00o\x00c\x00u\x00m\x00e\x00n\x00t\x00\x00\x00")
	msgMarker        = []byte("_\x00_\x00s\x00u\x00b\x00s\x00t\x00g\x001\x00.\x000\x00_\x00")
)

// isWordOLE reports whether an OLE2 file that mimetype could not identify
// is a Word document: the Word FIB magic (wIdent 0xA5EC) where Word puts
// its first stream, or a WordDocument stream entry in a directory sector
// within head (and no Outlook property stream).
func isWordOLE(head []byte) bool {
	if len(head) >= 514 && head[512] == 0xEC && head[513] == 0xA5 {
		return true
	}
	if bytes.Contains(head, msgMarker) {
		return false
	}
	// Directory entries are 128 bytes, aligned in sectors after the 512-byte
	// header: the name (UTF-16LE, NUL-terminated), its length in bytes at
	// 64, the entry type at 66 (2: stream).
	for off := 512; off+128 <= len(head); off += 128 {
		e := head[off : off+128]
		if bytes.HasPrefix(e, wordDocumentName) && e[64] == byte(len(wordDocumentName)) && e[65] == 0 && e[66] == 2 {
			return true
		}
	}
	return false
}
