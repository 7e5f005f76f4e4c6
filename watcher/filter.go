// Package watcher finds CV files in folders: the one-pass scan used by
// backfill and by the daemon's reconcile walks, the name and size filters,
// and file identities that let a rescan skip files already hashed.
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
	include, exclude []string
	maxSize          int64
}

// NewFilter returns the filter of a folder. Patterns are matched
// case-insensitively; config validated them.
func NewFilter(f config.Folder) *Filter {
	lower := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = strings.ToLower(p)
		}
		return out
	}
	return &Filter{include: lower(f.Include), exclude: lower(f.Exclude), maxSize: f.MaxSize}
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
	base := path.Base(rel)
	if s := IgnoredName(base); s != SkipNone {
		return s
	}
	if !f.matches(f.include, rel) || f.matches(f.exclude, rel) {
		return SkipPattern
	}
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
	return !f.matches(f.exclude, rel)
}

// matches: a pattern without a slash matches the base name, one with a
// slash the whole relative path.
func (f *Filter) matches(patterns []string, rel string) bool {
	l := strings.ToLower(rel)
	base := path.Base(l)
	for _, p := range patterns {
		target := base
		if strings.Contains(p, "/") {
			target = l
		}
		if ok, _ := path.Match(p, target); ok {
			return true
		}
	}
	return false
}
