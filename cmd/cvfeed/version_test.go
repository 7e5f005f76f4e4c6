package main

import (
	"bytes"
	"runtime/debug"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	info := func(v string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Path: "github.com/cvfeed/cvfeed", Version: v}}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name, stamped string
		info          func() (*debug.BuildInfo, bool)
		want          string
	}{
		{"stamped wins", "1.2.3+git4.abcdef0", info("v1.2.4"), "1.2.3+git4.abcdef0"},
		{"go install @version", "dev", info("v1.2.4"), "v1.2.4"},
		{"built in the tree", "dev", info("(devel)"), "dev"},
		{"no build info", "dev", none, "dev"},
	} {
		if got := buildVersion(tc.stamped, tc.info); got != tc.want {
			t.Errorf("%s: buildVersion(%q) = %q, want %q", tc.name, tc.stamped, got, tc.want)
		}
	}
}

func TestVersionCommandPrintsVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != exitOK {
		t.Fatalf("cvfeed version: exit %d, stderr %q", code, errb.String())
	}
	if got, want := out.String(), "cvfeed "+version+"\n"; got != want {
		t.Errorf("cvfeed version printed %q, want %q", got, want)
	}
}
