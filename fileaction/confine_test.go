package fileaction

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// mountTmpfs mounts a small tmpfs (another file system than the test's
// temp dir) and unmounts it when the test ends. It needs root.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// listing is what a user would compare: every entry under dir with its
// type, mode, size, mtime and content hash.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMoveAcrossFileSystemsKeepsModeTimesGroup(t *testing.T) {
	e := newEnv(t, config.AfterMove)
	e.folder.DoneDir = filepath.Join(mountTmpfs(t), "done")
	e.claim("sub/a.pdf", "content")
	p := filepath.Join(e.folder.Path, "sub", "a.pdf")
	mt := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	if err := os.Chmod(p, 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, -1, 4242); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	// The identity in state is the file's as it is now.
	e.reclaim("sub/a.pdf")
	// done_dir already holds an a.pdf: the copy gets a free name.
	os.MkdirAll(filepath.Join(e.folder.DoneDir, "sub"), 0o755)
	os.WriteFile(filepath.Join(e.folder.DoneDir, "sub", "a.pdf"), []byte("older"), 0o644)
	e.settle(nil)
	e.runner().Sweep()
	got := filepath.Join(e.folder.DoneDir, "sub", "a (1).pdf")
	fi, err := os.Stat(got)
	if err != nil {
		t.Fatalf("moved file: %v", err)
	}
	if b, _ := os.ReadFile(got); string(b) != "content" {
		t.Errorf("%s = %q", got, b)
	}
	if fi.Mode().Perm() != 0o604 || !fi.ModTime().Equal(mt) || fi.Sys().(*syscall.Stat_t).Gid != 4242 {
		t.Errorf("moved file: mode %v, mtime %v, gid %d; want 0604, %v, 4242", fi.Mode(), fi.ModTime(), fi.Sys().(*syscall.Stat_t).Gid, mt)
	}
	if fileExists(p) {
		t.Error("the original is still in the folder")
	}
	if b, _ := os.ReadFile(filepath.Join(e.folder.DoneDir, "sub", "a.pdf")); string(b) != "older" {
		t.Errorf("done/sub/a.pdf overwritten: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(e.folder.DoneDir, "sub", ".cvfeed-move-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// Uploaded and moved: the item is retired, it no longer says where
	// the file was or is (state.Item.retire).
	if it, ok, _ := e.store.Get(state.Key{SourceID: src, SHA256: sha256.Sum256([]byte("content"))}); !ok || it.Status != state.Uploaded || it.Path != "" || it.Origin != "" {
		t.Errorf("item %+v, want it uploaded and retired (no path, no origin)", it)
	}
}

// TestMoveAcrossAfterAStopBeforeTheRemove: the copy was published, then
// cvfeed died before removing the original. The next sweep finds the
// copy and removes the original: the file is in done_dir once.
func TestMoveAcrossAfterAStopBeforeTheRemove(t *testing.T) {
	e := newEnv(t, config.AfterMove)
	e.folder.DoneDir = filepath.Join(mountTmpfs(t), "done")
	e.claim("a.pdf", "content")
	p := filepath.Join(e.folder.Path, "a.pdf")
	fi, _ := os.Stat(p)
	os.MkdirAll(e.folder.DoneDir, 0o755)
	os.WriteFile(filepath.Join(e.folder.DoneDir, "a.pdf"), []byte("content"), 0o644)
	os.Chtimes(filepath.Join(e.folder.DoneDir, "a.pdf"), fi.ModTime(), fi.ModTime())
	e.settle(nil)
	e.runner().Sweep()
	ents, _ := os.ReadDir(e.folder.DoneDir)
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	if !slices.Equal(names, []string{"a.pdf"}) {
		t.Errorf("done_dir holds %q, want the file once", names)
	}
	if fileExists(p) {
		t.Error("the original is still in the folder")
	}
}

func TestRemoveLeftovers(t *testing.T) {
	e := newEnv(t, config.AfterMove)
	outside := filepath.Join(e.root, "outside")
	for _, p := range []string{
		filepath.Join(e.folder.DoneDir, ".cvfeed-move-0123abcd"),
		filepath.Join(e.folder.DoneDir, "Data Scientist", ".cvfeed-move-42"),
		filepath.Join(e.folder.FailedDir, ".cvfeed-move-7"),
		filepath.Join(e.folder.DoneDir, "keep.pdf"),
		filepath.Join(e.folder.DoneDir, ".cvfeed-move-"), // not a name cvfeed makes
		filepath.Join(outside, ".cvfeed-move-99"),
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A link in done_dir to a directory outside: not followed.
	os.Symlink(outside, filepath.Join(e.folder.DoneDir, "elsewhere"))
	os.Symlink(filepath.Join(outside, ".cvfeed-move-99"), filepath.Join(e.folder.DoneDir, ".cvfeed-move-link"))
	before := listing(t, outside)
	if n := RemoveLeftovers([]config.Folder{e.folder}, discard()); n != 3 {
		t.Errorf("RemoveLeftovers removed %d, want 3", n)
	}
	for _, p := range []string{".cvfeed-move-0123abcd", "Data Scientist/.cvfeed-move-42"} {
		if fileExists(filepath.Join(e.folder.DoneDir, p)) {
			t.Errorf("done/%s still there", p)
		}
	}
	for _, p := range []string{"keep.pdf", ".cvfeed-move-", ".cvfeed-move-link", "elsewhere"} {
		if !fileExists(filepath.Join(e.folder.DoneDir, p)) {
			t.Errorf("done/%s removed", p)
		}
	}
	if after := listing(t, outside); !slices.Equal(before, after) {
		t.Errorf("outside changed:\n%q\nwant\n%q", after, before)
	}
}

// TestActionsStayInside: under follow_symlinks = "all" files outside are
// read, but an after-action moves or deletes only a name inside the
// folder: a file reached through a directory link is left, a link to a
// file is moved or deleted itself, never its target.
func TestActionsStayInside(t *testing.T) {
	for _, after := range []string{config.AfterDelete, config.AfterMove} {
		t.Run(after, func(t *testing.T) {
			e := newEnv(t, after)
			e.folder.FollowSymlinks = config.FollowAll
			out := filepath.Join(e.root, "out")
			os.MkdirAll(filepath.Join(out, "dir"), 0o755)
			os.WriteFile(filepath.Join(out, "dir", "x.pdf"), []byte("x outside"), 0o644)
			os.WriteFile(filepath.Join(out, "y.pdf"), []byte("y outside"), 0o644)
			os.MkdirAll(e.folder.Path, 0o755)
			os.Symlink(filepath.Join(out, "dir"), filepath.Join(e.folder.Path, "dir-out"))
			os.Symlink("../out/y.pdf", filepath.Join(e.folder.Path, "y.pdf"))
			e.claimExisting("dir-out/x.pdf", "x outside")
			e.claimExisting("y.pdf", "y outside")
			before := listing(t, out)
			e.settle(nil)
			e.runner().Sweep()
			if after := listing(t, out); !slices.Equal(before, after) {
				t.Errorf("outside changed:\n%q\nwant\n%q", after, before)
			}
			if due, _ := e.store.DueActions(); len(due) != 0 {
				t.Errorf("%d actions still due: the one left as it is must be recorded", len(due))
			}
			if !fileExists(filepath.Join(e.folder.Path, "dir-out")) {
				t.Error("the directory link was removed")
			}
			if fileExists(filepath.Join(e.folder.Path, "y.pdf")) {
				t.Error("the link y.pdf was neither moved nor deleted")
			}
			if after == config.AfterMove {
				fi, err := os.Lstat(filepath.Join(e.folder.DoneDir, "y.pdf"))
				if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("done/y.pdf = %v, %v; want the link moved there", fi, err)
				}
				if fileExists(filepath.Join(e.folder.DoneDir, "dir-out")) {
					t.Error("done/dir-out made: the file behind the directory link was moved")
				}
			}
		})
	}
}

// TestActionAfterDirSwappedForLink: between the claim and the action, a
// directory is moved outside the folder and a link to it takes its place.
// The file behind it is the very one claimed (same inode), yet it is not
// deleted: it is no longer inside the folder.
func TestActionAfterDirSwappedForLink(t *testing.T) {
	for _, c := range [][2]string{
		{config.AfterDelete, config.FollowInside}, {config.AfterMove, config.FollowInside},
		{config.AfterDelete, config.FollowAll}, {config.AfterMove, config.FollowAll},
	} {
		after, policy := c[0], c[1]
		t.Run(after+"/"+policy, func(t *testing.T) {
			e := newEnv(t, after)
			e.folder.FollowSymlinks = policy
			e.claim("d/cv.pdf", "cv")
			e.settle(nil)
			out := filepath.Join(e.root, "out")
			os.MkdirAll(out, 0o755)
			if err := os.Rename(filepath.Join(e.folder.Path, "d"), filepath.Join(out, "d")); err != nil {
				t.Fatal(err)
			}
			os.Symlink("../out/d", filepath.Join(e.folder.Path, "d"))
			before := listing(t, out)
			e.runner().Sweep()
			if after := listing(t, out); !slices.Equal(before, after) {
				t.Errorf("outside changed:\n%q\nwant\n%q", after, before)
			}
			if fileExists(filepath.Join(e.folder.DoneDir, "d", "cv.pdf")) {
				t.Error("the file was moved to done_dir from outside the folder")
			}
		})
	}
}

// reclaim records the current identity of a claimed file.
func (e *env) reclaim(rel string) {
	e.t.Helper()
	p := filepath.Join(e.folder.Path, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	e.claimStat(p, string(b))
}

// claimExisting claims a file already there (through links).
func (e *env) claimExisting(rel, content string) {
	e.t.Helper()
	e.claimStat(filepath.Join(e.folder.Path, rel), content)
}

func (e *env) claimStat(p, content string) {
	fi, err := os.Stat(p)
	if err != nil {
		e.t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	c := state.Candidate{Source: "inbox", SourceID: src, SHA256: sha256.Sum256([]byte(content)), Path: p, FileName: filepath.Base(p),
		Size: fi.Size(), Received: fi.ModTime(), Action: true,
		Identity: &state.Identity{Dev: uint64(st.Dev), Ino: st.Ino, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}}
	if _, err := e.store.Claim([]state.Candidate{c}); err != nil {
		e.t.Fatal(err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
