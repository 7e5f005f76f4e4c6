package pipeline

import (
	"testing"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

func TestMetadataSubdir(t *testing.T) {
	stage := "NEW"
	f := config.Folder{Name: "inbox", Path: "/srv/cvs", SourceID: e2eSource, TrainingMetadata: []config.TrainingMetadata{
		{FilterReference: config.TemplateSubdir, Stage: &stage},
		{FilterReference: "all-candidates"},
	}}
	md := metadataFunc(sources([]config.Folder{f, {Name: "plain", Path: "/srv/other", SourceID: "0000000000000000000000000000000000000001"}},
		[]config.Mailbox{{Name: "jobs", SourceID: "0000000000000000000000000000000000000003", TrainingMetadata: []config.TrainingMetadata{{FilterReference: "from-mail"}}}}))
	for _, tc := range []struct {
		it   state.Item
		want string
	}{
		{state.Item{Source: "inbox", Path: "/srv/cvs/Data Scientist/anna.pdf"},
			`[{"filter_reference":"Data Scientist","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null},{"filter_reference":"all-candidates","stage":null,"stage_timestamp":null,"rating":null,"rating_timestamp":null}]`},
		{state.Item{Source: "inbox", Path: "/srv/cvs/Data Scientist/2024/deep/anna.pdf"},
			`[{"filter_reference":"Data Scientist","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null},{"filter_reference":"all-candidates","stage":null,"stage_timestamp":null,"rating":null,"rating_timestamp":null}]`},
		// At the top of the folder, the {subdir} element is left out.
		{state.Item{Source: "inbox", Path: "/srv/cvs/anna.pdf"},
			`[{"filter_reference":"all-candidates","stage":null,"stage_timestamp":null,"rating":null,"rating_timestamp":null}]`},
		// Moved to failed_dir since: the original place counts.
		{state.Item{Source: "inbox", Path: "/srv/failed/Backend/bob.pdf", Origin: "/srv/cvs/Backend/bob.pdf"},
			`[{"filter_reference":"Backend","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null},{"filter_reference":"all-candidates","stage":null,"stage_timestamp":null,"rating":null,"rating_timestamp":null}]`},
		// A renamed source is found by its source_id.
		{state.Item{Source: "old-name", Key: state.Key{SourceID: e2eSource}, Path: "/srv/cvs/x.pdf"},
			`[{"filter_reference":"all-candidates","stage":null,"stage_timestamp":null,"rating":null,"rating_timestamp":null}]`},
		{state.Item{Source: "plain", Path: "/srv/other/x.pdf"}, ``},
		// A mailbox's item: its spool path means nothing for {subdir}.
		{state.Item{Source: "jobs", Path: "/var/spool/abc", Origin: "jobs/INBOX/1/2/2"},
			`[{"filter_reference":"from-mail","stage":null,"stage_timestamp":null,"rating":null,"rating_timestamp":null}]`},
	} {
		got, err := md(tc.it)
		if err != nil || string(got) != tc.want {
			t.Errorf("metadata(%s %s) = %s, %v\n want %s", tc.it.Source, tc.it.Path, got, err, tc.want)
		}
	}
	if _, err := md(state.Item{Source: "gone", Key: state.Key{SourceID: "x"}}); err == nil {
		t.Error("an item of a source no longer configured got metadata")
	}
}
