package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Secrets of testdata/valid-mail.toml, each distinct so that a leak names
// which one.
const (
	mailPassword     = "imap-pa55-jobs"
	mailPasswordFile = "imap-pa55-from-file"
	mailClientSecret = "cl1ent-s3cret-value"
	mailRefreshToken = "1//r3fresh-t0ken-value"
)

func TestDefaultMailbox(t *testing.T) {
	want := Mailbox{
		Security:          "tls",
		Folders:           []string{"INBOX"},
		AfterUpload:       "none",
		NoCVAction:        "none",
		Accept:            "cv",
		MaxAttachmentSize: 25 << 20,
		PollInterval:      time.Minute,
	}
	if got := defaultMailbox(); !reflect.DeepEqual(got, want) {
		t.Errorf("defaultMailbox() = %+v, want %+v", got, want)
	}
}

// parseValidMail parses testdata/valid-mail.toml with its secrets in a
// temporary directory and the environment.
func parseValidMail(t *testing.T) *Config {
	t.Helper()
	secretDir, credDir := t.TempDir(), t.TempDir()
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(secretDir, "refresh_token", mailRefreshToken+"\n")
	write(credDir, "imap_password", mailPasswordFile+"\r\n")
	env := fakeEnv(map[string]string{
		"RIMINDER_API_KEY":      "api-key",
		"JOBS_USER":             "jobs@example.com",
		"JOBS_IMAP_PASSWORD":    mailPassword,
		"FROM_GLOB":             "*@*.example.org",
		"FILTER":                "backend",
		"GMAIL_CLIENT_SECRET":   mailClientSecret,
		"SECRET_DIR":            secretDir,
		"CREDENTIALS_DIRECTORY": credDir,
	})
	file := filepath.Join("testdata", "valid-mail.toml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data, file, env)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	return cfg
}

func TestParseValidMail(t *testing.T) {
	cfg := parseValidMail(t)
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	want := []Mailbox{{
		Name:              "jobs",
		Address:           "imap.example.com:143",
		Security:          "starttls",
		CAFile:            filepath.Join(td, "certs", "ca.pem"),
		TLSServerName:     "mail.example.com",
		Username:          "jobs@example.com",
		Password:          mailPassword,
		Folders:           []string{"INBOX", "Candidatures/2024"},
		SourceID:          sourceA,
		AfterUpload:       "move",
		MoveTo:            "Archive/Done",
		NoCVAction:        "flag",
		Accept:            "all",
		MaxAttachmentSize: 10 << 20,
		SinceDate:         time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC),
		From:              []string{"*@example.com", "*@*.example.org"},
		Subject:           []string{"*CV*", "*[Rr]ésumé*"},
		PollInterval:      30 * time.Second,
		TrainingMetadata: []TrainingMetadata{
			{FilterReference: "backend", Stage: ptr("YES"), Rating: ptr(3)},
			{FilterReference: "all-mail"},
		},
	}, {
		Name:     "gmail.hr",
		Address:  "imap.gmail.com:993",
		Security: "tls",
		Username: "hr@example.com",
		OAuth2: &OAuth2{
			TokenURL:     "https://oauth2.googleapis.com/token",
			ClientID:     "1234.apps.googleusercontent.com",
			ClientSecret: mailClientSecret,
			RefreshToken: mailRefreshToken,
			Scopes:       []string{"https://mail.google.com/"},
		},
		Folders:           []string{"INBOX"},
		SourceID:          sourceB,
		AfterUpload:       "seen",
		MoveTo:            "[Gmail]/No CV",
		NoCVAction:        "move",
		Accept:            "cv",
		MaxAttachmentSize: 0,
		SinceAge:          720 * time.Hour,
		PollInterval:      5 * time.Minute,
	}, {
		Name:              "local_test",
		Address:           "127.0.0.1:1143",
		Security:          "plain",
		Username:          "test",
		Password:          mailPasswordFile,
		Folders:           []string{"inbox", "INBOX.cv"},
		SourceID:          "fedcba9876543210fedcba9876543210fedcba98",
		AfterUpload:       "delete",
		NoCVAction:        "none",
		Accept:            "all",
		MaxAttachmentSize: 1 << 20,
		SinceDate:         time.Date(2024, 3, 1, 8, 30, 0, 0, time.UTC),
		PollInterval:      time.Minute,
	}}
	if len(cfg.Folders) != 0 {
		t.Errorf("Folders = %+v, want none", cfg.Folders)
	}
	if len(cfg.Mailboxes) != len(want) {
		t.Fatalf("%d mailboxes, want %d: %+v", len(cfg.Mailboxes), len(want), cfg.Mailboxes)
	}
	for i, w := range want {
		checkMailbox(t, fmt.Sprintf("Mailboxes[%d]", i), cfg.Mailboxes[i], w)
	}
}

