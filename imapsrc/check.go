package imapsrc

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// Check connects, logs in and asks the server for each configured folder,
// for cvfeed check: it returns one error per problem (nil slice: all
// good). It reads no message and changes nothing.
func (a *Account) Check(ctx context.Context) []error {
	cn, err := a.connect(ctx)
	if err != nil {
		return []error{err}
	}
	defer func() {
		cn.logout()
		cn.close()
	}()
	var errs []error
	for _, f := range a.cfg.Folders {
		cn.busy(true)
		_, err := cn.c.Status(f, &imap.StatusOptions{NumMessages: true, UIDValidity: true}).Wait()
		cn.busy(false)
		if err != nil {
			errs = append(errs, fmt.Errorf("folder %q: %w", f, err))
		}
	}
	if a.cfg.AfterUpload == "move" || a.cfg.NoCVAction == "move" {
		cn.busy(true)
		_, err := cn.c.Status(a.cfg.MoveTo, &imap.StatusOptions{NumMessages: true}).Wait()
		cn.busy(false)
		if err != nil {
			errs = append(errs, fmt.Errorf("move_to %q: %w", a.cfg.MoveTo, err))
		}
	}
	return errs
}
