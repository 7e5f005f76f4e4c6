package config

import (
	"fmt"
	"strings"
)

// Select returns the folders and mailboxes named in only, a comma-separated
// list (cvfeed backfill -only); all of them when only is empty. A name of
// no source is an error.
func (cfg *Config) Select(only string) ([]Folder, []Mailbox, error) {
	if only == "" {
		return cfg.Folders, cfg.Mailboxes, nil
	}
	want := map[string]bool{}
	for n := range strings.SplitSeq(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var folders []Folder
	var mailboxes []Mailbox
	for _, f := range cfg.Folders {
		if want[f.Name] {
			folders = append(folders, f)
			delete(want, f.Name)
		}
	}
	for _, m := range cfg.Mailboxes {
		if want[m.Name] {
			mailboxes = append(mailboxes, m)
			delete(want, m.Name)
		}
	}
	for n := range want {
		return nil, nil, fmt.Errorf("-only: no folder or mailbox named %q in the config", n)
	}
	return folders, mailboxes, nil
}