// checkMailbox compares two mailboxes field by field, secrets by value.
func checkMailbox(t *testing.T, name string, got, want Mailbox) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		field := g.Type().Field(i).Name
		gv, wv := g.Field(i).Interface(), w.Field(i).Interface()
		switch field {
		case "Password":
			gv, wv = got.Password.Reveal(), want.Password.Reveal()
		case "OAuth2":
			gv, wv = revealOAuth2(got.OAuth2), revealOAuth2(want.OAuth2)
		case "TrainingMetadata":
			gv, wv = fmtTMs(got.TrainingMetadata), fmtTMs(want.TrainingMetadata)
		}
		if !reflect.DeepEqual(gv, wv) {
			t.Errorf("%s.%s = %#v, want %#v", name, field, gv, wv)
		}
	}
}

// revealOAuth2 prints an OAuth2 with its secrets.
func revealOAuth2(o *OAuth2) string {
	if o == nil {
		return "nil"
	}
	return fmt.Sprintf("{TokenURL:%s ClientID:%s ClientSecret:%s RefreshToken:%s Scopes:%q}",
		o.TokenURL, o.ClientID, o.ClientSecret.Reveal(), o.RefreshToken.Reveal(), o.Scopes)
}

func fmtTMs(tms []TrainingMetadata) []string {
	var out []string
	for _, tm := range tms {
		out = append(out, fmtTM(tm))
	}
	return out
}

// mailMinimal is a config with one folder (inbox) and one mailbox; %s is
// the body of the [[mailbox]] after its name, address and source_id.
const mailMinimal = `
[api]
url = "sandbox"

[[folder]]
name = "inbox"
path = "cvs"
source_id = "` + sourceA + `"

[[mailbox]]
name = "jobs"
address = "imap.example.com:993"
source_id = "` + sourceB + `"
%s
`

