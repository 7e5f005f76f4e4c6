package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// folderTOML is one [[folder]] table with the given extra lines.
func folderTOML(name, path, source string, extra ...string) string {
	return fmt.Sprintf("[[folder]]\nname = %q\npath = %q\nsource_id = %q\n%s\n", name, path, source, strings.Join(extra, "\n"))
}

const (
	srcA = "0123456789abcdef0123456789abcdef01234567"
	srcB = "89abcdef0123456789abcdef0123456789abcdef"
)

// TestOverlapAllowed: layouts where no two folders take the same file
// parse without error.
func TestOverlapAllowed(t *testing.T) {
	for _, tt := range []struct{ name, folders string }{
		{"own done_dir and failed_dir inside own path", folderTOML("a", "/srv/cvs", srcA,
			`after_upload = "move"`, `done_dir = "/srv/cvs/done"`, `failed_dir = "/srv/cvs/failed"`)},
		{"a common prefix is not a parent", folderTOML("a", "/srv/cvs", srcA, `after_upload = "delete"`) +
			folderTOML("b", "/srv/cvs2", srcB, `after_upload = "delete"`)},
		{"inside a folder that is not recursive", folderTOML("top", "/srv/hr", srcA, "recursive = false", `after_upload = "delete"`) +
			folderTOML("sales", "/srv/hr/sales", srcB, `after_upload = "delete"`)},
		{"done_dirs side by side", folderTOML("a", "/srv/a", srcA, `after_upload = "move"`, `done_dir = "/srv/done/a"`) +
			folderTOML("b", "/srv/b", srcB, `after_upload = "move"`, `done_dir = "/srv/done/b"`)},
		{"done_dir in a sub-folder of a folder that is not recursive", folderTOML("top", "/srv/hr", srcA, "recursive = false") +
			folderTOML("b", "/srv/b", srcB, `after_upload = "move"`, `done_dir = "/srv/hr/done"`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := "[api]\nurl = \"sandbox\"\n" + tt.folders
			if _, err := Parse([]byte(data), "c.toml", nil); err != nil {
				t.Errorf("Parse:\n%s\n= %v, want no error", data, err)
			}
		})
	}
}

// TestOverlapSymlinks: a folder reached through a symbolic link, and a
// done_dir not created yet under a linked directory, are compared with the
// links resolved.
func TestOverlapSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, folders, want string }{
		{"the same directory", folderTOML("a", real, srcA) + folderTOML("b", link, srcB, `after_upload = "delete"`),
			fmt.Sprintf(`c.toml:10: folder[1].path: %q is the same directory as folder[0].path %q`, link, real)},
		{"a done_dir still to be made", folderTOML("a", real, srcA) +
			folderTOML("b", filepath.Join(dir, "b"), srcB, `after_upload = "move"`, fmt.Sprintf("done_dir = %q", filepath.Join(link, "done", "b"))),
			fmt.Sprintf(`c.toml:13: folder[1].done_dir: %q is inside folder[0].path %q (with symbolic links resolved: %q and %q): folder[0] would upload again the files moved there`,
				filepath.Join(link, "done", "b"), real, filepath.Join(resolved, "done", "b"), resolved)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := "[api]\nurl = \"sandbox\"\n" + tt.folders
			_, err := Parse([]byte(data), "c.toml", nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Parse:\n%s\n= %v, want one error starting %s", data, err, tt.want)
			}
		})
	}
}
