package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// mailActions are the values of a mailbox's after_upload and no_cv_action.
var mailActions = []string{MailNone, MailSeen, MailFlag, MailMove, MailDelete}

// sinceForms describes the two forms of since, for its errors.
const sinceForms = `a date ("2024-01-15", or RFC 3339 "2024-01-15T08:00:00Z") or an age ("720h")`

// mailbox reads one [[mailbox]] over the mailbox defaults; key is
// mailbox[i].
func (r *reader) mailbox(key string, raw *rawMailbox, flavor string) Mailbox {
	m := defaultMailbox()
	m.Name = r.sourceName(key+".name", raw.Name)

	// The server and how to reach it.
	host := ""
	if s, ok := r.required(key+".address", raw.Address); ok {
		if h, ok := r.mailAddress(key+".address", s); ok {
			m.Address, host = s, h
		}
	}
	if s, ok := r.enum(key+".security", raw.Security, SecurityTLS, SecurityStartTLS, SecurityPlain); ok {
		m.Security = s
		if s == SecurityPlain && host != "" && !loopback(host) {
			r.probs.addf(key+".security", "%q (no TLS) is allowed only for a loopback address (127.0.0.1, ::1, localhost), not %q: use %s or %s",
				s, host, SecurityTLS, SecurityStartTLS)
		}
	}
	m.CAFile, _ = r.path(key+".ca_file", raw.CAFile)
	if s, ok := r.str(key+".tls_server_name", raw.TLSServerName); ok {
		if s == "" {
			r.probs.addf(key+".tls_server_name", "must not be empty")
		} else {
			m.TLSServerName = s
		}
	}
	if m.Security == SecurityPlain {
		for _, k := range []struct{ name, value string }{{"ca_file", m.CAFile}, {"tls_server_name", m.TLSServerName}} {
			if k.value != "" {
				r.probs.addf(key+"."+k.name, "has no use with security = %q", SecurityPlain)
			}
		}
	}

	// The login.
	if s, ok := r.required(key+".username", raw.Username); ok {
		if strings.ContainsFunc(s, unicode.IsControl) {
			r.probs.addf(key+".username", "contains a control character")
		} else {
			m.Username = s
		}
	}
	m.Password, m.OAuth2 = r.credentials(key, raw)

	// What is read.
	if list, ok := r.mailFolders(key+".folders", raw.Folders); ok {
		m.Folders = list
	} else if raw.Folders.set {
		m.Folders = nil // reported: no check below compares with them
	}
	m.SourceID = r.sourceID(key+".source_id", raw.SourceID, flavor)
	if s, ok := r.accept(key+".accept", raw.Accept); ok {
		m.Accept = s
	}
	if n, ok := r.size(key+".max_attachment_size", raw.MaxAttachmentSize); ok {
		m.MaxAttachmentSize = n
	}
	if date, age, ok := r.since(key+".since", raw.Since); ok {
		m.SinceDate, m.SinceAge = date, age
	}
	for _, g := range []struct {
		name string
		v    rawValue
		dst  *[]string
	}{{"from", raw.From, &m.From}, {"subject", raw.Subject, &m.Subject}} {
		globs, ok := r.globs(key+"."+g.name, g.v)
		switch {
		case !ok:
		case len(globs) == 0:
			r.probs.addf(key+"."+g.name, "empty list matches no message (leave %s out to read every message)", g.name)
		default:
			*g.dst = globs
		}
	}
	if d, ok := r.duration(key+".poll_interval", raw.PollInterval, true); ok {
		m.PollInterval = d
	}

	// What happens to a message afterwards.
	if s, ok := r.enum(key+".after_upload", raw.AfterUpload, mailActions...); ok {
		m.AfterUpload = s
	}
	if s, ok := r.enum(key+".no_cv_action", raw.NoCVAction, mailActions...); ok {
		m.NoCVAction = s
	}
	if s, ok := r.str(key+".move_to", raw.MoveTo); ok {
		switch {
		case s == "":
			r.probs.addf(key+".move_to", "must not be empty")
		case slices.ContainsFunc(m.Folders, func(f string) bool { return sameMailbox(f, s) }):
			r.probs.addf(key+".move_to", "%q is one of folders: moved messages would be read again", s)
		default:
			m.MoveTo = s
		}
	}
	if !raw.MoveTo.set {
		for _, k := range []struct{ name, value string }{{"after_upload", m.AfterUpload}, {"no_cv_action", m.NoCVAction}} {
			if k.value == MailMove {
				r.probs.missing(key+".move_to", fmt.Sprintf("required when %s = %q", k.name, MailMove))
				break
			}
		}
	}

	for i := range raw.TrainingMetadata {
		tmKey := fmt.Sprintf("%s.training_metadata[%d]", key, i)
		tm := r.training(tmKey, &raw.TrainingMetadata[i])
		if strings.Contains(tm.FilterReference, TemplateSubdir) {
			r.probs.addf(tmKey+".filter_reference", "%s is only for folders", TemplateSubdir)
		}
		m.TrainingMetadata = append(m.TrainingMetadata, tm)
	}
	return m
}