func TestParseMailCases(t *testing.T) {
	dir := t.TempDir() // the config file's directory
	credDir := t.TempDir()
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(dir, "password", "pw-beside-config\n")
	write(dir, "client_secret", "cs-beside-config\n")
	write(credDir, "client_secret", "cs-from-systemd\n")

	tests := []struct {
		name string
		body string // of the [[mailbox]]
		env  map[string]string
		want func(*Mailbox) []check
	}{{
		name: "defaults",
		body: "username = \"u\"\npassword = \"p\"",
		want: func(m *Mailbox) []check {
			d := defaultMailbox()
			d.Name, d.Address, d.SourceID, d.Username, d.Password = "jobs", "imap.example.com:993", sourceB, "u", "p"
			return []check{{"Mailbox", *m, d}, {"Password", m.Password.Reveal(), "p"}}
		},
	}, {
		name: "password_file beside the config, CREDENTIALS_DIRECTORY without it",
		body: "username = \"u\"\npassword_file = \"password\"",
		env:  map[string]string{"CREDENTIALS_DIRECTORY": credDir},
		want: func(m *Mailbox) []check { return []check{{"Password", m.Password.Reveal(), "pw-beside-config"}} },
	}, {
		name: "oauth2 with client_secret_file from CREDENTIALS_DIRECTORY and an inline refresh_token",
		body: "username = \"u\"\n[mailbox.oauth2]\ntoken_url = \"https://login.microsoftonline.com/common/oauth2/v2.0/token\"\n" +
			"client_id = \"id\"\nclient_secret_file = \"client_secret\"\nrefresh_token = \"${RT}\"",
		env: map[string]string{"CREDENTIALS_DIRECTORY": credDir, "RT": "rt-from-env"},
		want: func(m *Mailbox) []check {
			return []check{
				{"Password", m.Password, Secret("")},
				{"OAuth2", revealOAuth2(m.OAuth2), "{TokenURL:https://login.microsoftonline.com/common/oauth2/v2.0/token ClientID:id ClientSecret:cs-from-systemd RefreshToken:rt-from-env Scopes:[]}"},
			}
		},
	}, {
		name: "oauth2 inline table, no client secret, http token_url on loopback",
		body: "username = \"u\"\noauth2 = { token_url = \"http://[::1]:8080/token\", client_id = \"id\", refresh_token = \"rt\", scopes = [] }",
		want: func(m *Mailbox) []check {
			return []check{
				{"OAuth2", revealOAuth2(m.OAuth2), `{TokenURL:http://[::1]:8080/token ClientID:id ClientSecret: RefreshToken:rt Scopes:[]}`},
				{"Scopes", m.OAuth2.Scopes, []string{}},
			}
		},
	}, {
		name: "plain on localhost",
		body: "username = \"u\"\npassword = \"p\"\nsecurity = \"plain\"",
		want: func(m *Mailbox) []check { return []check{{"Security", m.Security, "plain"}} },
	}, {
		name: "TOML dates for since",
		body: "username = \"u\"\npassword = \"p\"\nsince = 2024-02-29",
		want: func(m *Mailbox) []check {
			return []check{{"SinceDate", m.SinceDate, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)}, {"SinceAge", m.SinceAge, time.Duration(0)}}
		},
	}, {
		name: "TOML date-time with an offset for since",
		body: "username = \"u\"\npassword = \"p\"\nsince = 2024-02-29T23:00:00-02:00",
		want: func(m *Mailbox) []check {
			return []check{{"SinceDate", m.SinceDate, time.Date(2024, 3, 1, 1, 0, 0, 0, time.UTC)}}
		},
	}, {
		name: "RFC 3339 with fractional seconds, accept as a string",
		body: "username = \"u\"\npassword = \"p\"\nsince = \"2024-01-15T08:00:00.5Z\"\naccept = \"cv\"",
		want: func(m *Mailbox) []check {
			return []check{
				{"SinceDate", m.SinceDate, time.Date(2024, 1, 15, 8, 0, 0, 5e8, time.UTC)},
				{"Accept", m.Accept, "cv"},
			}
		},
	}, {
		name: "move_to set while nothing moves",
		body: "username = \"u\"\npassword = \"p\"\nmove_to = \"Done\"",
		want: func(m *Mailbox) []check { return []check{{"MoveTo", m.MoveTo, "Done"}} },
	}, {
		name: "the same account and folder under another source",
		body: "username = \"u\"\npassword = \"p\"\n[[mailbox]]\nname = \"jobs2\"\naddress = \"IMAP.example.com:993\"\n" +
			"username = \"u\"\npassword = \"p\"\nsource_id = \"" + sourceA + "\"",
		want: func(m *Mailbox) []check { return []check{{"Name", m.Name, "jobs"}} },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(mailMinimal, "%s", tt.body, 1)
			if strings.Contains(tt.body, `"plain"`) {
				data = strings.Replace(data, "imap.example.com:993", "localhost:1143", 1)
			}
			file := filepath.Join(dir, "cvfeed.toml")
			cfg, err := Parse([]byte(data), file, fakeEnv(tt.env))
			if err != nil {
				t.Fatalf("Parse(%q): %v", data, err)
			}
			if len(cfg.Folders) != 1 || len(cfg.Mailboxes) == 0 {
				t.Fatalf("Parse(%q): %d folders, %d mailboxes", data, len(cfg.Folders), len(cfg.Mailboxes))
			}
			for _, c := range tt.want(&cfg.Mailboxes[0]) {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("Parse(%q): %s = %#v, want %#v", data, c.name, c.got, c.want)
				}
			}
		})
	}
}

