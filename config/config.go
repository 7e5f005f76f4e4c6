// Package config loads and validates cvfeed's TOML configuration.
//
// Load reads the file strictly (an unknown key is an error), expands ${VAR}
// from the environment in string values, reads secret files, fills defaults
// and validates every value. Errors name the file, the key path
// (folder[1].settle) and, where the TOML decoder gives it, the line.
//
// Sources are [[folder]] and [[mailbox]] tables; at least one is required,
// and their names are unique across both kinds.
//
// Relative paths in the file (state_dir, folder paths, done_dir, failed_dir,
// a mailbox's ca_file, and the secret files api_key_file, password_file,
// client_secret_file and refresh_token_file) are resolved against the
// directory of the config file, so cvfeed behaves the same whatever its
// working directory is. A secret file given as a bare name (no slash) is
// looked up first in $CREDENTIALS_DIRECTORY (systemd's LoadCredential=).
// Secrets (Secret values) never appear in errors, nor in fmt, slog or JSON
// output.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"time"
)

// Config is a complete, validated configuration. Paths are absolute.
type Config struct {
	// File is the absolute path of the file the config was loaded from.
	File string
	// StateDir holds the bbolt database (cvfeed.db) and the spool.
	StateDir string
	// ShutdownTimeout is how long cvfeed run lets in-flight uploads finish
	// after SIGTERM or SIGINT.
	ShutdownTimeout time.Duration
	API             API
	Folders         []Folder
	// Mailboxes are the [[mailbox]] sources. Folder and mailbox names
	// share one namespace, the source names.
	Mailboxes []Mailbox
	HTTP      HTTP
	Webhook   Webhook
	State     State
}

// State is the [state] table: how long the state remembers things.
type State struct {
	// KeepUploaded is how long an uploaded item is kept after its upload
	// (0: for ever). Forgetting it stays exactly-once: a file claimed
	// again is sent with the same profile_reference, the API refuses it
	// and cvfeed confirms the profile it holds.
	KeepUploaded time.Duration
}

// Webhook configures the receiver of the API's events on /webhook of the
// HTTP listener.
type Webhook struct {
	// Secret is the webhook secret key of the Riminder dashboard (not the
	// API key), from secret or secret_file; empty: /webhook is off.
	Secret Secret
}

// API configures the Riminder client and the upload pool.
type API struct {
	// URL is "sandbox" (the embedded fake API, in-process) or a base URL
	// such as https://www.riminder.net/sf/public/api/v1.0, without a
	// trailing slash.
	URL string
	// Flavor is FlavorRiminder (v1.0 POST profile) or FlavorHrFlow (v1
	// POST profile/parsing/file).
	Flavor string
	// UserEmail is sent as X-USER-EMAIL with the HrFlow flavour.
	UserEmail string
	// Key is the API secret key, from api_key or api_key_file.
	Key Secret
	// Workers is the number of concurrent uploads.
	Workers int
	// RateLimit is the maximum number of requests per second; 0 means none.
	RateLimit float64
	// MaxAttempts is how many times an item is tried before it is failed.
	MaxAttempts int
	// Timeout bounds one HTTP request, body included.
	Timeout time.Duration
	// RetryInitial is the wait after the first failed attempt; it doubles
	// with each failure up to RetryMax (with jitter; a server's
	// Retry-After is honoured when longer).
	RetryInitial time.Duration
	RetryMax     time.Duration
}

// Sandbox reports whether the API is the embedded sandbox.
func (a API) Sandbox() bool { return a.URL == SandboxURL }

// SandboxURL is the api.url value that selects the embedded sandbox.
const SandboxURL = "sandbox"

// Values of API.Flavor.
const (
	FlavorRiminder = "riminder"
	FlavorHrFlow   = "hrflow"
)