// mailAddress checks the host:port of an IMAP server and returns its host.
func (r *reader) mailAddress(key, s string) (string, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if ae, ok := err.(*net.AddrError); ok {
			err = errors.New(ae.Err)
		}
		r.probs.addf(key, "%q is not host:port: %v", s, err)
		return "", false
	}
	if host == "" {
		r.probs.addf(key, "%q: the host is missing", s)
		return "", false
	}
	if !validPort(port) {
		r.probs.addf(key, "%q: port %q is not a number from 1 to 65535", s, port)
		return "", false
	}
	return host, true
}

// validPort reports whether port is decimal digits, 1 to 65535.
func validPort(port string) bool {
	if port == "" || len(port) > 5 {
		return false
	}
	n := 0
	for _, c := range []byte(port) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

// loopback reports whether host is "localhost" or a loopback IP address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// credentials reads how a mailbox logs in: exactly one of password,
// password_file and [mailbox.oauth2]. Errors never show a secret.
func (r *reader) credentials(key string, raw *rawMailbox) (Secret, *OAuth2) {
	password, set := r.secret(key+".password", raw.Password, key+".password_file", raw.PasswordFile, "password")
	if raw.OAuth2 == nil {
		if !set {
			r.probs.missing(key+".password", "required (or password_file, or [mailbox.oauth2])")
		}
		return password, nil
	}
	o := r.oauth2(key+".oauth2", raw.OAuth2)
	if set {
		other := key + ".password"
		if !raw.Password.set {
			other = key + ".password_file"
		}
		r.probs.addf(key+".oauth2", "cannot be used with %s: set only one", other)
		return "", nil
	}
	return "", o
}

// oauth2 reads a [mailbox.oauth2] table; key is mailbox[i].oauth2.
func (r *reader) oauth2(key string, raw *rawOAuth2) *OAuth2 {
	o := &OAuth2{}
	if s, ok := r.required(key+".token_url", raw.TokenURL); ok {
		o.TokenURL = r.tokenURL(key+".token_url", s)
	}
	o.Grant = GrantRefreshToken
	if raw.Grant.set {
		o.Grant, _ = r.enum(key+".grant", raw.Grant, GrantRefreshToken, GrantClientCredentials)
	}
	o.ClientID, _ = r.required(key+".client_id", raw.ClientID)
	var secretSet bool
	o.ClientSecret, secretSet = r.secret(key+".client_secret", raw.ClientSecret, key+".client_secret_file", raw.ClientSecretFile, "client secret")
	switch o.Grant {
	case GrantClientCredentials:
		for _, k := range []struct {
			name string
			v    rawValue
		}{{"refresh_token", raw.RefreshToken}, {"refresh_token_file", raw.RefreshTokenFile}} {
			if k.v.set {
				r.probs.addf(key+"."+k.name, "not used with grant = %q (the app logs in as itself): remove it", GrantClientCredentials)
			}
		}
		certSet := raw.CertificateFile.set
		switch {
		case secretSet && certSet:
			r.probs.addf(key+".certificate_file", "cannot be used with %s.client_secret: set only one", key)
		case !secretSet && !certSet:
			r.probs.missing(key+".client_secret", "required with grant = \"client_credentials\" (or client_secret_file, or certificate_file)")
		case certSet:
			o.Certificate = r.certificate(key+".certificate_file", raw.CertificateFile)
		}
		if !raw.Scopes.set {
			r.probs.missing(key+".scopes", "required with grant = \"client_credentials\" (Microsoft 365: [\"https://outlook.office365.com/.default\"])")
		}
	case GrantRefreshToken:
		if raw.CertificateFile.set {
			r.probs.addf(key+".certificate_file", "only used with grant = %q", GrantClientCredentials)
		}
		var set bool
		o.RefreshToken, set = r.secret(key+".refresh_token", raw.RefreshToken, key+".refresh_token_file", raw.RefreshTokenFile, "refresh token")
		if !set {
			r.probs.missing(key+".refresh_token", "required (or refresh_token_file)")
		}
	}
	if list, ok := r.strList(key+".scopes", raw.Scopes); ok {
		for i, s := range list {
			k := fmt.Sprintf("%s.scopes[%d]", key, i)
			switch {
			case s == "":
				r.probs.addf(k, "must not be empty")
				ok = false
			case strings.ContainsFunc(s, unicode.IsSpace):
				r.probs.addf(k, "%q holds a space: write one scope per element", s)
				ok = false
			}
		}
		if ok {
			o.Scopes = list
		}
	}
	return o
}

// certificate reads certificate_file: a PEM file with the certificate and
// private key of the app (not read when secrets are skipped).
func (r *reader) certificate(key string, v rawValue) Secret {
	if r.skipSecrets {
		r.unread(key, v, true)
		return ""
	}
	name, ok := r.str(key, v)
	if !ok {
		return ""
	}
	if name == "" {
		r.probs.addf(key, "must not be empty")
		return ""
	}
	data, err := r.keyFile(name)
	if err != nil {
		r.probs.add(key, err)
		return ""
	}
	if _, err := ParseClientCertificate([]byte(data)); err != nil {
		r.probs.addf(key, "%s: %v", name, err)
		return ""
	}
	return Secret(data)
}

// tokenURL checks an OAuth2 token endpoint: https, or http for a loopback
// host (a local test server). It returns "" if it reported a problem.
func (r *reader) tokenURL(key, s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole URL, which may hold a password.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		r.probs.addf(key, "invalid URL: %v", err)
		return ""
	}
	switch {
	case u.Hostname() == "" || u.Scheme != "https" && u.Scheme != "http":
		r.probs.addf(key, "%q is not an https URL with a host", u.Redacted())
		return ""
	case u.Scheme == "http" && !loopback(u.Hostname()):
		r.probs.addf(key, "%q: use https (http only for a loopback host)", u.Redacted())
		return ""
	}
	return s
}

