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
// Only the CV parts cross the network (fetch.go): mailpart.SelectParts names the file
// parts; under the default policy each is judged on its first 4 KiB
// (BODY.PEEK[section]<0.n>; 64 KiB for a zip or OLE2 file) and only an
// accepted part is fetched whole, with BINARY.PEEK where the server has
// BINARY, so that base64 does not cost a third more. Literals stream
// through mailpart.Decode into mailpart.Spool. A message without usable
// structure, or one that broke the connection twice, is fetched whole and
// parsed with mailpart.ParseMessage. After-actions (actions.go) act on
// messages whose parts are all uploaded: seen, flag, move (MOVE, else COPY
// and expunge) or delete.
//
// Which parts of a message are files, their names and their decoded bytes
// are package mailpart's job: this package only talks to the server.
package imapsrc
