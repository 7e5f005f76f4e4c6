package uploader

import (
	"log/slog"
	"os"
	"time"
)

// The date of a CV (timestamp_reception, HrFlow's created_at) comes from
// the share or the mail, and both can carry any date: a restored backup, a
// scanner whose clock was never set, a file dated 1901 (the smallest signed
// 32-bit time) or 2100. The API refuses a negative timestamp_reception
// with a 400, which would fail the CV for good over its date alone. So the
// date sent stays within what the API accepts:
//
//   - a date not after 1970-01-01 (Unix time 0 or less, also what tools
//     write when they know no date) is left out: the API then dates the CV
//     at its arrival. Clamping it to 1970 would send a date as false as the
//     file's, and file the CV among the oldest;
//   - a date in the future is sent as now: the file was certainly received
//     by now, and a date ahead would sort the CV before every real one.
//     Up to clockSkew ahead is taken for the file server's clock running a
//     little ahead of ours, and changed without a word.
//
// Each change is logged with the file's name and date.

// clockSkew is how far ahead of this machine's clock a date may be before
// the change is logged.
const clockSkew = 5 * time.Minute

// reception returns the date to send for u, whose file is open as f: the
// file's modification time (fstat of f) with ReceivedFromFile, else
// u.Received, kept within what the API accepts.
func (c *conn) reception(u Upload, f *os.File) (time.Time, error) {
	t := u.Received
	if u.ReceivedFromFile {
		fi, err := f.Stat()
		if err != nil {
			return time.Time{}, &FileError{Path: u.Path, Err: err}
		}
		t = fi.ModTime()
	}
	send, change := receptionTime(t, c.now())
	if change != "" {
		c.log.Warn(change, "file", u.Path, "name", u.FileName, "date", t.UTC().Format(time.RFC3339))
	}
	return send, nil
}

// receptionTime returns the date to send for a CV dated t, and, when it is
// not t and the change is worth a log line, what was done.
func receptionTime(t, now time.Time) (time.Time, string) {
	switch {
	case t.IsZero():
		return time.Time{}, ""
	case t.Unix() <= 0:
		return time.Time{}, "the file is dated 1970 or before, which the API refuses: sent without a date (the API dates it at its arrival)"
	case t.After(now.Add(clockSkew)):
		return now, "the file is dated in the future: sent with the date of now"
	case t.After(now):
		return now, ""
	}
	return t, ""
}

// discardLogger is the logger of a client given none.
var discardLogger = slog.New(slog.DiscardHandler)
