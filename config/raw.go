package config

import (
	"reflect"
	"strings"
)

// rawValue is one TOML value as the decoder found it: string, int64,
// float64, bool, []any, map[string]any or a datetime.
//
// Leaves are decoded into rawValue rather than typed fields so that the
// decoder never stops on a bad value: it would report only the first, and
// (see positions) name it without its array index and sometimes on the
// wrong line. Types and ranges are checked afterwards, all at once.
type rawValue struct {
	v   any
	set bool
}

// UnmarshalTOML implements toml.Unmarshaler; it accepts any value.
func (r *rawValue) UnmarshalTOML(v any) error {
	r.v, r.set = v, true
	return nil
}

// rawConfig is the shape of the file; its toml tags are the keys.
type rawConfig struct {
	StateDir        rawValue     `toml:"state_dir"`
	ShutdownTimeout rawValue     `toml:"shutdown_timeout"`
	API             rawAPI       `toml:"api"`
	Folder          []rawFolder  `toml:"folder"`
	Mailbox         []rawMailbox `toml:"mailbox"`
	HTTP            rawHTTP      `toml:"http"`
	Webhook         rawWebhook   `toml:"webhook"`
	State           rawState     `toml:"state"`
}

type rawState struct {
	KeepUploaded rawValue `toml:"keep_uploaded"`
}

type rawAPI struct {
	URL         rawValue `toml:"url"`
	Flavor      rawValue `toml:"flavor"`
	APIKey      rawValue `toml:"api_key"`
	APIKeyFile  rawValue `toml:"api_key_file"`
	Workers     rawValue `toml:"workers"`
	RateLimit   rawValue `toml:"rate_limit"`
	MaxAttempts rawValue `toml:"max_attempts"`
	Timeout     rawValue `toml:"timeout"`
	UserEmail   rawValue `toml:"user_email"`
	// RetryInitial and RetryMax bound the backoff between attempts.
	RetryInitial rawValue `toml:"retry_initial"`
	RetryMax     rawValue `toml:"retry_max"`
}

type rawFolder struct {
	Name             rawValue      `toml:"name"`
	Path             rawValue      `toml:"path"`
	SourceID         rawValue      `toml:"source_id"`
	Recursive        rawValue      `toml:"recursive"`
	PollInterval     rawValue      `toml:"poll_interval"`
	Settle           rawValue      `toml:"settle"`
	Watch            rawValue      `toml:"watch"`
	RescanInterval   rawValue      `toml:"rescan_interval"`
	AfterUpload      rawValue      `toml:"after_upload"`
	DoneDir          rawValue      `toml:"done_dir"`
	FailedDir        rawValue      `toml:"failed_dir"`
	Include          rawValue      `toml:"include"`
	Exclude          rawValue      `toml:"exclude"`
	MaxSize          rawValue      `toml:"max_size"`
	FollowSymlinks   rawValue      `toml:"follow_symlinks"`
	ForgetMissing    rawValue      `toml:"forget_missing"`
	TrainingMetadata []rawTraining `toml:"training_metadata"`
}

type rawTraining struct {
	FilterReference rawValue `toml:"filter_reference"`
	Stage           rawValue `toml:"stage"`
	StageTimestamp  rawValue `toml:"stage_timestamp"`
	Rating          rawValue `toml:"rating"`
	RatingTimestamp rawValue `toml:"rating_timestamp"`
}

type rawMailbox struct {
	Name              rawValue `toml:"name"`
	Address           rawValue `toml:"address"`
	Security          rawValue `toml:"security"`
	CAFile            rawValue `toml:"ca_file"`
	TLSServerName     rawValue `toml:"tls_server_name"`
	Username          rawValue `toml:"username"`
	Password          rawValue `toml:"password"`
	PasswordFile      rawValue `toml:"password_file"`
	Folders           rawValue `toml:"folders"`
	SourceID          rawValue `toml:"source_id"`
	AfterUpload       rawValue `toml:"after_upload"`
	MoveTo            rawValue `toml:"move_to"`
	NoCVAction        rawValue `toml:"no_cv_action"`
	Accept            rawValue `toml:"accept"`
	MaxAttachmentSize rawValue `toml:"max_attachment_size"`
	Since             rawValue `toml:"since"`
	From              rawValue `toml:"from"`
	Subject           rawValue `toml:"subject"`
	PollInterval      rawValue `toml:"poll_interval"`
	// OAuth2 is nil unless the file has a [mailbox.oauth2] table.
	OAuth2           *rawOAuth2    `toml:"oauth2"`
	TrainingMetadata []rawTraining `toml:"training_metadata"`
}

type rawOAuth2 struct {
	Grant            rawValue `toml:"grant"`
	TokenURL         rawValue `toml:"token_url"`
	ClientID         rawValue `toml:"client_id"`
	ClientSecret     rawValue `toml:"client_secret"`
	ClientSecretFile rawValue `toml:"client_secret_file"`
	RefreshToken     rawValue `toml:"refresh_token"`
	RefreshTokenFile rawValue `toml:"refresh_token_file"`
	CertificateFile  rawValue `toml:"certificate_file"`
	Scopes           rawValue `toml:"scopes"`
}

type rawHTTP struct {
	Listen rawValue `toml:"listen"`
}

type rawWebhook struct {
	Secret     rawValue `toml:"secret"`
	SecretFile rawValue `toml:"secret_file"`
}

// schema returns every key of rawConfig, dotted and without indices
// ("folder.training_metadata.stage"), mapped to whether it is a table
// (an optional one, a pointer, or an array of tables); the root is "".
func schema() map[string]bool {
	keys := map[string]bool{"": true}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for f := range t.Fields() {
			name := prefix + f.Tag.Get("toml")
			ft := f.Type
			if ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			table := ft != reflect.TypeFor[rawValue]()
			keys[name] = table
			if table {
				walk(name+".", ft)
			}
		}
	}
	walk("", reflect.TypeFor[rawConfig]())
	return keys
}

// suggest returns a known key of the table parent close to name, or "".
func suggest(known map[string]bool, parent, name string) string {
	if len(name) > 64 {
		return ""
	}
	prefix := ""
	if parent != "" {
		prefix = parent + "."
	}
	best, bestDist := "", 3
	for k := range known {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || strings.Contains(rest, ".") || k == "" {
			continue
		}
		d := editDistance(strings.ToLower(name), rest)
		if d < bestDist || d == bestDist && rest < best {
			best, bestDist = rest, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
