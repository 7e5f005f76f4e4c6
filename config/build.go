package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	folderName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hex40      = regexp.MustCompile(`^[0-9A-Fa-f]{40}$`)
)

// config builds the Config from the raw file over the defaults.
func (r *reader) config(raw *rawConfig) Config {
	cfg := Default()
	if s, ok := r.path("state_dir", raw.StateDir); ok {
		cfg.StateDir = s
	} else {
		cfg.StateDir = r.resolve(cfg.StateDir)
	}
	if d, ok := r.duration("shutdown_timeout", raw.ShutdownTimeout, false); ok {
		cfg.ShutdownTimeout = d
	}
	cfg.API = r.api(&raw.API, cfg.API)
	if d, ok := r.duration("state.keep_uploaded", raw.State.KeepUploaded, false); ok {
		cfg.State.KeepUploaded = d
	}
	if len(raw.Folder) == 0 && len(raw.Mailbox) == 0 {
		r.probs.missing("folder", "at least one [[folder]] or [[mailbox]] is required")
	}
	for i := range raw.Folder {
		cfg.Folders = append(cfg.Folders, r.folder(fmt.Sprintf("folder[%d]", i), &raw.Folder[i], cfg.API.Flavor))
	}
	for i := range raw.Mailbox {
		cfg.Mailboxes = append(cfg.Mailboxes, r.mailbox(fmt.Sprintf("mailbox[%d]", i), &raw.Mailbox[i], cfg.API.Flavor))
	}
	r.crossFolders(cfg.Folders)
	r.overlaps(cfg.Folders)
	r.crossMailboxes(cfg.Mailboxes)
	r.crossNames(cfg.Folders, cfg.Mailboxes)
	cfg.Webhook.Secret, _ = r.secret("webhook.secret", raw.Webhook.Secret, "webhook.secret_file", raw.Webhook.SecretFile, "webhook secret")
	if s, ok := r.str("http.listen", raw.HTTP.Listen); ok {
		r.listen("http.listen", s)
		cfg.HTTP.Listen = s
	}
	return cfg
}

// api reads [api] over the defaults in a.
func (r *reader) api(raw *rawAPI, a API) API {
	if s, ok := r.required("api.url", raw.URL); ok {
		a.URL = r.apiURL("api.url", s)
	}
	if s, ok := r.enum("api.flavor", raw.Flavor, flavorRiminder, flavorHrFlow); ok {
		a.Flavor = s
	}
	if s, ok := r.str("api.user_email", raw.UserEmail); ok {
		a.UserEmail = s
		if at := strings.IndexByte(s, '@'); at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \r\n\t") {
			r.probs.addf("api.user_email", "%q is not an e-mail address", s)
		}
	}
	if a.Flavor == flavorHrFlow && a.UserEmail == "" && !raw.UserEmail.set {
		r.probs.missing("api.user_email", `required with flavor = "hrflow" (sent as X-USER-EMAIL)`)
	}
	a.Key = r.apiKey(raw, a.URL == SandboxURL)
	if n, ok := r.integer("api.workers", raw.Workers, 1, 256); ok {
		a.Workers = int(n)
	}
	if f, ok := r.number("api.rate_limit", raw.RateLimit); ok {
		a.RateLimit = f
	}
	if n, ok := r.integer("api.max_attempts", raw.MaxAttempts, 1, 1000); ok {
		a.MaxAttempts = int(n)
	}
	if d, ok := r.duration("api.timeout", raw.Timeout, true); ok {
		a.Timeout = d
	}
	if d, ok := r.duration("api.retry_initial", raw.RetryInitial, true); ok {
		a.RetryInitial = d
	}
	if d, ok := r.duration("api.retry_max", raw.RetryMax, true); ok {
		a.RetryMax = d
	}
	if a.RetryMax < a.RetryInitial {
		r.probs.addf("api.retry_max", "%v is shorter than api.retry_initial %v", a.RetryMax, a.RetryInitial)
	}
	return a
}

// apiURL checks api.url: "sandbox", or an http(s) URL with a host, which
// is returned without trailing slashes.
func (r *reader) apiURL(key, s string) string {
	if s == SandboxURL {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole URL, which may hold a password.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		r.probs.addf(key, "invalid URL: %v", err)
		return ""
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		r.probs.addf(key, "%q is not %q or an http(s) URL with a host", u.Redacted(), SandboxURL)
		return ""
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		r.probs.addf(key, "%q: a base URL has no query or fragment", u.Redacted())
		return ""
	}
	return strings.TrimRight(s, "/")
}

