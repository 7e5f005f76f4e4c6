package fileaction

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cvfeed/cvfeed/config"
)

// TestDownFolderKeepsItsActions: while the folder check says the folder is
// down (a share that did not mount: every file looks gone), due actions
// are neither done nor recorded as done; once it is back, the next sweep
// does them.
func TestDownFolderKeepsItsActions(t *testing.T) {
	for _, after := range []string{config.AfterDelete, config.AfterMove} {
		t.Run(after, func(t *testing.T) {
			e := newEnv(t, after)
			e.claim("anna.pdf", "anna")
			e.claim("sub/bob.pdf", "bob")
			e.settle(nil)
			// The share goes away: its mount point is empty.
			away := filepath.Join(e.root, "share-away")
			if err := os.Rename(e.folder.Path, away); err != nil {
				t.Fatal(err)
			}
			os.Mkdir(e.folder.Path, 0o755)
			down := true
			r := e.runner()
			var asked []string
			r.SetFolderCheck(func(f config.Folder) error {
				asked = append(asked, f.Name)
				if down {
					return errors.New(f.Path + " is on another device than before")
				}
				return nil
			})
			r.Sweep()
			if due, _ := e.store.DueActions(); len(due) != 2 {
				t.Fatalf("%d actions due after a sweep of a down folder, want 2 (none recorded done)", len(due))
			}
			if len(asked) == 0 || asked[0] != "inbox" {
				t.Errorf("folder check asked for %v, want inbox", asked)
			}
			// The share is back.
			os.Remove(e.folder.Path)
			if err := os.Rename(away, e.folder.Path); err != nil {
				t.Fatal(err)
			}
			down = false
			r.Sweep()
			if due, _ := e.store.DueActions(); len(due) != 0 {
				t.Errorf("%d actions due after the folder came back, want 0", len(due))
			}
			for _, rel := range []string{"anna.pdf", "sub/bob.pdf"} {
				if fileExists(filepath.Join(e.folder.Path, rel)) {
					t.Errorf("%s still in the folder after %s", rel, after)
				}
				if after == config.AfterMove && !fileExists(filepath.Join(e.folder.DoneDir, rel)) {
					t.Errorf("%s not in done_dir", rel)
				}
			}
		})
	}
}
