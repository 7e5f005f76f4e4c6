package config

import (
	"strings"
	"testing"
)

// secretsTOML has every kind of secret, each unresolvable here: unset
// variables and files that do not exist.
const secretsTOML = `state_dir = "var"
[api]
url = "https://api.example.com/v1.0"
api_key = "${RIMINDER_API_KEY}"
[[folder]]
name = "inbox"
path = "cvs"
source_id = "0123456789abcdef0123456789abcdef01234567"
[[mailbox]]
name = "jobs"
address = "imap.example.com:993"
username = "jobs@example.com"
password_file = "/nonexistent/jobs_password"
source_id = "0123456789abcdef0123456789abcdef01234567"
[[mailbox]]
name = "gmail"
address = "imap.gmail.com:993"
username = "hr@example.com"
source_id = "89abcdef0123456789abcdef0123456789abcdef"
[mailbox.oauth2]
token_url = "https://oauth2.googleapis.com/token"
client_id = "id"
client_secret = "${GOOGLE_SECRET}"
refresh_token_file = "${CREDENTIALS_DIRECTORY}/refresh_token"
[webhook]
secret_file = "webhook_secret"
`

// TestSkipSecrets: without secrets, unset variables and unreadable secret
// files are no error and no secret is kept; with them, each is one.
func TestSkipSecrets(t *testing.T) {
	cfg, err := ParseWith([]byte(secretsTOML), "c.toml", nil, LoadOptions{SkipSecrets: true})
	if err != nil {
		t.Fatalf("ParseWith(SkipSecrets) = %v, want no error", err)
	}
	for name, s := range map[string]Secret{
		"api.api_key": cfg.API.Key, "mailbox[0].password": cfg.Mailboxes[0].Password,
		"oauth2.client_secret": cfg.Mailboxes[1].OAuth2.ClientSecret, "oauth2.refresh_token": cfg.Mailboxes[1].OAuth2.RefreshToken,
		"webhook.secret": cfg.Webhook.Secret,
	} {
		if s != "" {
			t.Errorf("%s = %q, want empty without secrets", name, s.Reveal())
		}
	}
	if !strings.HasSuffix(cfg.StateDir, "/var") || len(cfg.Folders) != 1 || cfg.Folders[0].Path == "" {
		t.Errorf("the rest of the config is not read: %+v", cfg)
	}

	_, err = Parse([]byte(secretsTOML), "c.toml", nil)
	want := []string{
		`c.toml:4: api.api_key: environment variable RIMINDER_API_KEY is not set`,
		`c.toml:13: mailbox[0].password_file: open /nonexistent/jobs_password: no such file or directory`,
		`c.toml:23: mailbox[1].oauth2.client_secret: environment variable GOOGLE_SECRET is not set`,
		`c.toml:24: mailbox[1].oauth2.refresh_token_file: environment variable CREDENTIALS_DIRECTORY is not set`,
		`c.toml:26: webhook.secret_file: open `,
	}
	got := strings.Split(errString(err), "\n")
	if len(got) != len(want) {
		t.Fatalf("Parse with secrets = %v, want %d problems", err, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %s, want %s...", i, got[i], want[i])
		}
	}
}

// TestSkipSecretsStillValidates: without secrets, everything but the
// secrets' values is checked as usual, and so is the shape of a secret.
func TestSkipSecretsStillValidates(t *testing.T) {
	for _, tt := range []struct{ name, from, to, want string }{
		{"unset variable in a path", `state_dir = "var"`, `state_dir = "${STATE}"`, `c.toml:1: state_dir: environment variable STATE is not set`},
		{"unknown key", `state_dir = "var"`, "state_dir = \"var\"\nstat_dir = 1", `c.toml:2: stat_dir: unknown key (did you mean state_dir?)`},
		{"bad value", `[[folder]]`, "[[folder]]\nsettle = \"soon\"", `c.toml:6: folder[0].settle: invalid duration "soon"`},
		{"malformed ${", `"${RIMINDER_API_KEY}"`, `"${RIMINDER_API_KEY"`, `c.toml:4: api.api_key: unterminated ${ (write $${ for a literal ${)`},
		{"not a string", `api_key = "${RIMINDER_API_KEY}"`, `api_key = 12`, `c.toml:4: api.api_key: expected a string, got an integer`},
		{"both forms", `api_key = "${RIMINDER_API_KEY}"`, "api_key = \"${RIMINDER_API_KEY}\"\napi_key_file = \"k\"", `c.toml:5: api.api_key_file: cannot be used with api.api_key: set only one`},
		{"no key at all", `api_key = "${RIMINDER_API_KEY}"`, ``, `c.toml: api.api_key: required (or api.api_key_file)`},
		{"empty file name", `password_file = "/nonexistent/jobs_password"`, `password_file = ""`, `c.toml:13: mailbox[0].password_file: must not be empty`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(secretsTOML, tt.from, tt.to, 1)
			_, err := ParseWith([]byte(data), "c.toml", nil, LoadOptions{SkipSecrets: true})
			if got := errString(err); got != tt.want {
				t.Errorf("ParseWith(SkipSecrets) = %s, want %s", got, tt.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
