package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cvfeed/cvfeed/state"
)

// Claims are recorded in batches: one transaction for up to claimBatch
// messages, or for what was read within claimDelay.
const (
	claimBatch = 50
	claimDelay = 200 * time.Millisecond
	// metaChunk is how many messages' metadata one FETCH asks for.
	metaChunk = 64
)

// selectFolder selects folder, read-write when after-actions may change
// its messages, else read-only (EXAMINE). A folder the server refuses to
// select is a *folderError.
func (a *Account) selectFolder(cn *conn, folder string) error {
	return a.selectMode(cn, folder, !a.tracks())
}

func (a *Account) selectMode(cn *conn, folder string, readOnly bool) error {
	cn.busy(true)
	defer cn.busy(false)
	data, err := cn.c.Select(folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		cn.selected = ""
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			return &folderError{account: a.cfg.Name, folder: folder, err: err}
		}
		return fmt.Errorf("select %q: %w", folder, err)
	}
	cn.selected, cn.readOnly, cn.uidValidity = folder, readOnly, data.UIDValidity
	return nil
}

// syncFolder reads the messages of folder past its cursor. backfill: a
// folder without cursor is read from its first message, else (Run) from
// its end, or from since when set.
func (a *Account) syncFolder(ctx context.Context, cn *conn, folder string, backfill bool) error {
	if err := a.selectFolder(cn, folder); err != nil {
		return err
	}
	uv := cn.uidValidity
	cur, ok, err := a.store.MailCursor(a.cfg.Name, folder)
	if err != nil {
		return err
	}
	since := a.since()
	switch {
	case ok && cur.UIDValidity != uv:
		a.log.Warn("folder UIDVALIDITY changed: reading it again from the start (content already claimed is not uploaded twice)",
			"folder", folder, "old", cur.UIDValidity, "new", uv)
		cur = state.MailCursor{UIDValidity: uv}
		if err := a.store.SetMailCursor(a.cfg.Name, folder, cur); err != nil {
			return err
		}
	case !ok && !backfill && since.IsZero():
		last, err := a.lastUID(cn)
		if err != nil {
			return err
		}
		cur = state.MailCursor{UIDValidity: uv, LastUID: last}
		if err := a.store.SetMailCursor(a.cfg.Name, folder, cur); err != nil {
			return err
		}
		a.log.Info("first run for this folder: only new mail is read (cvfeed backfill reads the existing mail)", "folder", folder, "last_uid", last)
		return nil
	case !ok:
		cur = state.MailCursor{UIDValidity: uv}
	}
	b := &batch{a: a, start: time.Now()}
	if err := a.readRetried(ctx, cn, folder, uv, b); err != nil {
		if ferr := b.flush(); ferr != nil {
			return ferr
		}
		return err
	}
	all, matched, err := a.searchNew(cn, cur.LastUID, since)
	if err == nil && len(all) > 0 {
		a.log.Debug("reading new mail", "folder", folder, "messages", len(all), "after_uid", cur.LastUID)
		err = a.readUIDs(ctx, cn, folder, uv, all, matched, since, b)
	}
	// What was read completely is recorded even when the rest failed:
	// the cursor then stops before the first message not read.
	if ferr := b.flush(); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// lastUID returns the highest UID of the selected folder (0 if empty).
func (a *Account) lastUID(cn *conn) (uint32, error) {
	cn.busy(true)
	defer cn.busy(false)
	data, err := cn.c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("UID SEARCH ALL: %w", err)
	}
	var last uint32
	for _, u := range data.AllUIDs() {
		last = max(last, uint32(u))
	}
	return last, nil
}

// searchNew returns the UIDs above last, in order, and, when since is
// set, which of them the server finds received since then (SEARCH SINCE
// compares dates only: readMeta checks the exact time).
func (a *Account) searchNew(cn *conn, last uint32, since time.Time) (all []imap.UID, matched map[imap.UID]bool, err error) {
	cn.busy(true)
	defer cn.busy(false)
	set := imap.UIDSet{imap.UIDRange{Start: imap.UID(last + 1), Stop: 0}}
	data, err := cn.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("UID SEARCH: %w", err)
	}
	for _, u := range data.AllUIDs() {
		// "last+1:*" includes the highest UID even when it is <= last.
		if uint32(u) > last {
			all = append(all, u)
		}
	}
	slices.Sort(all)
	if since.IsZero() || len(all) == 0 {
		return all, nil, nil
	}
	data, err = cn.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}, Since: since}, nil).Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("UID SEARCH SINCE: %w", err)
	}
	matched = map[imap.UID]bool{}
	for _, u := range data.AllUIDs() {
		matched[u] = true
	}
	return all, matched, nil
}

// meta is what is fetched of a message before its parts.
type meta struct {
	uid      imap.UID
	internal time.Time
	env      *imap.Envelope
	bs       imap.BodyStructure
	size     int64
}

