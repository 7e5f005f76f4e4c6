package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

const secretValue = "s3cr3t-k3y-value"

func TestSecretNeverPrinted(t *testing.T) {
	data := strings.Replace(minimal, "%s", "url = \"https://api.example.com\"\napi_key = \"${K}\"", 1)
	cfg, err := Parse([]byte(data), "c.toml", fakeEnv(map[string]string{"K": secretValue}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.API.Key.Reveal(); got != secretValue {
		t.Fatalf("Reveal() = %q, want %q", got, secretValue)
	}
	key := cfg.API.Key
	outputs := map[string]func() (string, error){
		"Sprint(key)":   func() (string, error) { return fmt.Sprint(key), nil },
		"%v key":        func() (string, error) { return fmt.Sprintf("%v", key), nil },
		"%q key":        func() (string, error) { return fmt.Sprintf("%q", key), nil },
		"%x key":        func() (string, error) { return fmt.Sprintf("%x", key), nil },
		"%d key":        func() (string, error) { return fmt.Sprintf("%d", key), nil },
		"%t key":        func() (string, error) { return fmt.Sprintf("%t", key), nil },
		"%v config":     func() (string, error) { return fmt.Sprintf("%v", cfg), nil },
		"%+v config":    func() (string, error) { return fmt.Sprintf("%+v", *cfg), nil },
		"%#v config":    func() (string, error) { return fmt.Sprintf("%#v", *cfg), nil },
		"json config":   func() (string, error) { b, err := json.Marshal(cfg); return string(b), err },
		"json key":      func() (string, error) { b, err := json.Marshal(key); return string(b), err },
		"slog text key": func() (string, error) { return logged(slog.NewTextHandler, slog.Any("key", key)), nil },
		"slog json key": func() (string, error) { return logged(slog.NewJSONHandler, slog.Any("key", key)), nil },
		"slog text config": func() (string, error) {
			return logged(slog.NewTextHandler, slog.Any("config", cfg)), nil
		},
		"slog json config": func() (string, error) {
			return logged(slog.NewJSONHandler, slog.Any("config", cfg)), nil
		},
		"slog text api": func() (string, error) { return logged(slog.NewTextHandler, slog.Any("api", cfg.API)), nil },
	}
	// Verbs a Stringer does not serve; a variable format keeps vet quiet.
	for _, verb := range []string{"%d", "%x", "%t", "%10.4s"} {
		outputs[verb+" config"] = func() (string, error) { return fmt.Sprintf(verb, *cfg), nil }
	}
	for name, f := range outputs {
		t.Run(name, func(t *testing.T) {
			out, err := f()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, secretValue) || strings.Contains(out, fmt.Sprintf("%x", secretValue)) {
				t.Errorf("%s = %s: holds the secret", name, out)
			}
			if !strings.Contains(out, redacted) && !strings.Contains(out, fmt.Sprintf("%x", redacted)) {
				t.Errorf("%s = %s: no %s placeholder", name, out, redacted)
			}
		})
	}
}

// logged returns what a handler writes for one record with attr.
func logged[H slog.Handler](newHandler func(w io.Writer, opts *slog.HandlerOptions) H, attr slog.Attr) string {
	var buf bytes.Buffer
	slog.New(newHandler(&buf, nil)).Info("config", attr)
	return buf.String()
}

// TestSecretNotInErrors checks that a bad key is reported without its
// value.
func TestSecretNotInErrors(t *testing.T) {
	tests := []struct {
		name, api string
	}{
		{"control character", `api_key = "${K}` + "\\u0001" + `"`},
		{"unterminated ${", `api_key = "` + secretValue + `${"`},
		{"bad ${name}", `api_key = "${` + secretValue + `}"`},
		{"not a string", `api_key = ["` + secretValue + `"]`},
		{"with api_key_file", `api_key = "` + secretValue + `"` + "\napi_key_file = \"k\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(minimal, "%s", "url = \"https://api.example.com\"\n"+tt.api, 1)
			_, err := Parse([]byte(data), "c.toml", fakeEnv(map[string]string{"K": secretValue}))
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one", data)
			}
			if strings.Contains(err.Error(), secretValue) || !strings.HasPrefix(err.Error(), "c.toml:4: api.api_key") && !strings.HasPrefix(err.Error(), "c.toml:5: api.api_key") {
				t.Errorf("Parse(%q) = %v, want an api.api_key error without the key", data, err)
			}
		})
	}
}
