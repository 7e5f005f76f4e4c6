package fileaction

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

const src = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

type env struct {
	t      *testing.T
	store  *state.Store
	folder config.Folder
	root   string
}

func newEnv(t *testing.T, after string) *env {
	root := t.TempDir()
	st, err := state.Open(filepath.Join(t.TempDir(), state.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := config.Folder{Name: "inbox", Path: filepath.Join(root, "in"), SourceID: src, AfterUpload: after,
		DoneDir: filepath.Join(root, "done"), FailedDir: filepath.Join(root, "failed")}
	return &env{t: t, store: st, folder: f, root: root}
}

// claim writes a file under the folder and claims it as a scan would.
func (e *env) claim(rel, content string) state.Key {
	e.t.Helper()
	p := filepath.Join(e.folder.Path, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	st := fi.Sys().(*syscall.Stat_t)
	sum := sha256.Sum256([]byte(content))
	c := state.Candidate{Source: "inbox", SourceID: src, SHA256: sum, Path: p, FileName: filepath.Base(p),
		Size: fi.Size(), Received: fi.ModTime(), Action: true,
		Identity: &state.Identity{Dev: uint64(st.Dev), Ino: st.Ino, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}}
	if _, err := e.store.Claim([]state.Candidate{c}); err != nil {
		e.t.Fatal(err)
	}
	return state.Key{SourceID: src, SHA256: sum}
}

// settle records outcomes for the leased items.
func (e *env) settle(outcomes map[state.Key]state.Outcome) {
	e.t.Helper()
	items, _, err := e.store.Lease(100, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var rs []state.Result
	for _, it := range items {
		o, ok := outcomes[it.Key]
		if !ok {
			o = state.Done
		}
		rs = append(rs, state.Result{Key: it.Key, Outcome: o, Attempted: true, Err: "api: 422 Invalid file"})
	}
	if err := e.store.Complete(rs); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) runner() *Runner {
	r := New(e.store, nil)
	r.SetFolders([]config.Folder{e.folder})
	r.now = func() time.Time { return time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC) }
	return r
}

func TestMoveKeepsRelativePathAndNeverOverwrites(t *testing.T) {
	e := newEnv(t, config.AfterMove)
	e.claim("Data Scientist/anna.pdf", "anna")
	e.claim("bob.pdf", "bob")
	// done_dir already holds a bob.pdf from an earlier day.
	os.MkdirAll(e.folder.DoneDir, 0o755)
	os.WriteFile(filepath.Join(e.folder.DoneDir, "bob.pdf"), []byte("older bob"), 0o644)
	e.settle(nil)
	e.runner().Sweep()
	if !fileExists(filepath.Join(e.folder.DoneDir, "Data Scientist", "anna.pdf")) || fileExists(filepath.Join(e.folder.Path, "Data Scientist", "anna.pdf")) {
		t.Error("anna.pdf not moved to done/Data Scientist/")
	}
	if b, _ := os.ReadFile(filepath.Join(e.folder.DoneDir, "bob.pdf")); string(b) != "older bob" {
		t.Errorf("done/bob.pdf overwritten: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(e.folder.DoneDir, "bob (1).pdf")); string(b) != "bob" {
		t.Errorf("done/bob (1).pdf = %q, want the moved file", b)
	}
	if due, _ := e.store.DueActions(); len(due) != 0 {
		t.Errorf("%d actions left after the sweep", len(due))
	}
}

func TestDeleteOnlyAfterConfirmation(t *testing.T) {
	e := newEnv(t, config.AfterDelete)
	e.claim("a.pdf", "a")
	r := e.runner()
	r.Sweep()
	if !fileExists(filepath.Join(e.folder.Path, "a.pdf")) {
		t.Fatal("deleted before the upload was confirmed")
	}
	e.settle(nil)
	r.Sweep()
	if fileExists(filepath.Join(e.folder.Path, "a.pdf")) {
		t.Error("not deleted after the upload")
	}
}

func TestChangedFileIsLeftAlone(t *testing.T) {
	e := newEnv(t, config.AfterDelete)
	e.claim("a.pdf", "version 1")
	e.settle(nil)
	// HR saved a new version (another size) under the same name before
	// the action ran.
	os.WriteFile(filepath.Join(e.folder.Path, "a.pdf"), []byte("version 2!"), 0o644)
	e.runner().Sweep()
	if b, _ := os.ReadFile(filepath.Join(e.folder.Path, "a.pdf")); string(b) != "version 2!" {
		t.Errorf("a.pdf = %q: a new version was deleted", b)
	}
	if due, _ := e.store.DueActions(); len(due) != 0 {
		t.Error("the action on a changed file is still due")
	}
}

func TestFailedGoesToFailedDirWithNote(t *testing.T) {
	e := newEnv(t, config.AfterMove)
	k := e.claim("sub/broken.pdf", "broken")
	e.settle(map[state.Key]state.Outcome{k: state.Fail})
	e.runner().Sweep()
	dest := filepath.Join(e.folder.FailedDir, "sub", "broken.pdf")
	if !fileExists(dest) {
		t.Fatal("failed file not in failed_dir/sub/")
	}
	note, err := os.ReadFile(dest + ".error.txt")
	if err != nil || !strings.Contains(string(note), "api: 422 Invalid file") || !strings.Contains(string(note), "cvfeed retry "+k.String()) {
		t.Errorf("error note = %q, %v", note, err)
	}
	// The item follows the file, so that a retry finds it.
	if it, _, _ := e.store.Get(k); it.Path != dest || it.Origin != filepath.Join(e.folder.Path, "sub", "broken.pdf") {
		t.Errorf("item path = %q, origin %q; want %q and the original path", it.Path, it.Origin, dest)
	}
}

func TestKeepTouchesNothing(t *testing.T) {
	e := newEnv(t, config.AfterKeep)
	e.folder.FailedDir = ""
	k1 := e.claim("ok.pdf", "ok")
	k2 := e.claim("bad.pdf", "bad")
	e.settle(map[state.Key]state.Outcome{k2: state.Fail})
	// A read-only share: nothing may be written.
	os.Chmod(e.folder.Path, 0o555)
	defer os.Chmod(e.folder.Path, 0o755)
	e.runner().Sweep()
	for _, n := range []string{"ok.pdf", "bad.pdf"} {
		if !fileExists(filepath.Join(e.folder.Path, n)) {
			t.Errorf("%s moved or deleted with after_upload = keep", n)
		}
	}
	if fileExists(e.folder.DoneDir) || fileExists(e.folder.FailedDir) {
		t.Error("keep created done or failed directories")
	}
	_ = k1
}

func TestDuplicateCopyFollowsItsOriginal(t *testing.T) {
	e := newEnv(t, config.AfterMove)
	e.claim("a.pdf", "same")
	e.claim("copy/a-again.pdf", "same")
	e.settle(nil)
	r := e.runner()
	r.Notify(state.Key{SourceID: src, SHA256: sha256.Sum256([]byte("same"))})
	r.item(<-r.keys)
	for _, p := range []string{"a.pdf", "copy/a-again.pdf"} {
		if !fileExists(filepath.Join(e.folder.DoneDir, p)) {
			t.Errorf("%s not in done_dir", p)
		}
	}
}

// TestMoveRecordedAfterAStop: cvfeed stopped between moving a file and
// recording it; the next sweep finds the file where the move put it and
// the item follows it (so that a retry of a failed CV reads it there).
func TestMoveRecordedAfterAStop(t *testing.T) {
	e := newEnv(t, config.AfterMove)
	k := e.claim("sub/bad.pdf", "bad")
	e.claim("good.pdf", "good")
	e.settle(map[state.Key]state.Outcome{k: state.Fail})
	// The moves happened (renames on one file system), the records did not.
	for _, m := range [][2]string{{"sub/bad.pdf", filepath.Join(e.folder.FailedDir, "sub", "bad.pdf")}, {"good.pdf", filepath.Join(e.folder.DoneDir, "good.pdf")}} {
		os.MkdirAll(filepath.Dir(m[1]), 0o755)
		if err := os.Rename(filepath.Join(e.folder.Path, m[0]), m[1]); err != nil {
			t.Fatal(err)
		}
	}
	e.runner().Sweep()
	if due, _ := e.store.DueActions(); len(due) != 0 {
		t.Errorf("%d actions left", len(due))
	}
	dest := filepath.Join(e.folder.FailedDir, "sub", "bad.pdf")
	if it, _, _ := e.store.Get(k); it.Path != dest {
		t.Errorf("failed item path = %q, want %q", it.Path, dest)
	}
	if !fileExists(dest + ".error.txt") {
		t.Error("the error note was not written")
	}
}

func fileExists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestRetriedLeavesFailedDir: a failed file in failed_dir that a retry
// uploads goes on per policy (move: done_dir; keep: back to the folder;
// delete: deleted) and its error note goes; a second failure rewrites the
// note and keeps it there.
func TestRetriedLeavesFailedDir(t *testing.T) {
	for _, after := range []string{config.AfterMove, config.AfterKeep, config.AfterDelete} {
		t.Run(after, func(t *testing.T) {
			e := newEnv(t, after)
			k := e.claim("team/cv.pdf", "a CV that fails first")
			e.settle(map[state.Key]state.Outcome{k: state.Fail})
			r := e.runner()
			r.Sweep()
			inFailed := filepath.Join(e.folder.FailedDir, "team", "cv.pdf")
			if !fileExists(inFailed) || !fileExists(inFailed+".error.txt") {
				t.Fatal("not in failed_dir with its note")
			}
			// Retried, failed again: it stays, the note is written anew.
			os.Remove(inFailed + ".error.txt")
			if n, err := e.store.RetryFailed(nil); n != 1 || err != nil {
				t.Fatalf("RetryFailed = %d, %v", n, err)
			}
			e.settle(map[state.Key]state.Outcome{k: state.Fail})
			r.Sweep()
			if !fileExists(inFailed) || !fileExists(inFailed+".error.txt") {
				t.Fatal("after a second failure: not in failed_dir with a new note")
			}
			// Retried, uploaded.
			e.store.RetryFailed(nil)
			e.settle(nil)
			r.Sweep()
			if fileExists(inFailed) || fileExists(inFailed+".error.txt") {
				t.Errorf("uploaded after a retry: still in failed_dir (file %v, note %v)", fileExists(inFailed), fileExists(inFailed+".error.txt"))
			}
			want := map[string]string{config.AfterMove: filepath.Join(e.folder.DoneDir, "team", "cv.pdf"),
				config.AfterKeep: filepath.Join(e.folder.Path, "team", "cv.pdf")}[after]
			if want != "" && !fileExists(want) {
				t.Errorf("uploaded after a retry: not at %s", want)
			}
			// Uploaded, its file out of failed_dir: the item is retired
			// (state.Item.retire).
			if it, ok, _ := e.store.Get(k); !ok || it.Status != state.Uploaded || it.Path != "" {
				t.Errorf("item = %+v, want it uploaded and retired (no path)", it)
			}
			if due, _ := e.store.DueActions(); len(due) != 0 {
				t.Errorf("actions still due: %+v", due)
			}
		})
	}
}
