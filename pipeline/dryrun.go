package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/termsafe"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/watcher"
)

// dryStore is a state that records nothing: lookups read the real state
// (read-only), claims are decided in memory and listed.
type dryStore struct {
	real *state.Store // nil: no state yet
	out  io.Writer

	mu   sync.Mutex
	seen map[state.Key]bool
	n    struct{ upload, dup int }
}

func (d *dryStore) LookupFile(sourceID, path string) (state.FileRecord, bool, error) {
	if d.real == nil {
		return state.FileRecord{}, false, nil
	}
	return d.real.LookupFile(sourceID, path)
}

func (d *dryStore) Claim(cands []state.Candidate) ([]state.ClaimResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res := make([]state.ClaimResult, len(cands))
	for i, c := range cands {
		k := state.Key{SourceID: c.SourceID, SHA256: c.SHA256}
		known := d.seen[k]
		if !known && d.real != nil {
			_, ok, err := d.real.Get(k)
			if err != nil {
				return nil, err
			}
			known = ok
		}
		if known {
			res[i] = state.ClaimDuplicate
			d.n.dup++
			fmt.Fprintf(d.out, "duplicate  %s  %s\n", termsafe.Escape(c.Source), termsafe.Escape(c.Path))
			continue
		}
		d.seen[k] = true
		res[i] = state.ClaimNew
		d.n.upload++
		fmt.Fprintf(d.out, "upload     %s  %s\n", termsafe.Escape(c.Source), termsafe.Escape(c.Path))
	}
	return res, nil
}

// FolderDevice reads the device recorded for a folder, so that a dry run
// does not list an empty mount point as the folder.
func (d *dryStore) FolderDevice(sourceID, path string) (state.FolderDevice, bool, error) {
	if d.real == nil {
		return state.FolderDevice{}, false, nil
	}
	return d.real.FolderDevice(sourceID, path)
}

// DryRun lists on w what a backfill of these folders would upload (and
// which files are duplicates), sending and recording nothing. Mailboxes
// are not read: that would fetch their attachments.
func DryRun(ctx context.Context, cfg *config.Config, folders []config.Folder, mailboxes []config.Mailbox, w io.Writer, log *slog.Logger) error {
	d := &dryStore{out: w, seen: map[state.Key]bool{}}
	path := filepath.Join(cfg.StateDir, state.FileName)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		st, err := state.Open(path, &state.Options{ReadOnly: true})
		if err == nil {
			// What the backfill would refuse is refused here too.
			if err = st.CheckAPI(APIIdentity(cfg)); err != nil {
				st.Close()
			}
		}
		switch {
		case errors.Is(err, state.ErrEmpty): // never written: nothing known
		case err != nil:
			return fmt.Errorf("backfill -dry-run reads the state: %w", err)
		default:
			defer st.Close()
			d.real = st
		}
	}
	for _, m := range mailboxes {
		fmt.Fprintf(w, "mailbox    %s  not read in a dry run (it would have to fetch the attachments)\n", termsafe.Escape(m.Name))
	}
	sc := watcher.NewScanner(d, watcher.ScannerOptions{Logger: log})
	if err := sc.Scan(ctx, folders); err != nil {
		return err
	}
	c := sc.Stats().Snapshot()
	fmt.Fprintf(w, "dry run: would upload %d, duplicates %d, skipped %d, unreadable %d, unchanged %d; nothing was sent or recorded\n",
		d.n.upload, d.n.dup, c.Skipped, c.Errors, c.Unchanged)
	return nil
}
