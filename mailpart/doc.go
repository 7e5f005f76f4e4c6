// Package mailpart is the MIME half of cvfeed's mailbox source: which
// parts of a message are files, what they are called, and their decoded
// bytes. It never touches a connection; imapsrc, the IMAP client, calls
// it. The same rules (rules.go) are applied to two representations of a
// message:
//
//   - SelectParts reads the BODYSTRUCTURE a server returned and names the
//     parts to fetch with BODY.PEEK[section], so only file parts cross the
//     network. Parameters arrive undecoded there (RFC 2231 continuations,
//     RFC 2047 inside quoted values) and DecodeFilename decodes them.
//   - ParseMessage parses whole message bytes leniently (a server that gave
//     no usable structure, a malformed message, a base64-encoded forwarded
//     message) and streams each file part's decoded bytes.
//
// Both choose the same parts with the same IMAP part numbers. A part is
// chosen from its structure alone (Policy.All's rule); whether a chosen part
// is a CV is then decided on its first bytes by Policy.AcceptContent. Spool
// decodes a part's transfer encoding while writing it to a content-addressed
// file. The name from the e-mail is never a path: SafeName makes the name
// sent to the API, and the spool file is named by the SHA-256 of the bytes.
//
// The flow for one message, with policy the mailbox's Policy:
//
//	for _, ref := range SelectParts(bs, policy) {
//		switch {
//		case ref.Skip != "":
//			// log ref.Skip; fetch nothing
//		case ref.NeedsParse:
//			// fetch BODY.PEEK[ref.Section]; ParsePart(ref, body, policy, take)
//		default:
//			// fetch BODY.PEEK[ref.Section]; take(ref, body)
//		}
//	}
//
// where take judges a part on its first bytes and spools it:
//
//	dec, err := Decode(ref.Encoding, body) // ErrUnsupportedEncoding: skip
//	br := bufio.NewReaderSize(dec, HeadSize)
//	head, _ := br.Peek(HeadSize)
//	if IsTNEF(head) { // winmail.dat: its files, by the same take
//		UnpackTNEF(ref, br, tmpDir, policy.MaxSize, take)
//	}
//	if ok, why := policy.AcceptContent(ref, head); !ok {
//		// log why; skip
//	}
//	path, sha, size, err := Spool(dir, "binary", br, policy.MaxSize) // ErrTooLarge: skip
//	name := SafeName(ref.Filename, head)
//
// When the server gave no usable structure, fetch BODY.PEEK[] and call
// ParseMessage(body, policy, take): its parts come decoded, with Encoding
// "binary", so the same take serves. For a message that gave no CV,
// TextBodies names its text parts, and FindUUBlocks the uuencoded files in
// them, which are named (SkipUUEncoded), never taken; so is an opaque
// S/MIME part (SkipOpaqueSMIME).
package mailpart
