package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestPositions checks key paths and lines where the TOML decoder alone
// would give the last occurrence: repeated [[folder]] keys, nested arrays
// of tables, inline arrays of tables.
func TestPositions(t *testing.T) {
	src := strings.Join([]string{
		`[[folder]]`,                         // 1
		`settle = "1s"`,                      // 2
		`[[folder.training_metadata]]`,       // 3
		`stage = "NEW"`,                      // 4
		`[[folder]]`,                         // 5
		`# settle = "9s"`,                    // 6
		`settle = "2s"`,                      // 7
		`[[folder.training_metadata]]`,       // 8
		`[[folder.training_metadata]]`,       // 9
		`stage = "YES"`,                      // 10
		`[[folder]]`,                         // 11
		`training_metadata = [`,              // 12
		`  { stage = "NO" },`,                // 13
		`  { stage = "LATER", rating = 2 },`, // 14
		`]`,                                  // 15
		`[api]`,                              // 16
		`"url" = "x"`,                        // 17
	}, "\n")
	var tree map[string]any
	md, err := toml.Decode(src, &tree)
	if err != nil {
		t.Fatal(err)
	}
	pos := newPositions(md.Keys(), tree, src)
	want := map[string]int{
		"folder[0]":                             1,
		"folder[0].settle":                      2,
		"folder[0].training_metadata[0]":        3,
		"folder[0].training_metadata[0].stage":  4,
		"folder[1]":                             5,
		"folder[1].settle":                      7,
		"folder[1].training_metadata[0]":        8,
		"folder[1].training_metadata[1]":        9,
		"folder[1].training_metadata[1].stage":  10,
		"folder[2]":                             11,
		"folder[2].training_metadata":           12,
		"folder[2].training_metadata[0].stage":  13,
		"folder[2].training_metadata[1].stage":  14,
		"folder[2].training_metadata[1].rating": 14,
		"api":                                   16,
		"api.url":                               17,
		// Not in the file: no line of its own.
		"folder[0].path": 0,
		// An array element: the array's line.
		"folder[2].training_metadata[1]": 12,
	}
	for path, line := range want {
		if got := pos.line(path); got != line {
			t.Errorf("line(%q) = %d, want %d", path, got, line)
		}
	}
	if got := pos.order("folder[0].path"); got != 1 {
		t.Errorf("order(folder[0].path) = %d, want 1", got)
	}
}