// folder reads one [[folder]] over the folder defaults; key is folder[i].
func (r *reader) folder(key string, raw *rawFolder, flavor string) Folder {
	f := defaultFolder()
	f.Name = r.sourceName(key+".name", raw.Name)
	if s, ok := r.required(key+".path", raw.Path); ok {
		f.Path = r.resolve(s)
	}
	f.SourceID = r.sourceID(key+".source_id", raw.SourceID, flavor)
	if b, ok := r.boolean(key+".recursive", raw.Recursive); ok {
		f.Recursive = b
	}
	if d, ok := r.duration(key+".poll_interval", raw.PollInterval, false); ok {
		f.PollInterval = d
	}
	if d, ok := r.duration(key+".settle", raw.Settle, false); ok {
		f.Settle = d
	}
	if s, ok := r.enum(key+".watch", raw.Watch, WatchAuto, WatchEvents, WatchPoll); ok {
		f.Watch = s
	}
	if d, ok := r.duration(key+".rescan_interval", raw.RescanInterval, true); ok {
		f.RescanInterval = d
	}
	if d, ok := r.duration(key+".forget_missing", raw.ForgetMissing, false); ok {
		f.ForgetMissing = d
	}
	after := ""
	if s, ok := r.enum(key+".after_upload", raw.AfterUpload, afterKeep, afterMove, afterDelete); ok {
		f.AfterUpload, after = s, s
	}
	f.DoneDir, _ = r.path(key+".done_dir", raw.DoneDir)
	f.FailedDir, _ = r.path(key+".failed_dir", raw.FailedDir)
	if after == afterMove && !raw.DoneDir.set {
		r.probs.missing(key+".done_dir", `required when after_upload = "move"`)
	}
	if f.Path != "" && f.DoneDir == f.Path {
		r.probs.addf(key+".done_dir", "is the same directory as path")
	}
	if f.Path != "" && f.FailedDir == f.Path {
		r.probs.addf(key+".failed_dir", "is the same directory as path")
	}
	if globs, ok := r.globs(key+".include", raw.Include); ok {
		if len(globs) == 0 {
			r.probs.addf(key+".include", "empty list matches no file")
		} else {
			f.Include = globs
		}
	}
	if globs, ok := r.globs(key+".exclude", raw.Exclude); ok {
		f.Exclude = globs
	}
	if n, ok := r.size(key+".max_size", raw.MaxSize); ok {
		f.MaxSize = n
	}
	if s, ok := r.enum(key+".follow_symlinks", raw.FollowSymlinks, FollowInside, FollowNever, FollowAll); ok {
		f.FollowSymlinks = s
	}
	for i := range raw.TrainingMetadata {
		tm := r.training(fmt.Sprintf("%s.training_metadata[%d]", key, i), &raw.TrainingMetadata[i])
		f.TrainingMetadata = append(f.TrainingMetadata, tm)
	}
	return f
}

// sourceName reads the required name of a folder or mailbox; "" if it was
// reported.
func (r *reader) sourceName(key string, v rawValue) string {
	s, ok := r.required(key, v)
	switch {
	case !ok:
		return ""
	case len(s) > 64:
		r.probs.addf(key, "longer than 64 characters")
		return ""
	case !folderName.MatchString(s):
		r.probs.addf(key, "%q is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit", s)
		return ""
	}
	return s
}

// sourceID reads the required source_id of a folder or mailbox: 40 hex
// digits for the riminder flavor. "" if it was reported.
func (r *reader) sourceID(key string, v rawValue, flavor string) string {
	s, ok := r.required(key, v)
	if !ok {
		return ""
	}
	if flavor == flavorRiminder && !hex40.MatchString(s) {
		r.probs.addf(key, "%q is not 40 hexadecimal characters", s)
		return ""
	}
	return s
}

// globs reads an array of path.Match patterns.
func (r *reader) globs(key string, v rawValue) ([]string, bool) {
	list, ok := r.strList(key, v)
	if !ok {
		return nil, false
	}
	for i, g := range list {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			r.probs.addf(fmt.Sprintf("%s[%d]", key, i), "invalid pattern %q", g)
			ok = false
		}
	}
	return list, ok
}

