package config

import (
	"reflect"
	"testing"
)

func TestFolderMetadataFor(t *testing.T) {
	stage := "NEW"
	f := Folder{Path: "/srv/cvs", TrainingMetadata: []TrainingMetadata{
		{FilterReference: "job-" + TemplateSubdir, Stage: &stage},
		{FilterReference: "all"},
	}}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/srv/cvs/Data Scientist/anna.pdf", []string{"job-Data Scientist", "all"}},
		{"/srv/cvs/Backend/2024/deep/bob.pdf", []string{"job-Backend", "all"}},
		{"/srv/cvs/top.pdf", []string{"all"}},   // at the top: the {subdir} element is left out
		{"/srv/other/x/y.pdf", []string{"all"}}, // not under the folder
	} {
		var got []string
		for _, tm := range f.MetadataFor(tc.path) {
			got = append(got, tm.FilterReference)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MetadataFor(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if got := (Folder{Path: "/srv/cvs"}).MetadataFor("/srv/cvs/a/b.pdf"); got != nil {
		t.Errorf("MetadataFor without training_metadata = %v, want nil", got)
	}
	only := Folder{Path: "/srv/cvs", TrainingMetadata: []TrainingMetadata{{FilterReference: TemplateSubdir}}}
	if got := only.MetadataFor("/srv/cvs/top.pdf"); got != nil {
		t.Errorf("MetadataFor with nothing left = %v, want nil", got)
	}
}
