package mailpart

// The rules that decide which parts of a message are files live here, once,
// and see a part only through partHeader, which both representations
// provide: a server's BODYSTRUCTURE (structure.go) and a parsed header
// (message.go). Keeping them here is what makes SelectParts and
// ParseMessage choose the same parts.
//
// A leaf part is a file when it has Content-Disposition: attachment, or a
// file name, or it is a non-text part that is not the message body, at any
// depth, inside forwarded messages too. Never files: the body's text
// alternatives, inline images and Content-ID images of multipart/related
// (logos), signatures and encrypted containers, report parts.
//
// Policy calls, following the fixtures' expected.json:
//   - A named text part without disposition is a file (cpython msg_44):
//     mailers and list software name attached text files in Content-Type
//     only. A body text is rarely named; under the default policy a text
//     part is no CV anyway.
//   - An inline part that is not an image is a file (Thunderbird's
//     inlineBinaryAttachment: a PDF sent inline must still be uploaded). An
//     inline image is not: Apple Mail's inline pictures and mailers' logos
//     outnumber CVs sent as inline images by far.
//   - Empty parts are files here (ruby-mail's x-uuencode .doc): the
//     structure-level rule does not look at sizes; SelectParts marks them
//     Skip and AcceptContent refuses them, each with a reason to log.
//   - A returned message inside multipart/report (a bounce) is not walked:
//     a bounce carries what this mailbox sent, or spam backscatter, never a
//     CV sent to it.
//   - application/octet-stream named *.eml is a file, not a message to walk
//     (Thunderbird's eml_wrong_mime_type): the declared type is all the
//     structure has, and the default policy drops it by its bytes.
//   - application/ms-tnef (winmail.dat) is a file here; its bytes then
//     show it is TNEF (IsTNEF), AcceptContent never takes the container, and
//     the caller takes the files inside with UnpackTNEF (tnef.go).

// partHeader is what the rules need to know about one MIME entity.
type partHeader interface {
	// mediaType returns the lower-case type and subtype and the raw
	// parameters (keys lower case, values undecoded).
	mediaType() (typ, sub string, params map[string]string)
	// disposition returns the lower-case Content-Disposition value ("" if
	// none) and its raw parameters.
	disposition() (value string, params map[string]string)
	// contentID returns the Content-ID, "" if none.
	contentID() string
}

// scope is where an entity sits: its enclosing multipart, if any.
type scope struct {
	parent string // subtype of the enclosing multipart; "" at a message root
	index  int    // 1-based position in the enclosing multipart
}

// action is what to do with an entity.
type action int

const (
	actSkip      action = iota // not a file, nothing inside to look at
	actMultipart               // walk the children
	actMessage                 // its body is a message: walk it
	actFile                    // a file part
	actNote                    // no file can be taken, but say so (opaque S/MIME)
)

// neverFiles are media types that are never files: signatures, encrypted
// containers and the machine-readable parts of reports.
var neverFiles = map[string]bool{
	"application/pkcs7-signature":   true,
	"application/x-pkcs7-signature": true,
	"application/pgp-signature":     true,
	"application/pgp-encrypted":     true,
	"text/rfc822-headers":           true,
}

// opaqueSMIME are the media types of an S/MIME envelope that holds the
// message itself, encrypted or signed opaquely: no file can be taken from
// it, and the part is named (actNote) so that a CV lost in it is seen.
var opaqueSMIME = map[string]bool{
	"application/pkcs7-mime":   true,
	"application/x-pkcs7-mime": true,
}

// maxDepth bounds the nesting of multiparts and forwarded messages that is
// walked: deeper entities are skipped. Real mail nests a few levels.
const maxDepth = 32

// classify decides what an entity is. For a file it also returns the
// reason it was chosen and its decoded file name; for a note, why nothing
// can be taken from it.
func classify(h partHeader, sc scope) (act action, reason, name string) {
	switch {
	case sc.parent == "encrypted":
		return actSkip, "", ""
	case sc.parent == "report" && sc.index > 1:
		return actSkip, "", ""
	}
	typ, sub, params := h.mediaType()
	if typ == "multipart" {
		return actMultipart, "", ""
	}
	mt := typ + "/" + sub
	if mt == "message/rfc822" || mt == "message/global" {
		return actMessage, "", ""
	}
	if opaqueSMIME[mt] {
		return actNote, SkipOpaqueSMIME, ""
	}
	if typ == "message" || neverFiles[mt] {
		// delivery-status, disposition-notification, partial,
		// external-body, feedback-report, signatures ...
		return actSkip, "", ""
	}
	disp, dparams := h.disposition()
	name = DecodeFilename(dparams, params)
	switch {
	case disp == "attachment":
		return actFile, reasonAttachment, name
	case typ == "image" && disp == "inline":
		return actSkip, "", ""
	case typ == "image" && sc.parent == "related" && h.contentID() != "":
		return actSkip, "", ""
	case typ == "text" && sc.parent == "alternative":
		// One of the body's alternatives, named or not.
		return actSkip, "", ""
	case name != "":
		return actFile, reasonFilename, name
	case typ == "text":
		return actSkip, "", ""
	}
	// A non-text part is a file even as an alternative of the body: the
	// body is text, and under the default policy the bytes decide.
	return actFile, reasonNonText, name
}

// digestDefault is the media type of a part without Content-Type: text/plain,
// or message/rfc822 inside multipart/digest (RFC 2046 5.1.5).
func digestDefault(parent string) (typ, sub string) {
	if parent == "digest" {
		return "message", "rfc822"
	}
	return "text", "plain"
}