// mailFolders reads the IMAP mailboxes to read: not empty, no empty name,
// none twice.
func (r *reader) mailFolders(key string, v rawValue) ([]string, bool) {
	list, ok := r.strList(key, v)
	if !ok {
		return nil, false
	}
	if len(list) == 0 {
		r.probs.addf(key, "empty list reads no mail")
		return nil, false
	}
	for i, f := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case f == "":
			r.probs.addf(k, "must not be empty")
			ok = false
		case slices.ContainsFunc(list[:i], func(g string) bool { return sameMailbox(f, g) }):
			r.probs.addf(k, "%q is listed twice", f)
			ok = false
		}
	}
	return list, ok
}

// sameMailbox reports whether two IMAP mailbox names are the same: INBOX
// is case-insensitive (RFC 3501 §5.1), other names are not.
func sameMailbox(a, b string) bool {
	return a == b || strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX")
}

// accept reads accept: "cv" or "all", alone or as a one-element list.
func (r *reader) accept(key string, v rawValue) (string, bool) {
	switch x := v.v.(type) {
	case nil:
		return "", false
	case string:
		return r.enum(key, v, AcceptCV, AcceptAll)
	case []any:
		list, ok := r.strList(key, v)
		switch {
		case !ok:
			return "", false
		case len(list) != 1:
			r.probs.addf(key, "%q: give one value, %q or %q", list, AcceptCV, AcceptAll)
			return "", false
		case list[0] != AcceptCV && list[0] != AcceptAll:
			r.probs.addf(key+"[0]", "%q is not one of %s, %s", list[0], AcceptCV, AcceptAll)
			return "", false
		}
		return list[0], true
	default:
		r.probs.addf(key, "expected %q or %q, got %s", AcceptCV, AcceptAll, typeName(x))
		return "", false
	}
}

