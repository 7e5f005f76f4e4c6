// Package imapsrc is cvfeed's mailbox source: it finds the CV files in the
// messages of IMAP mailboxes and spools them for upload.
//
// # Accounts
//
// An Account is one [[mailbox]] (account.go). Run is cvfeed run's loop
// (session.go): connect and log in (conn.go; TLS verified, STARTTLS, or
// plain to loopback only; a password or XOAUTH2 with tokens refreshed by
// golang.org/x/oauth2, xoauth2.go), catch up every folder, run the due
// after-actions, then IDLE on the first folder, with a poll of every folder
// each poll_interval as a safety net; a lost connection is reconnected with
// backoff and jitter, a refused login ends Run with a *LoginError.
// Backfill reads every folder once; ActionsNow runs the due actions.
//
// A folder is read from its cursor in state (folder.go): SELECT, a changed
// UIDVALIDITY restarts the cursor (content already claimed is a duplicate,
// not a second upload), UID SEARCH for the UIDs past it (and SINCE), then
// the metadata of 64 messages per FETCH: ENVELOPE, INTERNALDATE,
// BODYSTRUCTURE. Filters (filter.go) drop messages by since, from and
// subject. Claims are recorded in batches with the cursor in the same
// transaction (state.ClaimMail), so the cursor never passes a message whose
// parts are not recorded.
//
// Only the CV parts cross the network (fetch.go): SelectParts names the file
// parts; under the default policy each is judged on its first 4 KiB
// (BODY.PEEK[section]<0.n>; 64 KiB for a zip or OLE2 file) and only an
// accepted part is fetched whole, with BINARY.PEEK where the server has
// BINARY, so that base64 does not cost a third more. Literals stream
// through Decode into Spool. A message without usable structure, or one
// that broke the connection twice, is fetched whole and parsed with
// ParseMessage. After-actions (actions.go) act on messages whose parts are
// all uploaded: seen, flag, move (MOVE, else COPY and expunge) or delete.
//
// # MIME
//
// The other files are the MIME half of the job: which parts of a message are
// files, what they are called, and their decoded bytes. The same rules
// (rules.go) are applied to two representations of a message:
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
//	if ok, why := policy.AcceptContent(ref, head); !ok {
//		// log why; skip
//	}
//	path, sha, size, err := Spool(dir, "binary", br, policy.MaxSize) // ErrTooLarge: skip
//	name := SafeName(ref.Filename, head)
//
// When the server gave no usable structure, fetch BODY.PEEK[] and call
// ParseMessage(body, policy, take): its parts come decoded, with Encoding
// "binary", so the same take serves.
package imapsrc
