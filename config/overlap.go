package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Overlapping folders lose files: when two [[folder]]s take the same file,
// one moves or deletes it (after_upload, failed_dir) while the other is
// about to read it, and the other then fails it for good ("no such file").
// A done_dir or failed_dir inside another folder hands that folder files to
// upload again. So these layouts are config errors, each naming both keys:
//
//   - two folder paths that are the same directory, or one inside the other
//     when the outer one is recursive (a folder that is not recursive only
//     takes the files at its top);
//   - a done_dir or failed_dir that another folder would take files from;
//   - a folder path inside another folder's done_dir or failed_dir.
//
// A folder's own done_dir and failed_dir inside its own path stay allowed:
// the folder never walks them.
//
// Paths are compared as written (absolute and cleaned) and with symbolic
// links resolved as far as they exist on disk, so that /srv/cvs and a link
// to it are caught; a directory not created yet is compared through its
// nearest existing parent.

// spot is one directory of the config: its key, as written, and the forms
// it is compared under.
type spot struct {
	key, path string
	folder    int  // index of the folder the key belongs to
	recursive bool // for a folder path: it takes files in sub-folders
	forms     []string
}

// newSpot returns the spot of a path key; the zero spot (path "") for an
// unset or reported key.
func newSpot(key, path string, folder int, recursive bool) spot {
	if path == "" {
		return spot{}
	}
	s := spot{key: key, path: path, folder: folder, recursive: recursive, forms: []string{path}}
	if real := resolveExisting(path); real != path {
		s.forms = append(s.forms, real)
	}
	return s
}

// overlaps reports the folder layouts that lose files (see above).
func (r *reader) overlaps(folders []Folder) {
	paths := make([]spot, len(folders))
	var outs []spot // the done_dirs and failed_dirs
	for i, f := range folders {
		key := fmt.Sprintf("folder[%d]", i)
		paths[i] = newSpot(key+".path", f.Path, i, f.Recursive)
		for _, d := range []struct{ name, dir string }{{"done_dir", f.DoneDir}, {"failed_dir", f.FailedDir}} {
			if s := newSpot(key+"."+d.name, d.dir, i, false); s.path != "" {
				outs = append(outs, s)
			}
		}
	}
	const both = "both folders would take the same files"
	for i, a := range paths {
		if a.path == "" {
			continue
		}
		for _, b := range paths[:i] {
			if b.path == "" || a.path == b.path && strings.EqualFold(folders[i].SourceID, folders[b.folder].SourceID) {
				continue // none, or reported as the same path and source_id
			}
			switch rel, via := relate(a, b); rel {
			case same:
				r.probs.addf(a.key, "%q is the same directory as %s %q%s: %s", a.path, b.key, b.path, via, both)
			case inside:
				if b.recursive {
					r.probs.addf(a.key, "%q is inside %s %q%s: %s", a.path, b.key, b.path, via, both)
				}
			case contains:
				if a.recursive {
					r.probs.addf(a.key, "%q contains %s %q%s: %s", a.path, b.key, b.path, via, both)
				}
			}
		}
	}
	for _, o := range outs {
		for _, p := range paths {
			if p.path == "" || p.folder == o.folder {
				continue
			}
			switch rel, via := relate(o, p); {
			case rel == same || rel == inside && p.recursive:
				r.probs.addf(o.key, "%q is inside %s %q%s: %s would upload again the files moved there",
					o.path, p.key, p.path, via, folderKey(p.key))
			case rel == contains:
				r.probs.addf(p.key, "%q is inside %s %q%s: %s would upload again the files %s moves there",
					p.path, o.key, o.path, via, folderKey(p.key), folderKey(o.key))
			}
		}
	}
}

// folderKey returns the folder[i] part of a key.
func folderKey(key string) string {
	k, _, _ := strings.Cut(key, ".")
	return k
}

// relation is how a directory stands to another.
type relation int

const (
	apart    relation = iota
	same              // the same directory
	inside            // strictly inside the other
	contains          // the other is strictly inside it
)

// relate says how a stands to b under the first pair of their forms that
// are related, the paths as written first. via describes the resolved
// forms when only they are related ("" otherwise).
func relate(a, b spot) (rel relation, via string) {
	for i, fa := range a.forms {
		for j, fb := range b.forms {
			switch {
			case fa == fb:
				rel = same
			case within(fa, fb):
				rel = inside
			case within(fb, fa):
				rel = contains
			default:
				continue
			}
			if i > 0 || j > 0 {
				via = fmt.Sprintf(" (with symbolic links resolved: %q and %q)", fa, fb)
			}
			return rel, via
		}
	}
	return apart, ""
}

// within reports whether the clean absolute path p is strictly inside dir.
func within(p, dir string) bool {
	if dir == string(filepath.Separator) {
		return p != dir && strings.HasPrefix(p, dir)
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}

// resolveExisting returns p with symbolic links resolved in its longest
// part that exists; the rest is kept as written. It returns p when nothing
// can be resolved.
func resolveExisting(p string) string {
	rest := ""
	for q := p; ; {
		if real, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(real, rest)
		}
		parent := filepath.Dir(q)
		if parent == q {
			return p
		}
		rest = filepath.Join(filepath.Base(q), rest)
		q = parent
	}
}
