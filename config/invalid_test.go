package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// invalid pairs each testdata/invalid-*.toml with the exact error Parse
// returns for it. TESTDATA stands for the absolute path of testdata.
var invalid = map[string]string{
	"invalid-after-upload.toml":   `testdata/invalid-after-upload.toml:8: folder[0].after_upload: "archive" is not one of keep, move, delete`,
	"invalid-api-not-table.toml":  `testdata/invalid-api-not-table.toml:1: api: expected a table ([api]), got a string`,
	"invalid-both-keys.toml":      `testdata/invalid-both-keys.toml:4: api.api_key_file: cannot be used with api.api_key: set only one`,
	"invalid-done-dir-same.toml":  `testdata/invalid-done-dir-same.toml:9: folder[0].done_dir: is the same directory as path`,
	"invalid-duplicate-name.toml": `testdata/invalid-duplicate-name.toml:10: folder[1].name: "inbox" is already the name of folder[0]`,
	"invalid-duration-int.toml":   `testdata/invalid-duration-int.toml:8: folder[0].settle: 2 is not a duration: write a string like "2s"`,
	"invalid-duration.toml":       `testdata/invalid-duration.toml:14: folder[1].settle: invalid duration "2x"`,
	"invalid-empty-include.toml":  `testdata/invalid-empty-include.toml:8: folder[0].include: empty list matches no file`,
	"invalid-env-syntax.toml": lines(
		`testdata/invalid-env-syntax.toml:3: api.api_key: unterminated ${ (write $${ for a literal ${)`,
		`testdata/invalid-env-syntax.toml:7: folder[0].path: unterminated ${ (write $${ for a literal ${)`,
		`testdata/invalid-env-syntax.toml:8: folder[0].source_id: invalid ${...}: a variable name is letters, digits and _, not starting with a digit (write $${ for a literal ${)`,
	),
	"invalid-follow-symlinks.toml":   `testdata/invalid-follow-symlinks.toml:8: folder[0].follow_symlinks: "outside" is not one of inside, never, all`,
	"invalid-folder-not-array.toml":  `testdata/invalid-folder-not-array.toml:4: folder: expected an array of tables: write [[folder]], not [folder]`,
	"invalid-hrflow.toml":            `testdata/invalid-hrflow.toml:4: api.user_email: "hr at example.com" is not an e-mail address`,
	"invalid-hrflow-no-email.toml":   `testdata/invalid-hrflow-no-email.toml: api.user_email: required with flavor = "hrflow" (sent as X-USER-EMAIL)`,
	"invalid-http-listen.toml":       `testdata/invalid-http-listen.toml:10: http.listen: "localhost" is not host:port: missing port in address`,
	"invalid-include-glob.toml":      `testdata/invalid-include-glob.toml:8: folder[0].include[1]: invalid pattern "[a-"`,
	"invalid-key-case.toml":          `testdata/invalid-key-case.toml:2: api.URL: unknown key (did you mean url?)`,
	"invalid-key-file-empty.toml":    `testdata/invalid-key-file-empty.toml:3: api.api_key_file: TESTDATA/empty_api_key is empty`,
	"invalid-key-file-missing.toml":  `testdata/invalid-key-file-missing.toml:3: api.api_key_file: open TESTDATA/no-such-key: no such file or directory`,
	"invalid-max-size.toml":          `testdata/invalid-max-size.toml:8: folder[0].max_size: invalid size "50 MX": use bytes or a number with B, KB, MB, GB, KiB, MiB or GiB`,
	"invalid-missing-path.toml":      `testdata/invalid-missing-path.toml: folder[0].path: required`,
	"invalid-missing-source-id.toml": `testdata/invalid-missing-source-id.toml: folder[0].source_id: required`,
	"invalid-missing-url.toml":       `testdata/invalid-missing-url.toml: api.url: required`,
	"invalid-move-no-done-dir.toml":  `testdata/invalid-move-no-done-dir.toml: folder[0].done_dir: required when after_upload = "move"`,
	"invalid-no-folder.toml":         `testdata/invalid-no-folder.toml: folder: at least one [[folder]] or [[mailbox]] is required`,
	"invalid-overlap-contains.toml":  `testdata/invalid-overlap-contains.toml:11: folder[1].path: "TESTDATA/hr/cvs" contains folder[0].path "TESTDATA/hr/cvs/sales": both folders would take the same files`,
	"invalid-overlap-dirs.toml": lines(
		`testdata/invalid-overlap-dirs.toml:15: folder[1].done_dir: "TESTDATA/a/done" is inside folder[0].path "TESTDATA/a": folder[0] would upload again the files moved there`,
		`testdata/invalid-overlap-dirs.toml:20: folder[2].path: "TESTDATA/a-failed/again" is inside folder[0].failed_dir "TESTDATA/a-failed": folder[2] would upload again the files folder[0] moves there`,
	),
	"invalid-overlap-inside.toml":   `testdata/invalid-overlap-inside.toml:13: folder[1].path: "TESTDATA/hr/cvs/sales" is inside folder[0].path "TESTDATA/hr/cvs": both folders would take the same files`,
	"invalid-overlap-same.toml":     `testdata/invalid-overlap-same.toml:11: folder[1].path: "TESTDATA/hr/cvs" is the same directory as folder[0].path "TESTDATA/hr/cvs": both folders would take the same files`,
	"invalid-overlap-symlink.toml":  `testdata/invalid-overlap-symlink.toml:11: folder[1].path: "TESTDATA/overlap-link/sales" is inside folder[0].path "TESTDATA/overlap-real" (with symbolic links resolved: "TESTDATA/overlap-real/sales" and "TESTDATA/overlap-real"): both folders would take the same files`,
	"invalid-rating.toml":           `testdata/invalid-rating.toml:12: folder[0].training_metadata[0].rating: 5 is out of range 1..4`,
	"invalid-same-path-source.toml": `testdata/invalid-same-path-source.toml:11: folder[1].path: same path and source_id as folder[0]: files would be uploaded twice`,
	"invalid-several.toml": lines(
		`testdata/invalid-several.toml:3: http.listen: "127.0.0.1:http": port "http" is not a number from 0 to 65535`,
		`testdata/invalid-several.toml: api.api_key: required (or api.api_key_file)`,
		`testdata/invalid-several.toml:7: api.workers: 300 is out of range 1..256`,
		`testdata/invalid-several.toml:8: api.timeout: 30 is not a duration: write a string like "2s"`,
		`testdata/invalid-several.toml:11: folder[0].name: "in box" is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit`,
		`testdata/invalid-several.toml:13: folder[0].source_id: "abc" is not 40 hexadecimal characters`,
		`testdata/invalid-several.toml:14: folder[0].settle: invalid duration "soon"`,
		`testdata/invalid-several.toml: folder[1].path: required`,
		`testdata/invalid-several.toml: folder[1].done_dir: required when after_upload = "move"`,
		`testdata/invalid-several.toml:20: folder[1].colour: unknown key`,
		`testdata/invalid-several.toml: folder[1].training_metadata[0].filter_reference: required`,
		`testdata/invalid-several.toml:23: folder[1].training_metadata[0].stage: "new" is not one of NEW, YES, LATER, NO`,
		`testdata/invalid-several.toml:24: folder[1].training_metadata[0].rating: 0 is out of range 1..4`,
	),
	"invalid-source-id.toml": `testdata/invalid-source-id.toml:7: folder[0].source_id: "0123456789abcdef0123456789abcdef0123456g" is not 40 hexadecimal characters`,
	"invalid-stage.toml":     `testdata/invalid-stage.toml:11: folder[0].training_metadata[0].stage: "maybe" is not one of NEW, YES, LATER, NO`,
	"invalid-syntax.toml":    `testdata/invalid-syntax.toml:2: invalid TOML: strings cannot contain newlines`,
	"invalid-types.toml": lines(
		`testdata/invalid-types.toml:1: state_dir: expected a string, got an integer`,
		`testdata/invalid-types.toml:5: api.workers: expected an integer, got a string`,
		`testdata/invalid-types.toml:6: api.rate_limit: -1.5 is negative`,
		`testdata/invalid-types.toml:7: api.max_attempts: 1001 is out of range 1..1000`,
		`testdata/invalid-types.toml:8: api.timeout: must be more than 0`,
		`testdata/invalid-types.toml:14: folder[0].recursive: expected true or false, got a string`,
		`testdata/invalid-types.toml:15: folder[0].poll_interval: "-1s" is negative`,
		`testdata/invalid-types.toml:16: folder[0].include: expected an array of strings, got a string`,
		`testdata/invalid-types.toml:17: folder[0].exclude[1]: expected a string, got an integer`,
		`testdata/invalid-types.toml:18: folder[0].max_size: -1 is negative`,
		`testdata/invalid-types.toml:21: folder[0].training_metadata[0].filter_reference: must not be empty`,
		`testdata/invalid-types.toml:22: folder[0].training_metadata[0].stage_timestamp: -1 is negative`,
		`testdata/invalid-types.toml:23: folder[0].training_metadata[0].rating_timestamp: expected an integer, got a string`,
	),
	"invalid-unknown-folder-key.toml": lines(
		`testdata/invalid-unknown-folder-key.toml: folder[0].source_id: required`,
		`testdata/invalid-unknown-folder-key.toml:7: folder[0].sorce_id: unknown key (did you mean source_id?)`,
	),
	"invalid-unknown-top-key.toml": `testdata/invalid-unknown-top-key.toml:1: stat_dir: unknown key (did you mean state_dir?)`,
	"invalid-unset-env.toml":       `testdata/invalid-unset-env.toml:3: api.api_key: environment variable RIMINDER_API_KEY is not set`,
	"invalid-url.toml":             `testdata/invalid-url.toml:2: api.url: "ftp://example.com/api" is not "sandbox" or an http(s) URL with a host`,
	"invalid-workers.toml":         `testdata/invalid-workers.toml:3: api.workers: 0 is out of range 1..256`,
	"invalid-retry.toml":           `testdata/invalid-retry.toml:4: api.retry_max: 1s is shorter than api.retry_initial 10s`,
	"invalid-template.toml":        "testdata/invalid-template.toml:8: folder[0].watch: \"inotify\" is not one of auto, events, poll\ntestdata/invalid-template.toml:11: folder[0].training_metadata[0].filter_reference: unknown template key \"{sub_dir}\": the one supported is {subdir}",
	// [[mailbox]]
	"invalid-mailbox-accept.toml": lines(
		`testdata/invalid-mailbox-accept.toml:10: mailbox[0].accept: "pdf" is not one of cv, all`,
		`testdata/invalid-mailbox-accept.toml:18: mailbox[1].accept: ["cv" "all"]: give one value, "cv" or "all"`,
	),
	"invalid-mailbox-duplicate-name.toml": `testdata/invalid-mailbox-duplicate-name.toml:10: mailbox[0].name: "jobs" is already the name of folder[0]`,
	"invalid-mailbox-glob.toml": lines(
		`testdata/invalid-mailbox-glob.toml:10: mailbox[0].from[1]: invalid pattern "[a-"`,
		`testdata/invalid-mailbox-glob.toml:11: mailbox[0].subject: empty list matches no message (leave subject out to read every message)`,
	),
	"invalid-mailbox-move-no-move-to.toml": `testdata/invalid-mailbox-move-no-move-to.toml: mailbox[0].move_to: required when no_cv_action = "move"`,
	"invalid-mailbox-move-to-folder.toml":  `testdata/invalid-mailbox-move-to-folder.toml:12: mailbox[0].move_to: "inbox" is one of folders: moved messages would be read again`,
	"invalid-mailbox-no-credentials.toml":  `testdata/invalid-mailbox-no-credentials.toml: mailbox[0].password: required (or password_file, or [mailbox.oauth2])`,
	"invalid-mailbox-no-username.toml":     `testdata/invalid-mailbox-no-username.toml: mailbox[0].username: required`,
	"invalid-mailbox-oauth2-http.toml": lines(
		`testdata/invalid-mailbox-oauth2-http.toml:11: mailbox[0].oauth2.token_url: "http://auth.example.com/token": use https (http only for a loopback host)`,
		`testdata/invalid-mailbox-oauth2-http.toml:14: mailbox[0].oauth2.scopes[0]: "a b" holds a space: write one scope per element`,
		`testdata/invalid-mailbox-oauth2-http.toml:14: mailbox[0].oauth2.scopes[1]: must not be empty`,
	),
	"invalid-mailbox-oauth2-no-refresh.toml":  `testdata/invalid-mailbox-oauth2-no-refresh.toml: mailbox[0].oauth2.refresh_token: required (or refresh_token_file)`,
	"invalid-mailbox-oauth2-not-table.toml":   `testdata/invalid-mailbox-oauth2-not-table.toml:9: mailbox[0].oauth2: expected a table ([mailbox.oauth2]), got a string`,
	"invalid-mailbox-oauth2-unknown-key.toml": `testdata/invalid-mailbox-oauth2-unknown-key.toml:14: mailbox[0].oauth2.scope: unknown key (did you mean scopes?)`,
	"invalid-mailbox-password-both.toml":      `testdata/invalid-mailbox-password-both.toml:9: mailbox[0].password_file: cannot be used with mailbox[0].password: set only one`,
	"invalid-mailbox-plain.toml":              `testdata/invalid-mailbox-plain.toml:7: mailbox[0].security: "plain" (no TLS) is allowed only for a loopback address (127.0.0.1, ::1, localhost), not "imap.example.com": use tls or starttls`,
	"invalid-mailbox-same-account.toml":       `testdata/invalid-mailbox-same-account.toml:16: mailbox[1].folders: "inbox" is also read by mailbox[0] with the same address, username and source_id: each CV would be read twice`,
	"invalid-mailbox-security.toml":           `testdata/invalid-mailbox-security.toml:7: mailbox[0].security: "ssl" is not one of tls, starttls, plain`,
	"invalid-mailbox-several.toml": lines(
		`testdata/invalid-mailbox-several.toml: mailbox[0].move_to: required when no_cv_action = "move"`,
		`testdata/invalid-mailbox-several.toml:5: mailbox[0].name: "mail box" is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit`,
		`testdata/invalid-mailbox-several.toml:6: mailbox[0].address: "imap.example.com" is not host:port: missing port in address`,
		`testdata/invalid-mailbox-several.toml:8: mailbox[0].ca_file: has no use with security = "plain"`,
		`testdata/invalid-mailbox-several.toml:9: mailbox[0].username: expected a string, got an integer`,
		`testdata/invalid-mailbox-several.toml:11: mailbox[0].password_file: cannot be used with mailbox[0].password: set only one`,
		`testdata/invalid-mailbox-several.toml:12: mailbox[0].folders[1]: must not be empty`,
		`testdata/invalid-mailbox-several.toml:12: mailbox[0].folders[2]: "Inbox" is listed twice`,
		`testdata/invalid-mailbox-several.toml:13: mailbox[0].source_id: "abc" is not 40 hexadecimal characters`,
		`testdata/invalid-mailbox-several.toml:14: mailbox[0].after_upload: "archive" is not one of none, seen, flag, move, delete`,
		`testdata/invalid-mailbox-several.toml:16: mailbox[0].max_attachment_size: invalid size "25 MX": use bytes or a number with B, KB, MB, GB, KiB, MiB or GiB`,
		`testdata/invalid-mailbox-several.toml:17: mailbox[0].since: expected a date ("2024-01-15", or RFC 3339 "2024-01-15T08:00:00Z") or an age ("720h"), got an integer`,
		`testdata/invalid-mailbox-several.toml:18: mailbox[0].poll_interval: must be more than 0`,
		`testdata/invalid-mailbox-several.toml:19: mailbox[0].colour: unknown key`,
		`testdata/invalid-mailbox-several.toml:22: mailbox[0].training_metadata[0].filter_reference: unknown template key "{sub_dir}": the one supported is {subdir}`,
		`testdata/invalid-mailbox-several.toml:26: mailbox[1].address: "[::1]:imap": port "imap" is not a number from 1 to 65535`,
		`testdata/invalid-mailbox-several.toml:27: mailbox[1].tls_server_name: must not be empty`,
		`testdata/invalid-mailbox-several.toml:29: mailbox[1].folders: empty list reads no mail`,
		`testdata/invalid-mailbox-several.toml:31: mailbox[1].accept: expected "cv" or "all", got an integer`,
		`testdata/invalid-mailbox-several.toml:32: mailbox[1].from: expected an array of strings, got a string`,
		`testdata/invalid-mailbox-several.toml: mailbox[1].oauth2.token_url: required`,
		`testdata/invalid-mailbox-several.toml:35: mailbox[1].oauth2.client_id: must not be empty`,
		`testdata/invalid-mailbox-several.toml:37: mailbox[1].oauth2.client_secret_file: cannot be used with mailbox[1].oauth2.client_secret: set only one`,
		`testdata/invalid-mailbox-several.toml:38: mailbox[1].oauth2.refresh_token_file: open /nonexistent/refresh_token: no such file or directory`,
	),
	"invalid-mailbox-since.toml": lines(
		`testdata/invalid-mailbox-since.toml:10: mailbox[0].since: "15/01/2024" is not a date ("2024-01-15", or RFC 3339 "2024-01-15T08:00:00Z") or an age ("720h")`,
		`testdata/invalid-mailbox-since.toml:18: mailbox[1].since: "-24h": an age must be more than 0`,
		`testdata/invalid-mailbox-since.toml:26: mailbox[2].since: a date-time without a time zone is ambiguous: expected a date ("2024-01-15", or RFC 3339 "2024-01-15T08:00:00Z") or an age ("720h")`,
	),
	"invalid-mailbox-subdir.toml": `testdata/invalid-mailbox-subdir.toml:15: mailbox[0].training_metadata[1].filter_reference: {subdir} is only for folders`,
}

// lines joins the lines of a multi-line error.
func lines(l ...string) string { return strings.Join(l, "\n") }

// fakeEnv returns a lookupEnv over a fixed map.
func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestParseInvalid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid-*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/invalid-*.toml")
	}
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	// Messages about symbolic links show resolved paths: testdata's own,
	// if the checkout is reached through a link, stands for TESTDATA too.
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for _, file := range files {
		name := filepath.Base(file)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data, file, fakeEnv(map[string]string{"UNRELATED": "x"}))
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", file, cfg)
			}
			got := strings.ReplaceAll(strings.ReplaceAll(err.Error(), real, "TESTDATA"), abs, "TESTDATA")
			want, ok := invalid[name]
			if !ok {
				t.Fatalf("no expected error for %s in the invalid map; Parse returns:\n%s", name, got)
			}
			if got != want {
				t.Errorf("Parse(%s) error:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
	for name := range invalid {
		if !seen[name] {
			t.Errorf("invalid map names %s, which is not in testdata", name)
		}
	}
}