// Folder is one [[folder]] source.
type Folder struct {
	Name     string
	Path     string
	SourceID string
	// Recursive walks sub-folders (default true).
	Recursive bool
	// PollInterval > 0 polls instead of watching with inotify.
	PollInterval time.Duration
	// Settle is how long size and mtime must stay unchanged before a file
	// counts as complete.
	Settle time.Duration
	// Watch is how cvfeed run notices new files: WatchAuto (inotify, or
	// polling on network file systems and when PollInterval > 0),
	// WatchEvents (inotify, even on a network file system) or WatchPoll.
	Watch string
	// RescanInterval is the period of the reconcile walk that catches
	// anything the watcher missed.
	RescanInterval time.Duration
	// ForgetMissing is how long the identity of a file gone from the
	// folder is kept (0: for ever). A folder that is down forgets
	// nothing; a file cvfeed moved or deleted is forgotten at once.
	ForgetMissing time.Duration
	// AfterUpload is keep, move or delete.
	AfterUpload string
	// DoneDir and FailedDir are the targets of move; empty unless set.
	DoneDir   string
	FailedDir string
	// Include and Exclude are globs: without a slash they match the base
	// name, with one the slash-separated path relative to Path. Matching
	// is case-insensitive.
	Include []string
	Exclude []string
	// MaxSize is the largest file uploaded, in bytes; 0 means no limit.
	MaxSize int64
	// FollowSymlinks says which symbolic links in the folder are
	// followed: FollowInside (default), FollowNever or FollowAll.
	FollowSymlinks string
	// TrainingMetadata is sent with every upload of this folder. A
	// filter_reference may hold the template key {subdir} (see
	// TemplateSubdir).
	TrainingMetadata []TrainingMetadata
}

// Values of Folder.Watch.
const (
	WatchAuto   = "auto"
	WatchEvents = "events"
	WatchPoll   = "poll"
)

// Values of Folder.FollowSymlinks.
const (
	// FollowInside follows a link whose target lies inside the folder
	// and skips, with a warning, one that leads outside.
	FollowInside = "inside"
	// FollowNever follows no symbolic link.
	FollowNever = "never"
	// FollowAll follows every link for reading; after-actions still never
	// move or delete anything outside the folder.
	FollowAll = "all"
)

// Values of Folder.AfterUpload.
const (
	AfterKeep   = "keep"
	AfterMove   = "move"
	AfterDelete = "delete"
)

// TrainingMetadata is one element of the training_metadata array of
// riminder-api.md §2.2. Unset keys are sent as null.
type TrainingMetadata struct {
	FilterReference string  `json:"filter_reference"`
	Stage           *string `json:"stage"`
	StageTimestamp  *int64  `json:"stage_timestamp"`
	Rating          *int    `json:"rating"`
	RatingTimestamp *int64  `json:"rating_timestamp"`
}

// Mailbox is one [[mailbox]] source: an IMAP account whose folders are
// read for CV attachments.
type Mailbox struct {
	Name string
	// Address is host:port of the IMAP server.
	Address string
	// Security is SecurityTLS (implicit TLS, port 993), SecurityStartTLS
	// or SecurityPlain (no TLS: accepted only for a loopback address).
	Security string
	// CAFile is a PEM file of CA certificates to verify the server with
	// (default: the system's).
	CAFile string
	// TLSServerName is the name checked in the server's certificate
	// (default: the host of Address).
	TLSServerName string
	Username      string
	// Password is from password or password_file; empty with OAuth2.
	Password Secret
	// OAuth2, when set, logs in with XOAUTH2 (Gmail, Microsoft 365).
	OAuth2 *OAuth2
	// Folders are the IMAP mailboxes read (default ["INBOX"]).
	Folders  []string
	SourceID string
	// AfterUpload is what happens to a message once every CV of it is
	// uploaded: MailNone, MailSeen, MailFlag, MailMove or MailDelete.
	AfterUpload string
	// MoveTo is the target mailbox of MailMove.
	MoveTo string
	// NoCVAction is what happens to a message with no CV (default MailNone).
	NoCVAction string
	// Accept is AcceptCV (CV documents, identified by their bytes; the
	// default) or AcceptAll (every file part).
	Accept string
	// MaxAttachmentSize skips larger parts (default 25 MiB; 0: no limit).
	MaxAttachmentSize int64
	// Since limits reading to mail received on or after it: a fixed date
	// (SinceDate) or an age (SinceAge); both zero: all mail.
	SinceDate time.Time
	SinceAge  time.Duration
	// From and Subject are globs (case-insensitive); when set, a message
	// must match one of each.
	From    []string
	Subject []string
	// PollInterval is the safety-net poll beside IDLE, and the poll period
	// of a server without IDLE (default 1 minute).
	PollInterval time.Duration
	// TrainingMetadata is sent with every CV of this mailbox.
	TrainingMetadata []TrainingMetadata
}

