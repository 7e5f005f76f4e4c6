package pipeline

import "github.com/cvfeed/cvfeed/config"

// folderHealth is the Watch's OnHealth: a folder found up lets the pool
// take its pending items, which acceptUp held back until then.
func (p *Pipeline) folderHealth(_ string, err error) {
	if err == nil {
		p.store.Wake()
	}
}

// acceptUp admits the items base admits, except those of a folder that is
// down or not looked at yet: a file missing because its share did not
// mount must not fail its upload; it waits until the folder is back.
// Leases admit by source_id, so another source with the same source_id as
// a down folder waits too. The daemon asks the watch; a one-shot pass
// uses what it found at start.
func (p *Pipeline) acceptUp(folders []config.Folder, base func(string) bool) func(string) bool {
	byID := map[string][]string{}
	for _, f := range folders {
		byID[f.SourceID] = append(byID[f.SourceID], f.Name)
	}
	return func(id string) bool {
		if !base(id) {
			return false
		}
		if p.mode == OneShot {
			return !p.down[id]
		}
		names := byID[id]
		if len(names) == 0 {
			return true
		}
		if p.watch == nil {
			return false
		}
		health := p.watch.FolderHealth()
		for _, name := range names {
			if err, ok := health[name]; !ok || err != nil {
				return false
			}
		}
		return true
	}
}