// TestMailSecretsNeverPrinted checks that no mailbox secret shows in fmt,
// slog or JSON output of the config.
func TestMailSecretsNeverPrinted(t *testing.T) {
	cfg := parseValidMail(t)
	o := cfg.Mailboxes[1].OAuth2
	if o == nil || o.RefreshToken.Reveal() != mailRefreshToken || cfg.Mailboxes[2].Password.Reveal() != mailPasswordFile {
		t.Fatalf("valid-mail.toml did not give the expected secrets")
	}
	outputs := map[string]func() (string, error){
		"%v *config":        func() (string, error) { return fmt.Sprintf("%v", cfg), nil },
		"json config":       func() (string, error) { b, err := json.Marshal(cfg); return string(b), err },
		"json oauth2":       func() (string, error) { b, err := json.Marshal(o); return string(b), err },
		"slog text config":  func() (string, error) { return logged(slog.NewTextHandler, slog.Any("config", cfg)), nil },
		"slog json config":  func() (string, error) { return logged(slog.NewJSONHandler, slog.Any("config", cfg)), nil },
		"slog text mailbox": func() (string, error) { return logged(slog.NewTextHandler, slog.Any("m", cfg.Mailboxes[0])), nil },
		"slog text oauth2":  func() (string, error) { return logged(slog.NewTextHandler, slog.Any("o", o)), nil },
	}
	// Every verb over the config, the mailboxes, the OAuth2 table and its
	// pointer; a variable format keeps vet quiet.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%X", "%t", "%10.4s"} {
		outputs[verb+" config"] = func() (string, error) { return fmt.Sprintf(verb, *cfg), nil }
		outputs[verb+" mailboxes"] = func() (string, error) { return fmt.Sprintf(verb, cfg.Mailboxes), nil }
		outputs[verb+" oauth2"] = func() (string, error) { return fmt.Sprintf(verb, *o), nil }
		outputs[verb+" *oauth2"] = func() (string, error) { return fmt.Sprintf(verb, o), nil }
	}
	for name, f := range outputs {
		t.Run(name, func(t *testing.T) {
			out, err := f()
			if err != nil {
				t.Fatal(err)
			}
			if s := leakedSecret(out); s != "" {
				t.Errorf("%s = %s: holds the secret %q", name, out, s)
			}
			if !strings.Contains(out, redacted) && !strings.Contains(out, fmt.Sprintf("%x", redacted)) &&
				!strings.Contains(out, fmt.Sprintf("%X", redacted)) {
				t.Errorf("%s = %s: no %s placeholder", name, out, redacted)
			}
		})
	}
}

// leakedSecret returns the mailbox secret that out holds, as is or in
// hexadecimal, or "".
func leakedSecret(out string) string {
	for _, s := range []string{mailPassword, mailPasswordFile, mailClientSecret, mailRefreshToken} {
		if strings.Contains(out, s) || strings.Contains(out, fmt.Sprintf("%x", s)) {
			return s
		}
	}
	return ""
}

