package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// minimal is a config with one folder; %s is the [api] table's body.
const minimal = `
[api]
%s

[[folder]]
name = "inbox"
path = "cvs"
source_id = "` + sourceA + `"
`

func TestParseCases(t *testing.T) {
	dir := t.TempDir() // the config file's directory
	credDir := t.TempDir()
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(dir, "api_key", "key-beside-config\r\n")
	write(dir, "other_key", "other-key-beside-config")
	write(credDir, "api_key", "key-from-systemd\n")

	tests := []struct {
		name string
		api  string // body of [api]
		tail string // appended to the file
		env  map[string]string
		want func(*Config) []check
	}{{
		name: "api_key from the environment",
		api:  `url = "https://api.example.com/v1.0"` + "\n" + `api_key = "${RIMINDER_API_KEY}"`,
		env:  map[string]string{"RIMINDER_API_KEY": "k-123"},
		want: func(c *Config) []check { return []check{{"Key", c.API.Key.Reveal(), "k-123"}} },
	}, {
		name: "dollar forms other than ${NAME} are kept",
		api:  `url = "sandbox"` + "\n" + `api_key = "a$b$$c$${D}$ ${E}$"`,
		env:  map[string]string{"E": "e", "b": "no"},
		want: func(c *Config) []check { return []check{{"Key", c.API.Key.Reveal(), "a$b$$c${D}$ e$"}} },
	}, {
		name: "sandbox without a key",
		api:  `url = "sandbox"`,
		want: func(c *Config) []check {
			return []check{{"Key", c.API.Key.Reveal(), "sandbox"}, {"Sandbox", c.API.Sandbox(), true}}
		},
	}, {
		name: "sandbox with a key",
		api:  `url = "sandbox"` + "\n" + `api_key = "mine"`,
		want: func(c *Config) []check { return []check{{"Key", c.API.Key.Reveal(), "mine"}} },
	}, {
		name: "api_key_file relative to the config, trailing space trimmed",
		api:  `url = "http://127.0.0.1:8080/"` + "\n" + `api_key_file = "api_key"`,
		want: func(c *Config) []check {
			return []check{{"Key", c.API.Key.Reveal(), "key-beside-config"}, {"URL", c.API.URL, "http://127.0.0.1:8080"}}
		},
	}, {
		name: "api_key_file from CREDENTIALS_DIRECTORY first",
		api:  `url = "sandbox"` + "\n" + `api_key_file = "api_key"`,
		env:  map[string]string{"CREDENTIALS_DIRECTORY": credDir},
		want: func(c *Config) []check { return []check{{"Key", c.API.Key.Reveal(), "key-from-systemd"}} },
	}, {
		name: "api_key_file not in CREDENTIALS_DIRECTORY falls back",
		api:  `url = "sandbox"` + "\n" + `api_key_file = "other_key"`,
		env:  map[string]string{"CREDENTIALS_DIRECTORY": credDir},
		want: func(c *Config) []check { return []check{{"Key", c.API.Key.Reveal(), "other-key-beside-config"}} },
	}, {
		name: "api_key_file with a slash ignores CREDENTIALS_DIRECTORY",
		api:  `url = "sandbox"` + "\n" + `api_key_file = "./api_key"`,
		env:  map[string]string{"CREDENTIALS_DIRECTORY": credDir},
		want: func(c *Config) []check { return []check{{"Key", c.API.Key.Reveal(), "key-beside-config"}} },
	}, {
		name: "trailing slashes stripped",
		api:  `url = "https://www.riminder.net/sf/public/api/v1.0//"` + "\n" + `api_key = "k"`,
		want: func(c *Config) []check {
			return []check{{"URL", c.API.URL, "https://www.riminder.net/sf/public/api/v1.0"}}
		},
	}, {
		name: "integer rate_limit",
		api:  `url = "sandbox"` + "\n" + `rate_limit = 3`,
		want: func(c *Config) []check { return []check{{"RateLimit", c.API.RateLimit, 3.0}} },
	}, {
		name: "defaults",
		api:  `url = "sandbox"`,
		want: func(c *Config) []check {
			f := defaultFolder()
			f.Name, f.Path, f.SourceID = "inbox", filepath.Join(dir, "cvs"), sourceA
			d := Default().API
			d.URL, d.Key = "sandbox", "sandbox"
			return []check{
				{"StateDir", c.StateDir, filepath.Join(dir, "var")},
				{"API", c.API, d},
				{"Folders", c.Folders, []Folder{f}},
				{"HTTP", c.HTTP, HTTP{}},
			}
		},
	}, {
		name: "~ is not expanded",
		api:  `url = "sandbox"`,
		tail: `done_dir = "~/done"`,
		want: func(c *Config) []check {
			return []check{{"DoneDir", c.Folders[0].DoneDir, filepath.Join(dir, "~", "done")}}
		},
	}, {
		name: "http listen without a host",
		api:  `url = "sandbox"`,
		tail: "[http]\nlisten = \":9137\"",
		want: func(c *Config) []check { return []check{{"Listen", c.HTTP.Listen, ":9137"}} },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(minimal, "%s", tt.api, 1) + tt.tail + "\n"
			file := filepath.Join(dir, "cvfeed.toml")
			cfg, err := Parse([]byte(data), file, fakeEnv(tt.env))
			if err != nil {
				t.Fatalf("Parse(%q): %v", data, err)
			}
			if cfg.File != file {
				t.Errorf("File = %q, want %q", cfg.File, file)
			}
			for _, c := range tt.want(cfg) {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("Parse(%q): %s = %#v, want %#v", data, c.name, c.got, c.want)
				}
			}
		})
	}
}