// size reads max_size: an integer number of bytes or a string with a unit.
func (r *reader) size(key string, v rawValue) (int64, bool) {
	switch n := v.v.(type) {
	case nil:
		return 0, false
	case int64:
		if n < 0 {
			r.probs.addf(key, "%d is negative", n)
			return 0, false
		}
		return n, true
	case string:
		s, ok := r.str(key, v)
		if !ok {
			return 0, false
		}
		size, err := parseSize(s)
		if err != nil {
			r.probs.add(key, err)
			return 0, false
		}
		return size, true
	default:
		r.probs.addf(key, `expected bytes or a string like "50MiB", got %s`, typeName(v.v))
		return 0, false
	}
}

// training reads one [[folder.training_metadata]] table.
func (r *reader) training(key string, raw *rawTraining) TrainingMetadata {
	var tm TrainingMetadata
	tm.FilterReference, _ = r.required(key+".filter_reference", raw.FilterReference)
	if err := checkTemplate(tm.FilterReference); err != nil {
		r.probs.addf(key+".filter_reference", "%v", err)
	}
	if s, ok := r.enum(key+".stage", raw.Stage, "NEW", "YES", "LATER", "NO"); ok {
		tm.Stage = &s
	}
	if n, ok := r.integer(key+".stage_timestamp", raw.StageTimestamp, 0, 1<<63-1); ok {
		tm.StageTimestamp = &n
	}
	if n, ok := r.integer(key+".rating", raw.Rating, 1, 4); ok {
		rating := int(n)
		tm.Rating = &rating
	}
	if n, ok := r.integer(key+".rating_timestamp", raw.RatingTimestamp, 0, 1<<63-1); ok {
		tm.RatingTimestamp = &n
	}
	return tm
}

// crossFolders checks that no two folders upload the same files under
// the same source.
func (r *reader) crossFolders(folders []Folder) {
	for i, f := range folders {
		if j := slices.IndexFunc(folders[:i], func(g Folder) bool {
			return f.Path != "" && f.Path == g.Path && f.SourceID != "" && strings.EqualFold(f.SourceID, g.SourceID)
		}); j >= 0 {
			r.probs.addf(fmt.Sprintf("folder[%d].path", i), "same path and source_id as folder[%d]: files would be uploaded twice", j)
		}
	}
}

// crossNames checks that the names of folders and mailboxes, which share
// the namespace of source names, are unique. Of two sources with one name,
// the later one in the file is reported.
func (r *reader) crossNames(folders []Folder, mailboxes []Mailbox) {
	type source struct {
		key, name string // key is folder[i] or mailbox[i]
		order     int
	}
	var sources []source
	add := func(key, name string) {
		if name != "" {
			sources = append(sources, source{key, name, r.probs.pos.order(key + ".name")})
		}
	}
	for i, f := range folders {
		add(fmt.Sprintf("folder[%d]", i), f.Name)
	}
	for i, m := range mailboxes {
		add(fmt.Sprintf("mailbox[%d]", i), m.Name)
	}
	slices.SortStableFunc(sources, func(a, b source) int { return cmp.Compare(a.order, b.order) })
	for i, s := range sources {
		if j := slices.IndexFunc(sources[:i], func(t source) bool { return t.name == s.name }); j >= 0 {
			r.probs.addf(s.key+".name", "%q is already the name of %s", s.name, sources[j].key)
		}
	}
}

// listen checks a host:port listen address; empty means no listener.
func (r *reader) listen(key, s string) {
	if s == "" {
		return
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		if ae, ok := err.(*net.AddrError); ok {
			err = errors.New(ae.Err)
		}
		r.probs.addf(key, "%q is not host:port: %v", s, err)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.probs.addf(key, "%q: port %q is not a number from 0 to 65535", s, port)
	}
}

// Template keys a folder's filter_reference may hold; see
// Folder.FilterReference.
const (
	// TemplateSubdir is the first sub-folder of the file under the
	// folder's path ("" for a file at the top).
	TemplateSubdir = "{subdir}"
)

// checkTemplate accepts a filter_reference with no template key, or with
// the known ones.
func checkTemplate(s string) error {
	rest := strings.ReplaceAll(s, TemplateSubdir, "")
	if i := strings.IndexByte(rest, '{'); i >= 0 {
		end := strings.IndexByte(rest[i:], '}')
		key := rest[i:]
		if end >= 0 {
			key = rest[i : i+end+1]
		}
		return fmt.Errorf("unknown template key %q: the one supported is %s", key, TemplateSubdir)
	}
	return nil
}