// since reads since: a date (UTC midnight), an RFC 3339 time (a TOML
// date-time with an offset too), or an age, a duration > 0.
func (r *reader) since(key string, v rawValue) (date time.Time, age time.Duration, ok bool) {
	switch t := v.v.(type) {
	case nil:
		return time.Time{}, 0, false
	case time.Time:
		// The TOML decoder marks local values with these zone names.
		switch t.Location().String() {
		case "date-local":
			return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), 0, true
		case "datetime-local", "time-local":
			r.probs.addf(key, "a date-time without a time zone is ambiguous: expected %s", sinceForms)
			return time.Time{}, 0, false
		}
		return t.UTC(), 0, true
	case string:
		s, ok := r.str(key, v)
		if !ok {
			return time.Time{}, 0, false
		}
		if d, err := time.Parse(time.DateOnly, s); err == nil {
			return d, 0, true
		}
		if d, err := time.Parse(time.RFC3339, s); err == nil {
			return d.UTC(), 0, true
		}
		if d, err := time.ParseDuration(s); err == nil {
			if d <= 0 {
				r.probs.addf(key, "%q: an age must be more than 0", s)
				return time.Time{}, 0, false
			}
			return time.Time{}, d, true
		}
		r.probs.addf(key, "%q is not %s", s, sinceForms)
		return time.Time{}, 0, false
	default:
		r.probs.addf(key, "expected %s, got %s", sinceForms, typeName(t))
		return time.Time{}, 0, false
	}
}

// crossMailboxes checks that no two mailboxes read the same IMAP mailbox
// of the same account under the same source.
func (r *reader) crossMailboxes(mailboxes []Mailbox) {
	for i, m := range mailboxes {
		if m.Address == "" || m.Username == "" || m.SourceID == "" {
			continue
		}
	earlier:
		for j, n := range mailboxes[:i] {
			if !sameAccount(m, n) || !strings.EqualFold(m.SourceID, n.SourceID) {
				continue
			}
			for _, f := range m.Folders {
				if slices.ContainsFunc(n.Folders, func(g string) bool { return sameMailbox(f, g) }) {
					r.probs.addf(fmt.Sprintf("mailbox[%d].folders", i),
						"%q is also read by mailbox[%d] with the same address, username and source_id: each CV would be read twice", f, j)
					break earlier
				}
			}
		}
	}
}

// sameAccount reports whether two mailboxes log in to the same account:
// the same host (case-insensitive), port and username.
func sameAccount(a, b Mailbox) bool {
	ah, ap, err1 := net.SplitHostPort(a.Address)
	bh, bp, err2 := net.SplitHostPort(b.Address)
	return err1 == nil && err2 == nil && strings.EqualFold(ah, bh) && ap == bp && strings.EqualFold(a.Username, b.Username)
}
