package mailpart

import (
	"strconv"
	"strings"
)

// Policy says which file parts of a message are wanted.
type Policy struct {
	// All takes every file part (accept = ["all"]). When false, only CV
	// documents are taken, identified by their bytes: see AcceptContent.
	All bool
	// MaxSize is the largest decoded part accepted, in bytes; 0 means no
	// limit. Spool enforces it exactly; SelectParts skips parts whose
	// encoded size already proves them too large.
	MaxSize int64
}

// PartRef is one file part of a message, as chosen by SelectParts or
// ParseMessage.
type PartRef struct {
	// Path is the IMAP part number, e.g. [1 3 2]; Section is the same as
	// IMAP writes it ("1.3.2"), ready for BODY.PEEK[Section]. Parts inside
	// a forwarded message/rfc822 are numbered as the server numbers them
	// ("2.1.2").
	Path    []int
	Section string
	// Filename is the name the e-mail gives the part, decoded (RFC 2231,
	// RFC 2047, raw 8-bit), possibly empty and never safe as is: the name
	// sent to the API is SafeName(Filename, head).
	Filename string
	// Type is the declared media type, lower case ("application/pdf");
	// information only, the bytes decide.
	Type string
	// Disposition is the Content-Disposition value, lower case
	// ("attachment", "inline" or "").
	Disposition string
	// Encoding is the Content-Transfer-Encoding to undo, lower case. Parts
	// from ParseMessage and ParsePart come already decoded: "binary".
	Encoding string
	// Size is the part's encoded size from BODYSTRUCTURE, or -1 when
	// unknown (ParseMessage streams).
	Size int64
	// InRFC822 is true for a part inside a forwarded message/rfc822.
	InRFC822 bool
	// InTNEF is true for a file taken out of a TNEF container by
	// UnpackTNEF; its Section is then the container's and "/tnef-N", a
	// name for people, not an IMAP section.
	InTNEF bool
	// NeedsParse marks a forwarded message/rfc822 whose own transfer
	// encoding is base64 or quoted-printable: the server cannot address
	// its children, so the whole part must be fetched and given to
	// ParsePart, which finds the files inside.
	NeedsParse bool
	// Reason says why the part was chosen: "attachment" (disposition),
	// "filename" (it is named), "non-text" (a non-text part that is not
	// the body), "encoded message" (NeedsParse) or "in a TNEF container"
	// (UnpackTNEF).
	Reason string
	// Skip, when set, says why the part must not be uploaded although it
	// is a file: "empty part", "over max size", or an unsupported transfer
	// encoding. Callers log it and fetch nothing.
	Skip string
}

// Reasons a part is chosen (PartRef.Reason).
const (
	reasonAttachment = "attachment"
	reasonFilename   = "filename"
	reasonNonText    = "non-text"
	reasonEncodedMsg = "encoded message"
	reasonTNEF       = "in a TNEF container"
)

// Reasons a chosen part is skipped (PartRef.Skip, and the why of
// AcceptContent): SkipEmpty for a part without bytes, SkipTooBig for one
// over Policy.MaxSize, and the two kinds of content that are named but
// cannot be taken.
const (
	// SkipOpaqueSMIME marks an application/pkcs7-mime part (S/MIME
	// encrypted, or signed as a whole): SelectParts and ParseMessage
	// return it with this Skip so that it is named, never fetched.
	SkipOpaqueSMIME = "opaque S/MIME (application/pkcs7-mime): encrypted or signed as a whole, no file can be taken"
	// SkipUUEncoded is why a uuencoded file inside a text body (FindUUBlocks)
	// is not taken.
	SkipUUEncoded = "uuencoded file inside the text body (not taken: send it as an attachment)"
	SkipEmpty     = "empty part"
	SkipTooBig    = "over max size"
	skipEncPref   = "unsupported transfer encoding "
)

func sectionOf(path []int) string {
	var b strings.Builder
	for i, n := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// childPath returns path with n appended, never sharing path's array.
func childPath(path []int, n int) []int {
	p := make([]int, len(path), len(path)+1)
	copy(p, path)
	return append(p, n)
}
