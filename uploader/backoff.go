package uploader

import (
	"math/rand/v2"
	"time"

	"github.com/cvfeed/cvfeed/config"
)

// Backoff is the retry delay policy: exponential from Initial, doubling per
// attempt, capped at Max, with "equal jitter" (a random point in the upper
// half) so that workers that failed together do not retry together.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// Rand returns a float in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// DefaultBackoff is 1s, 2s, 4s … capped at 5 minutes.
func DefaultBackoff() Backoff {
	return Backoff{Initial: config.DefaultRetryInitial, Max: config.DefaultRetryMax}
}

// Delay returns the wait before attempt n+1 after n failed attempts (n ≥ 1),
// never shorter than retryAfter (the server's Retry-After).
func (b Backoff) Delay(n int, retryAfter time.Duration) time.Duration {
	if b.Initial <= 0 {
		b.Initial = config.DefaultRetryInitial
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	d = d/2 + time.Duration(r()*float64(d/2))
	return max(d, retryAfter)
}
