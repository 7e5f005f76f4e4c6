package imapsrc

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

// redactor is go-imap's DebugWriter for AccountOptions.WireLog: it cuts
// the conversation (both directions, interleaved) into lines, hides what
// could be a credential and shortens the rest.
//
// A LOGIN or AUTHENTICATE command line keeps only its tag and name; after
// it, until the server's tagged answer, every line but the server's
// continuation requests ("+ ...") and untagged data is hidden: the
// password may follow as a literal, and SASL responses come as bare
// base64 lines.
type redactor struct {
	mu     sync.Mutex
	out    func(string)
	buf    []byte
	inAuth string // tag of the login in progress
}

var authLine = regexp.MustCompile(`(?i)^(\S+) (LOGIN|AUTHENTICATE)\b`)

// maxWireLine is how much of a line (a literal's bytes, mostly) is shown.
const maxWireLine = 200

func newRedactor(out func(string)) *redactor { return &redactor{out: out} }

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			if len(r.buf) > 64<<10 {
				// A long literal without line breaks: never kept whole.
				r.emit(string(r.buf[:maxWireLine]) + "...")
				r.buf = r.buf[:0]
			}
			return len(p), nil
		}
		line := strings.TrimRight(string(r.buf[:i]), "\r")
		r.buf = r.buf[i+1:]
		r.emit(line)
	}
}

func (r *redactor) emit(line string) {
	if m := authLine.FindStringSubmatch(line); m != nil {
		r.inAuth = m[1]
		r.out(m[1] + " " + strings.ToUpper(m[2]) + " [redacted]")
		return
	}
	if r.inAuth != "" {
		switch {
		case strings.HasPrefix(line, r.inAuth+" "):
			r.inAuth = ""
		case strings.HasPrefix(line, "+"), strings.HasPrefix(line, "* "):
		default:
			r.out("[redacted]")
			return
		}
	}
	if len(line) > maxWireLine {
		line = line[:maxWireLine] + "..."
	}
	r.out(line)
}
