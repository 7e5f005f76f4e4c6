package config

import (
	"path/filepath"
	"strings"
)

// MetadataFor returns the folder's training_metadata for the file at path
// (where HR put it, under the folder's path), with {subdir} replaced by the
// first sub-folder of the file under the folder's path. An element whose
// {subdir} is empty (a file at the top of the folder, or a path outside
// it) is left out. The result is nil when nothing is left.
func (f Folder) MetadataFor(path string) []TrainingMetadata {
	if len(f.TrainingMetadata) == 0 {
		return nil
	}
	sub := subdir(f.Path, path)
	out := make([]TrainingMetadata, 0, len(f.TrainingMetadata))
	for _, tm := range f.TrainingMetadata {
		if strings.Contains(tm.FilterReference, TemplateSubdir) {
			if sub == "" {
				continue
			}
			tm.FilterReference = strings.ReplaceAll(tm.FilterReference, TemplateSubdir, sub)
		}
		out = append(out, tm)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// subdir is the first directory of path under root, or "".
func subdir(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return ""
	}
	first, _, found := strings.Cut(filepath.ToSlash(rel), "/")
	if !found {
		return ""
	}
	return first
}