// OAuth2 is an XOAUTH2 login: access tokens from the token endpoint at
// TokenURL (golang.org/x/oauth2), by one of two grants. GrantRefreshToken
// (the default; Google, or a delegated Microsoft 365 login) exchanges
// RefreshToken, and keeps a rotated one in the state. GrantClientCredentials
// (Microsoft 365's app-only access for daemons) authenticates the app itself,
// with ClientSecret or with the certificate in Certificate.
type OAuth2 struct {
	Grant        string
	TokenURL     string
	ClientID     string
	ClientSecret Secret
	RefreshToken Secret
	// Certificate is the PEM text of certificate_file (certificate and
	// private key), client_credentials only; ParseClientCertificate reads it.
	Certificate Secret
	Scopes      []string
}

// Values of OAuth2.Grant.
const (
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Format implements fmt.Formatter so that the secrets print as the
// placeholder whatever the verb. Without it, a verb such as %s on a
// Mailbox or a Config reaches this pointer as a bad verb, and fmt then
// prints the table in its error text without calling Secret.Format. It
// prints the fields as fmt would, the pointer at any depth as at the top
// (&{...}, not an address).
func (o *OAuth2) Format(f fmt.State, verb rune) {
	type fields OAuth2 // the same fields, without this method
	s := fmt.Sprintf(fmt.FormatString(f, verb), (*fields)(o))
	if o == nil || verb == 'v' && f.Flag('#') {
		// The type's name comes before any field value.
		s = strings.Replace(s, reflect.TypeFor[fields]().String(), "config.OAuth2", 1)
	}
	io.WriteString(f, s)
}

// Values of Mailbox.Security.
const (
	SecurityTLS      = "tls"
	SecurityStartTLS = "starttls"
	SecurityPlain    = "plain"
)

// Values of Mailbox.AfterUpload and NoCVAction.
const (
	MailNone   = "none"
	MailSeen   = "seen"
	MailFlag   = "flag"
	MailMove   = "move"
	MailDelete = "delete"
)

// Values of Mailbox.Accept.
const (
	AcceptCV  = "cv"
	AcceptAll = "all"
)

// HTTP configures the listener for /metrics, /healthz and /webhook.
type HTTP struct {
	// Listen is host:port; empty means no listener.
	Listen string
}

// Secret is a string that never prints itself: fmt, slog and encoding/json
// all see a placeholder. Use Reveal to get the value.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns a placeholder, never the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns a placeholder, never the secret (for %#v).
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter so that every verb prints the
// placeholder: without it a verb Stringer does not serve, such as %d or
// %t, prints the value itself (%!d(config.Secret=...)).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	io.WriteString(f, s.String())
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler with the placeholder.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// DefaultInclude returns the default include list: the extensions the
// Riminder parser takes (riminder-api.md §2.3), matched case-insensitively.
func DefaultInclude() []string {
	return []string{
		"*.pdf", "*.doc", "*.docx", "*.dotx", "*.odt", "*.rtf",
		"*.png", "*.jpg", "*.jpeg", "*.bmp",
		"*.odp", "*.ppt", "*.pptx", "*.msg",
	}
}
