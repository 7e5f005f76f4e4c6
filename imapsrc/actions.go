package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// anyActionable reports whether some message is due for an action: every
// one of its parts uploaded (or it has none). A message with a failed part
// stays as it is, and tracked (cvfeed retry may still upload it).
func anyActionable(due []state.Message) bool {
	for _, m := range due {
		if m.Uploaded && !m.Failed {
			return true
		}
	}
	return false
}

// runActions applies the after-action of every due message: after_upload
// to a message whose parts are all uploaded (or duplicates of uploaded
// CVs), no_cv_action to one without parts. A message is forgotten once
// its action is done, or when it no longer exists (expunged, or its
// folder's UIDVALIDITY changed).
func (a *Account) runActions(ctx context.Context, cn *conn) error {
	due, err := a.store.DueMessages(a.cfg.Name)
	if err != nil {
		return err
	}
	byFolder := map[string][]state.Message{}
	var folders []string
	for _, m := range due {
		if !m.Uploaded || m.Failed {
			continue
		}
		if _, ok := byFolder[m.Mailbox]; !ok {
			folders = append(folders, m.Mailbox)
		}
		byFolder[m.Mailbox] = append(byFolder[m.Mailbox], m)
	}
	for _, f := range folders {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.folderActions(cn, f, byFolder[f]); err != nil {
			var fe *folderError
			if !errors.As(err, &fe) {
				return err
			}
			a.log.Error("cannot apply after-actions in folder; retried later", "folder", f, "err", fe.err)
		}
	}
	return nil
}

func (a *Account) folderActions(cn *conn, folder string, msgs []state.Message) error {
	if err := a.selectMode(cn, folder, false); err != nil {
		var fe *folderError
		var ie *imap.Error
		if errors.As(err, &fe) && errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
			a.log.Warn("folder of tracked messages is gone; their after-actions are dropped", "folder", folder, "messages", len(msgs))
			return a.done(msgs)
		}
		return err
	}
	var current, stale []state.Message
	for _, m := range msgs {
		if m.UIDValidity == cn.uidValidity {
			current = append(current, m)
		} else {
			stale = append(stale, m)
		}
	}
	if len(stale) > 0 {
		a.log.Info("folder UIDVALIDITY changed: after-actions of older messages dropped", "folder", folder, "messages", len(stale))
		if err := a.done(stale); err != nil {
			return err
		}
	}
	if len(current) == 0 {
		return nil
	}
	// Which of them still exist: an expunged one is forgotten.
	var set imap.UIDSet
	for _, m := range current {
		set.AddNum(imap.UID(m.UID))
	}
	cn.busy(true)
	data, err := cn.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	cn.busy(false)
	if err != nil {
		return fmt.Errorf("UID SEARCH in %q: %w", folder, err)
	}
	exists := map[uint32]bool{}
	for _, u := range data.AllUIDs() {
		exists[uint32(u)] = true
	}
	byAction := map[string][]state.Message{}
	var gone []state.Message
	for _, m := range current {
		if !exists[m.UID] {
			gone = append(gone, m)
			continue
		}
		action := a.cfg.AfterUpload
		if len(m.Parts) == 0 {
			action = a.cfg.NoCVAction
		}
		byAction[action] = append(byAction[action], m)
	}
	if len(gone) > 0 {
		a.log.Info("tracked messages no longer exist; nothing to do", "folder", folder, "messages", len(gone))
		if err := a.done(gone); err != nil {
			return err
		}
	}
	actions := make([]string, 0, len(byAction))
	for k := range byAction {
		actions = append(actions, k)
	}
	slices.Sort(actions)
	for _, action := range actions {
		ms := byAction[action]
		var uids imap.UIDSet
		for _, m := range ms {
			uids.AddNum(imap.UID(m.UID))
		}
		if err := a.apply(cn, folder, action, uids); err != nil {
			return err
		}
		a.stats.Actions.Add(int64(len(ms)))
		a.log.Info("after-action applied", "folder", folder, "action", action, "messages", len(ms))
		if err := a.done(ms); err != nil {
			return err
		}
	}
	return nil
}

// apply applies one after-action to the messages uids of the selected
// folder. A refusal (NO: the target folder is missing, no permission) is a
// *folderError: the messages stay tracked and are tried again later.
func (a *Account) apply(cn *conn, folder, action string, uids imap.UIDSet) error {
	cn.busy(true)
	defer cn.busy(false)
	var err error
	switch action {
	case config.MailNone, "":
		return nil
	case config.MailSeen:
		err = a.addFlag(cn, uids, imap.FlagSeen)
	case config.MailFlag:
		err = a.addFlag(cn, uids, imap.FlagFlagged)
	case config.MailMove:
		if cn.caps.Has(imap.CapMove) {
			_, err = cn.c.Move(uids, a.cfg.MoveTo).Wait()
		} else if _, err = cn.c.Copy(uids, a.cfg.MoveTo).Wait(); err == nil {
			err = a.expunge(cn, folder, uids)
		}
	case config.MailDelete:
		err = a.expunge(cn, folder, uids)
	default:
		return fmt.Errorf("mailbox %s: unknown after-action %q", a.cfg.Name, action)
	}
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
		return &folderError{account: a.cfg.Name, folder: folder, err: fmt.Errorf("%s: %w", action, err)}
	}
	return fmt.Errorf("%s in %q: %w", action, folder, err)
}

func (a *Account) addFlag(cn *conn, uids imap.UIDSet, flag imap.Flag) error {
	return cn.c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close()
}

// expunge marks uids \Deleted and expunges them: UID EXPUNGE (UIDPLUS),
// else EXPUNGE, which also removes every other message marked \Deleted in
// the folder, and is said once.
func (a *Account) expunge(cn *conn, folder string, uids imap.UIDSet) error {
	if err := a.addFlag(cn, uids, imap.FlagDeleted); err != nil {
		return err
	}
	if cn.caps.Has(imap.CapUIDPlus) {
		return cn.c.UIDExpunge(uids).Close()
	}
	a.mu.Lock()
	warn := !a.warnedExpunge
	a.warnedExpunge = true
	a.mu.Unlock()
	if warn {
		a.log.Warn("server has no UIDPLUS: EXPUNGE also removes the other messages marked deleted in the folder", "folder", folder)
	}
	return cn.c.Expunge().Close()
}

func (a *Account) done(msgs []state.Message) error {
	for _, m := range msgs {
		if err := a.store.MessageDone(m.MessageID); err != nil {
			return err
		}
	}
	return nil
}
