package imapsrc

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Stats counts what mailbox sources did. Accounts may share one; all
// fields are safe for concurrent use.
type Stats struct {
	// Messages is the number of messages read and recorded (with or
	// without CV parts); Filtered those of them left out by since, from
	// or subject.
	Messages atomic.Int64
	Filtered atomic.Int64
	// Parts is the number of parts spooled and claimed; Duplicates those
	// of them whose content was already an item (nothing is sent);
	// Skipped the file parts not taken (not a CV, too large, empty,
	// unknown encoding).
	Parts      atomic.Int64
	Duplicates atomic.Int64
	Skipped    atomic.Int64
	// PartBytes is the number of decoded bytes spooled; BytesRead the
	// bytes read from IMAP connections (TLS included), the cost of it.
	PartBytes atomic.Int64
	BytesRead atomic.Int64
	// Quarantined counts messages given up after repeated failures
	// (listed by cvfeed failed).
	Quarantined atomic.Int64
	// Reconnects counts connections lost or refused and tried again.
	Reconnects atomic.Int64
	// Actions counts after-actions applied to messages.
	Actions atomic.Int64
}

// Backoff is the delay between reconnections: Min after the first
// failure, doubling up to Max, each delay drawn between half and all of
// it (jitter), so that accounts of one server do not reconnect together.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) delay(attempt int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 5 * time.Minute
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