// TestMailSecretsNotInErrors checks that a bad mailbox secret, or a
// problem next to one, is reported without its value.
func TestMailSecretsNotInErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(mailRefreshToken+"\x01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := fakeEnv(map[string]string{"P": mailPassword, "CS": mailClientSecret + "\n", "DIR": dir})
	oauth := "[mailbox.oauth2]\ntoken_url = \"https://auth.example.com/token\"\nclient_id = \"id\"\n"
	tests := []struct {
		name, body, want string
	}{
		{"control character", `password = "${P}` + "\\u0007" + `"`, "c.toml:15: mailbox[0].password: the password contains a control character"},
		{"unterminated ${", `password = "` + mailPassword + `${"`, "c.toml:15: mailbox[0].password: unterminated ${"},
		{"bad ${name}", `password = "${` + mailPassword + `}"`, "c.toml:15: mailbox[0].password: invalid ${...}"},
		{"not a string", `password = ["` + mailPassword + `"]`, "c.toml:15: mailbox[0].password: expected a string, got an array"},
		{"password and password_file", `password = "` + mailPassword + "\"\npassword_file = \"p\"", "c.toml:16: mailbox[0].password_file: cannot be used with mailbox[0].password: set only one"},
		{"password and oauth2", `password = "${P}"` + "\n" + oauth + `refresh_token = "` + mailRefreshToken + `"`, "c.toml:16: mailbox[0].oauth2: cannot be used with mailbox[0].password: set only one"},
		{"plain elsewhere than loopback", "security = \"plain\"\npassword = \"${P}\"", `c.toml:15: mailbox[0].security: "plain" (no TLS) is allowed`},
		{"client_secret with a newline", oauth + "client_secret = \"${CS}\"\nrefresh_token = \"x\"", "c.toml:18: mailbox[0].oauth2.client_secret: the client secret contains a control character"},
		{"client_secret not a string", oauth + "client_secret = { s = \"" + mailClientSecret + "\" }\nrefresh_token = \"x\"", "c.toml:18: mailbox[0].oauth2.client_secret: expected a string, got a table"},
		{"refresh_token_file with a control character", oauth + "refresh_token_file = \"${DIR}/token\"", "c.toml:18: mailbox[0].oauth2.refresh_token_file: the refresh token contains a control character"},
		{"refresh_token and its file", oauth + "refresh_token = \"" + mailRefreshToken + "\"\nrefresh_token_file = \"${DIR}/token\"", "c.toml:19: mailbox[0].oauth2.refresh_token_file: cannot be used with mailbox[0].oauth2.refresh_token: set only one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(mailMinimal, "%s", "username = \"u\"\n"+tt.body, 1)
			_, err := Parse([]byte(data), "c.toml", env)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one", data)
			}
			if s := leakedSecret(err.Error()); s != "" {
				t.Errorf("Parse(%q) = %v: holds the secret %q", data, err, s)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want %s...", data, err, tt.want)
			}
		})
	}
	// The errors of every invalid-mailbox-*.toml, several of which hold
	// these secrets.
	files, err := filepath.Glob(filepath.Join("testdata", "invalid-mailbox-*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/invalid-mailbox-*.toml")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data, file, nil); err == nil {
			t.Errorf("Parse(%s) = nil error", file)
		} else if s := leakedSecret(err.Error()); s != "" {
			t.Errorf("Parse(%s) = %v: holds the secret %q", file, err, s)
		}
	}
}

// TestMailboxNames checks that a config with mailboxes and no folder is
// valid, and that folder and mailbox names share one namespace in file
// order.
func TestMailboxNames(t *testing.T) {
	mailbox := "[[mailbox]]\nname = \"%s\"\naddress = \"imap.example.com:993\"\nusername = \"u\"\npassword = \"p\"\nsource_id = \"" + sourceB + "\"\n"
	folder := "[[folder]]\nname = \"%s\"\npath = \"cvs\"\nsource_id = \"" + sourceA + "\"\n"
	api := "[api]\nurl = \"sandbox\"\n"
	tests := []struct {
		name, data, want string
	}{
		{"mailbox only", api + fmt.Sprintf(mailbox, "a"), ""},
		{"mailbox before folder", api + fmt.Sprintf(mailbox, "a") + fmt.Sprintf(folder, "a"),
			`c.toml:10: folder[0].name: "a" is already the name of mailbox[0]`},
		{"two mailboxes", api + fmt.Sprintf(mailbox, "a") + fmt.Sprintf(mailbox, "a"),
			`c.toml: mailbox[1].folders: "INBOX" is also read by mailbox[0] with the same address, username and source_id: each CV would be read twice` + "\n" +
				`c.toml:10: mailbox[1].name: "a" is already the name of mailbox[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), "c.toml", nil)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Parse(%q) error:\n%s\nwant:\n%s", tt.data, got, tt.want)
			}
			if err == nil && (len(cfg.Mailboxes) != 1 || len(cfg.Folders) != 0) {
				t.Errorf("Parse(%q) = %d mailboxes, %d folders", tt.data, len(cfg.Mailboxes), len(cfg.Folders))
			}
		})
	}
}
