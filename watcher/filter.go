// Package watcher finds CV files in folders and hands each complete one over
// to state: hashed once, then claimed in batched transactions.
//
// Two users:
//
//   - Scanner is the one-pass walk of cvfeed backfill.
//   - Watch runs the folder sources of cvfeed run: per folder, inotify events
//     or polling, a stable-file check so that a file still being written is
//     never taken, and a reconcile walk at start and every rescan_interval.
//
// Both share the walk, the name and size filters and the hand-over: a file
// whose identity (device, inode, size, mtime) matches the one state
// remembers is not read again; any other is hashed once, with an fstat
// before and after to catch a change meanwhile, and claimed.
//
// Files: filter.go (names, sizes), walk.go and dirent.go (the walk),
// handover.go (identity check, hashing, batched claims), scan.go (Scanner),
// watch.go (Watch), source.go (a folder's loop), walks.go (its rescans,
// polls and new-directory walks), events.go and inotify.go (inotify),
// settle.go (the stable-file check), procfd.go (writers seen in /proc),
// fstype.go (network file systems, the choice of mode).
package watcher

import (
	"path"
	"strings"

	"github.com/cvfeed/cvfeed/config"
)

// Skip is why a file is not taken.
type Skip string

// Reasons a file is skipped.
const (
	SkipNone     Skip = ""
	SkipTemp     Skip = "temporary or lock file"
	SkipHidden   Skip = "hidden file"
	SkipPattern  Skip = "not matched by include, or matched by exclude"
	SkipEmpty    Skip = "empty file"
	SkipTooLarge Skip = "larger than max_size"
)

// Filter decides by name and size which files of a folder are CVs.
type Filter struct {
	include, exclude []pattern
	maxSize          int64
}

// pattern is a lower-cased glob. The common "*.ext" form is matched as a
// suffix: a walk tests every name against every include pattern.
type pattern struct {
	glob   string
	suffix string // set when glob is "*" followed by no meta character
	full   bool   // glob has a slash: matched against the relative path
}

func compile(globs []string) []pattern {
	out := make([]pattern, len(globs))
	for i, g := range globs {
		g = strings.ToLower(g)
		p := pattern{glob: g, full: strings.Contains(g, "/")}
		if rest, ok := strings.CutPrefix(g, "*"); ok && !p.full && !strings.ContainsAny(rest, `*?[\`) {
			p.suffix = rest
		}
		out[i] = p
	}
	return out
}

// NewFilter returns the filter of a folder. Patterns are matched
// case-insensitively; config validated them.
func NewFilter(f config.Folder) *Filter {
	return &Filter{include: compile(f.Include), exclude: compile(f.Exclude), maxSize: f.MaxSize}
}

// IgnoredName reports whether a name (file or directory) is never taken:
// dot files, Office lock files (~$x.docx), partial downloads and temp files
// that copy tools rename when they are done.
func IgnoredName(name string) Skip {
	if strings.HasPrefix(name, ".") {
		return SkipHidden
	}
	l := strings.ToLower(name)
	if strings.HasPrefix(l, "~$") || strings.HasSuffix(l, "~") {
		return SkipTemp
	}
	for _, suf := range []string{".part", ".crdownload", ".tmp", ".partial", ".download", ".swp"} {
		if strings.HasSuffix(l, suf) {
			return SkipTemp
		}
	}
	return SkipNone
}

// File decides on a regular file, by its path relative to the folder (slash
// separated) and its size.
func (f *Filter) File(rel string, size int64) Skip {
	if s := f.name(rel); s != SkipNone {
		return s
	}
	return f.size(size)
}

// name decides on a file by its name alone, before it is stat'ed.
func (f *Filter) name(rel string) Skip {
	return f.nameIn(path.Dir(rel), path.Base(rel))
}

// nameIn is name for the file name in the directory relDir ("" or "."
// for the folder itself), without building the relative path unless a
// pattern needs it.
func (f *Filter) nameIn(relDir, name string) Skip {
	if s := IgnoredName(name); s != SkipNone {
		return s
	}
	if relDir == "." {
		relDir = ""
	}
	if !f.matches(f.include, relDir, name) || f.matches(f.exclude, relDir, name) {
		return SkipPattern
	}
	return SkipNone
}

// size decides on a file that passed name by its size.
func (f *Filter) size(size int64) Skip {
	if size == 0 {
		return SkipEmpty
	}
	if f.maxSize > 0 && size > f.maxSize {
		return SkipTooLarge
	}
	return SkipNone
}

// Dir reports whether a sub-directory (relative path) is walked.
func (f *Filter) Dir(rel string) bool {
	if IgnoredName(path.Base(rel)) != SkipNone {
		return false
	}
	return !f.matches(f.exclude, path.Dir(rel), path.Base(rel))
}

// matches: a pattern without a slash matches the base name, one with a
// slash the whole relative path.
func (f *Filter) matches(patterns []pattern, relDir, name string) bool {
	if len(patterns) == 0 {
		return false
	}
	base, full := strings.ToLower(name), ""
	for _, p := range patterns {
		if p.suffix != "" || p.glob == "*" {
			// "*" matches no slash, and a name holds none.
			if strings.HasSuffix(base, p.suffix) {
				return true
			}
			continue
		}
		target := base
		if p.full {
			if full == "" {
				full = strings.ToLower(join(relDir, name))
			}
			target = full
		}
		if ok, _ := path.Match(p.glob, target); ok {
			return true
		}
	}
	return false
}
