package config

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := fakeEnv(map[string]string{"A": "alpha", "B_2": "", "_x": "x", "NESTED": "${A}"})
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "<${A}|${B_2}|${_x}>", want: "<alpha||x>"},
		{in: "$A $ $$ a$", want: "$A $ $$ a$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$${A}", want: "$${A}"},
		{in: "${NESTED}", want: "${A}"},
		{in: "{A}}", want: "{A}}"},
		{in: "${MISSING}", err: "environment variable MISSING is not set"},
		{in: "${A", err: "unterminated ${ (write $${ for a literal ${)"},
		{in: "${}", err: "invalid ${...}"},
		{in: "${9A}", err: "invalid ${...}"},
		{in: "${A-B}", err: "invalid ${...}"},
		{in: "${A:-x}", err: "invalid ${...}"},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, env)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)):
			t.Errorf("expand(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{"512B", 512, true},
		{"50MiB", 50 << 20, true},
		{"10 MB", 10_000_000, true},
		{"1.5GiB", 3 << 29, true},
		{"512KiB", 512 << 10, true},
		{"2kb", 2000, true},
		{"1.1mb", 1_100_000, true},
		{" 3 gib ", 3 << 30, true},
		{"1GB", 1_000_000_000, true},
		{"", 0, false},
		{"MB", 0, false},
		{"-1MB", 0, false},
		{"1.MB", 0, false},
		{".5MB", 0, false},
		{"1.2.3MB", 0, false},
		{"1e3MB", 0, false},
		{"50 MX", 0, false},
		{"5 TB", 0, false},
		{"10000000000GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestKeyAt(t *testing.T) {
	tests := []struct {
		line, name string
		want       bool
	}{
		{`settle = "2s"`, "settle", true},
		{`  settle="2s"`, "settle", true},
		{`"settle" = "2s"`, "settle", true},
		{`'settle' = "2s"`, "settle", true},
		{`folder.settle = "2s"`, "settle", true},
		{`x = { a = 1, settle = "2s" }`, "settle", true},
		{`[[folder]]`, "folder", true},
		{`[ folder . training_metadata ]`, "training_metadata", true},
		{`# settle = "2s"`, "settle", false},
		{`resettle = 1`, "settle", false},
		{`settle2 = 1`, "settle", false},
		{`name = "settle"`, "settle", false},
		{`settle`, "settle", false},
	}
	for _, tt := range tests {
		if got := keyAt(tt.line, tt.name) >= 0; got != tt.want {
			t.Errorf("keyAt(%q, %q) = %v, want %v", tt.line, tt.name, got, tt.want)
		}
	}
}