// readUIDs reads the messages uids in order, metaChunk at a time.
func (a *Account) readUIDs(ctx context.Context, cn *conn, folder string, uv uint32, uids []imap.UID, matched map[imap.UID]bool, since time.Time, b *batch) error {
	chunkKey := folder + "\x00" + fmt.Sprint(uv)
	for len(uids) > 0 {
		n := metaChunk
		a.mu.Lock()
		if a.chunkFailures[chunkKey] > 0 {
			n = 1 // a message broke a chunk: isolate it
		}
		a.mu.Unlock()
		chunk := uids[:min(n, len(uids))]
		uids = uids[len(chunk):]
		var want []imap.UID
		for _, u := range chunk {
			if matched == nil || matched[u] {
				want = append(want, u)
			}
		}
		metas, err := a.fetchMeta(cn, folder, uv, want)
		switch {
		case err == nil:
		case ctx.Err() != nil || !messageFault(cn, err):
			return err
		case len(want) > 1:
			if cn.c.State() == imap.ConnStateLogout {
				a.mu.Lock()
				a.chunkFailures[chunkKey]++
				a.mu.Unlock()
			}
			return err
		default:
			// The metadata of this one message cannot be read.
			id := state.MessageID{Account: a.cfg.Name, Mailbox: folder, UIDValidity: uv, UID: uint32(want[0])}
			if a.countFailure(id) < quarantineAfter {
				return err
			}
			if qerr := a.quarantine(b, cn, id, nil, err); qerr != nil {
				return qerr
			}
			if cn.c.State() == imap.ConnStateLogout {
				return err // the cursor moves past it with the batch
			}
			continue
		}
		for _, u := range chunk {
			id := state.MessageID{Account: a.cfg.Name, Mailbox: folder, UIDValidity: uv, UID: uint32(u)}
			m, ok := metas[u]
			if !ok {
				// Filtered out by SEARCH SINCE, or expunged meanwhile:
				// nothing to read, the cursor moves past it.
				if matched != nil && !matched[u] {
					a.stats.Filtered.Add(1)
				}
				if err := b.add(state.MailClaim{MessageID: id}); err != nil {
					return err
				}
				continue
			}
			claim, err := a.readOne(ctx, cn, id, m, since)
			switch {
			case err == nil:
			case ctx.Err() != nil || isRetryNow(err) || !messageFault(cn, err):
				return err
			case a.failureCount(id) < quarantineAfter:
				return err
			default:
				if qerr := a.quarantine(b, cn, id, &m, err); qerr != nil {
					return qerr
				}
				if cn.c.State() == imap.ConnStateLogout {
					return err
				}
				continue
			}
			if err := b.add(claim); err != nil {
				return err
			}
		}
	}
	a.mu.Lock()
	delete(a.chunkFailures, chunkKey)
	a.mu.Unlock()
	return nil
}

// readOne reads one message, again at once while the server refuses it
// (NO) on a live connection, up to quarantineAfter failures in all. Each
// failure of the message's doing is counted.
func (a *Account) readOne(ctx context.Context, cn *conn, id state.MessageID, m meta, since time.Time) (state.MailClaim, error) {
	for {
		claim, err := a.readMessage(ctx, cn, id, m, since)
		if err == nil || ctx.Err() != nil || isRetryNow(err) || !messageFault(cn, err) {
			return claim, err
		}
		n := a.countFailure(id)
		if n >= quarantineAfter || cn.c.State() == imap.ConnStateLogout {
			return claim, err
		}
		a.log.Warn("the server refused a message; reading it again", "message", id.String(), "failures", n, "err", err)
	}
}

// fetchMeta fetches the metadata of uids. A message whose metadata broke
// the connection twice is asked only for what cannot break: its UID,
// INTERNALDATE and size; it is then read whole.
func (a *Account) fetchMeta(cn *conn, folder string, uv uint32, uids []imap.UID) (map[imap.UID]meta, error) {
	out := map[imap.UID]meta{}
	if len(uids) == 0 {
		return out, nil
	}
	opts := &imap.FetchOptions{
		UID: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}
	if len(uids) == 1 && a.failureCount(state.MessageID{Account: a.cfg.Name, Mailbox: folder, UIDValidity: uv, UID: uint32(uids[0])}) >= 2 {
		opts = &imap.FetchOptions{UID: true, InternalDate: true, RFC822Size: true}
	}
	cn.busy(true)
	defer cn.busy(false)
	msgs, err := cn.c.Fetch(imap.UIDSetNum(uids...), opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch the structure of %d messages: %w", len(uids), err)
	}
	for _, m := range msgs {
		if m.UID == 0 {
			continue
		}
		out[m.UID] = meta{uid: m.UID, internal: m.InternalDate, env: m.Envelope, bs: m.BodyStructure, size: m.RFC822Size}
	}
	return out, nil
}

func (a *Account) failureCount(id state.MessageID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failures[id]
}

// batch gathers the claims of messages read, in UID order, and records
// them with the cursor in one transaction.
type batch struct {
	a      *Account
	claims []state.MailClaim
	start  time.Time
}

func (b *batch) add(c state.MailClaim) error {
	if len(b.claims) == 0 {
		b.start = time.Now()
	}
	b.claims = append(b.claims, c)
	if len(b.claims) >= claimBatch || time.Since(b.start) >= claimDelay {
		return b.flush()
	}
	return nil
}

func (b *batch) flush() error {
	if len(b.claims) == 0 {
		return nil
	}
	a := b.a
	res, err := a.store.ClaimMail(b.claims)
	if err != nil {
		return err
	}
	a.progress.Add(int64(len(b.claims)))
	for i, c := range b.claims {
		a.stats.Messages.Add(1)
		a.mu.Lock()
		delete(a.failures, c.MessageID)
		a.mu.Unlock()
		for j, r := range res[i] {
			a.stats.Parts.Add(1)
			if r == state.ClaimDuplicate {
				a.stats.Duplicates.Add(1)
				a.log.Debug("duplicate CV, not sent again", "origin", c.Parts[j].Origin, "file", c.Parts[j].FileName)
			} else {
				a.log.Debug("CV claimed", "origin", c.Parts[j].Origin, "file", c.Parts[j].FileName, "size", c.Parts[j].Size)
			}
		}
	}
	b.claims = b.claims[:0]
	return nil
}
