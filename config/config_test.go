package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// sourceA and sourceB are valid source ids.
const (
	sourceA = "0123456789abcdef0123456789abcdef01234567"
	sourceB = "89abcdef0123456789abcdef0123456789abcdef"
)

func ptr[T any](v T) *T { return &v }

func TestDefault(t *testing.T) {
	d := Default()
	want := Config{
		StateDir:        "var",
		ShutdownTimeout: 30 * time.Second,
		API:             API{Flavor: "riminder", Workers: 4, MaxAttempts: 10, Timeout: 2 * time.Minute, RetryInitial: time.Second, RetryMax: 5 * time.Minute},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Default() = %+v, want %+v", d, want)
	}
	f := defaultFolder()
	wantF := Folder{Recursive: true, Settle: 2 * time.Second, Watch: "auto", RescanInterval: 5 * time.Minute, ForgetMissing: 72 * time.Hour, AfterUpload: "keep", Include: DefaultInclude(), MaxSize: 100 << 20, FollowSymlinks: "inside"}
	if !reflect.DeepEqual(f, wantF) {
		t.Errorf("defaultFolder() = %+v, want %+v", f, wantF)
	}
}

func TestParseValidFull(t *testing.T) {
	keyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(keyDir, "api_key"), []byte("s3cr3t-key\n \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := fakeEnv(map[string]string{
		"KEY_DIR":        keyDir,
		"EXTRA_GLOB":     "*.docx",
		"FILTER":         "backend",
		"ARCHIVE_SOURCE": sourceB,
		"WEBHOOK_SECRET": "wh-s3cret",
	})
	file := filepath.Join("testdata", "valid-full.toml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data, file, env)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:            filepath.Join(td, "valid-full.toml"),
		StateDir:        filepath.Join(td, "state"),
		ShutdownTimeout: 10 * time.Second,
		API: API{
			URL:          "https://www.riminder.net/sf/public/api/v1.0",
			Flavor:       "riminder",
			Key:          "s3cr3t-key",
			Workers:      8,
			RateLimit:    2.5,
			MaxAttempts:  5,
			Timeout:      30 * time.Second,
			RetryInitial: 250 * time.Millisecond,
			RetryMax:     time.Minute,
		},
		Folders: []Folder{{
			Name:           "inbox",
			Path:           filepath.Join(td, "cvs"),
			SourceID:       "0123456789abcdef0123456789ABCDEF01234567",
			Recursive:      false,
			PollInterval:   10 * time.Second,
			Settle:         500 * time.Millisecond,
			Watch:          "poll",
			RescanInterval: time.Hour,
			AfterUpload:    "move",
			DoneDir:        filepath.Join(td, "done"),
			FailedDir:      "/srv/cvfeed/failed",
			Include:        []string{"*.pdf", "*.docx", "scans/*.png", "price-${X}.pdf"},
			Exclude:        []string{"~$*", "tmp/*"},
			MaxSize:        50 << 20,
			FollowSymlinks: "never",
			TrainingMetadata: []TrainingMetadata{{
				FilterReference: "backend",
				Stage:           ptr("NEW"),
				StageTimestamp:  ptr[int64](1700000000),
				Rating:          ptr(4),
				RatingTimestamp: ptr[int64](1700000100),
			}, {
				FilterReference: "data-scientist",
			}},
		}, {
			Name:           "archive.2024",
			Path:           "/srv/archive",
			SourceID:       sourceB,
			Recursive:      true,
			Settle:         2 * time.Second,
			Watch:          "events",
			RescanInterval: 5 * time.Minute,
			ForgetMissing:  72 * time.Hour,
			AfterUpload:    "delete",
			Include:        DefaultInclude(),
			MaxSize:        1 << 20,
			FollowSymlinks: "inside",
		}, {
			Name:           "scans_2",
			Path:           filepath.Join(td, "cvs", "scans"),
			SourceID:       "fedcba9876543210fedcba9876543210fedcba98",
			Recursive:      true,
			Settle:         0,
			Watch:          "auto",
			RescanInterval: 5 * time.Minute,
			ForgetMissing:  72 * time.Hour,
			AfterUpload:    "keep",
			Include:        DefaultInclude(),
			Exclude:        []string{},
			MaxSize:        0,
			FollowSymlinks: "inside",
			TrainingMetadata: []TrainingMetadata{
				{FilterReference: "ops-{subdir}", Stage: ptr("LATER"), Rating: ptr(1)},
				{FilterReference: "dev", Stage: ptr("NO")},
			},
		}},
		HTTP:  HTTP{Listen: "127.0.0.1:9137"},
		State: State{KeepUploaded: 90 * 24 * time.Hour},
	}
	checks := []check{
		{"File", cfg.File, want.File},
		{"StateDir", cfg.StateDir, want.StateDir},
		{"ShutdownTimeout", cfg.ShutdownTimeout, want.ShutdownTimeout},
		{"API", cfg.API, want.API},
		// Secret hides itself from %v: compare the value too.
		{"API.Key", cfg.API.Key.Reveal(), want.API.Key.Reveal()},
		{"len(Folders)", len(cfg.Folders), len(want.Folders)},
		{"HTTP", cfg.HTTP, want.HTTP},
		{"Webhook.Secret", cfg.Webhook.Secret.Reveal(), "wh-s3cret"},
	}
	for i := range min(len(cfg.Folders), len(want.Folders)) {
		g, w := cfg.Folders[i], want.Folders[i]
		checks = append(checks, check{fmt.Sprintf("Folders[%d]", i), g, w})
		for j := range min(len(g.TrainingMetadata), len(w.TrainingMetadata)) {
			name := fmt.Sprintf("Folders[%d].TrainingMetadata[%d]", i, j)
			checks = append(checks, check{name, fmtTM(g.TrainingMetadata[j]), fmtTM(w.TrainingMetadata[j])})
		}
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

// check is one value compared by a test.
type check struct {
	name      string
	got, want any
}

// fmtTM prints a TrainingMetadata with the values behind its pointers.
func fmtTM(tm TrainingMetadata) string {
	show := func(p any) string {
		v := reflect.ValueOf(p)
		if v.IsNil() {
			return "nil"
		}
		return fmt.Sprint(v.Elem().Interface())
	}
	return fmt.Sprintf("{filter_reference=%s stage=%s stage_timestamp=%s rating=%s rating_timestamp=%s}",
		tm.FilterReference, show(tm.Stage), show(tm.StageTimestamp), show(tm.Rating), show(tm.RatingTimestamp))
}
