package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// source is what the pipeline needs to know of a [[folder]] or a
// [[mailbox]].
type source struct {
	name, sourceID string
	folder         *config.Folder // nil for a mailbox
	metadata       []config.TrainingMetadata
}

// sources lists the folders and mailboxes of a config.
func sources(folders []config.Folder, mailboxes []config.Mailbox) []source {
	var out []source
	for i := range folders {
		f := &folders[i]
		out = append(out, source{name: f.Name, sourceID: f.SourceID, folder: f, metadata: f.TrainingMetadata})
	}
	for _, m := range mailboxes {
		out = append(out, source{name: m.Name, sourceID: m.SourceID, metadata: m.TrainingMetadata})
	}
	return out
}

// acceptSources admits the items of these sources' source ids.
func acceptSources(srcs []source) func(string) bool {
	ids := map[string]bool{}
	for _, s := range srcs {
		ids[s.sourceID] = true
	}
	return func(id string) bool { return ids[id] }
}

// metadataFunc returns the training_metadata JSON text of an item: its
// source's list (found by source name, or, for an item of a renamed source,
// by the one source with its source_id); a folder's is templated by
// config.Folder.MetadataFor with the place HR put the file.
func metadataFunc(srcs []source) func(state.Item) ([]byte, error) {
	byName := map[string]source{}
	bySource := map[string][]source{}
	for _, s := range srcs {
		byName[s.name] = s
		bySource[s.sourceID] = append(bySource[s.sourceID], s)
	}
	return func(it state.Item) ([]byte, error) {
		src, ok := byName[it.Source]
		if !ok {
			if ss := bySource[it.SourceID]; len(ss) == 1 {
				src, ok = ss[0], true
			}
		}
		if !ok {
			return nil, fmt.Errorf("source %q is no longer in the config", it.Source)
		}
		md := src.metadata
		if src.folder != nil {
			path := it.Origin // where HR put the file, if it was moved since
			if path == "" {
				path = it.Path
			}
			md = src.folder.MetadataFor(path)
		}
		if len(md) == 0 {
			return nil, nil
		}
		b, err := json.Marshal(md)
		if err != nil {
			return nil, fmt.Errorf("source %s: training_metadata: %w", src.name, err)
		}
		return b, nil
	}
}
