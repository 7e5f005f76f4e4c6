package imapsrc

import (
	"path"
	"strings"
	"time"
)

// since returns the earliest INTERNALDATE read: the since date, or now
// less the since age; zero when neither is set.
func (a *Account) since() time.Time {
	switch {
	case !a.cfg.SinceDate.IsZero():
		return a.cfg.SinceDate
	case a.cfg.SinceAge > 0:
		return a.now().Add(-a.cfg.SinceAge)
	}
	return time.Time{}
}

// filtered says why a message is left out by since, from or subject, or
// "" when it is read. A message left out still moves the cursor and gets
// no after-action.
func (a *Account) filtered(m meta, since time.Time) string {
	if !since.IsZero() && !m.internal.IsZero() && m.internal.Before(since) {
		return "received before since"
	}
	if len(a.cfg.From) > 0 {
		var addrs []string
		if m.env != nil {
			for _, ad := range m.env.From {
				addrs = append(addrs, ad.Addr(), ad.Name)
				if ad.Name != "" {
					addrs = append(addrs, ad.Name+" <"+ad.Addr()+">")
				}
			}
		}
		if !anyGlob(a.cfg.From, addrs) {
			return "sender not matched by from"
		}
	}
	if len(a.cfg.Subject) > 0 {
		subject := ""
		if m.env != nil {
			subject = m.env.Subject
		}
		if !anyGlob(a.cfg.Subject, []string{subject}) {
			return "subject not matched by subject"
		}
	}
	return ""
}

// anyGlob reports whether one of the globs matches one of the values,
// case-insensitively, with path.Match's syntax in which "*" also matches
// "/" (a subject is not a path).
func anyGlob(globs, values []string) bool {
	for _, g := range globs {
		g = strings.ReplaceAll(strings.ToLower(g), "/", "\x00")
		for _, v := range values {
			if v == "" {
				continue
			}
			v = strings.ReplaceAll(strings.ToLower(v), "/", "\x00")
			if ok, err := path.Match(g, v); ok && err == nil {
				return true
			}
		}
	}
	return false
}

// received is the message's reception time for the API: its Date header,
// else its INTERNALDATE.
func received(m meta) time.Time {
	if m.env != nil && !m.env.Date.IsZero() {
		return m.env.Date
	}
	return m.internal
}
