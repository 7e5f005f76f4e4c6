// Package progress shows a backfill going: a bar on a terminal, a plain
// line every few seconds otherwise (logs, journald, CI).
package progress

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cvfeed/cvfeed/pipeline"
)

// Printer shows a backfill going: a bar on a terminal, a plain line every
// few seconds otherwise.
type Printer struct {
	w       io.Writer
	bar     *progressbar.ProgressBar
	every   time.Duration
	last    time.Time
	start   time.Time
	enabled bool
}

// New returns a printer to w: a bar when tty, nothing unless enabled.
func New(w io.Writer, tty, enabled bool, start time.Time) *Printer {
	p := &Printer{w: w, every: 5 * time.Second, start: start, last: start, enabled: enabled}
	if tty && enabled {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("scanning"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("files"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth(),
		)
	}
	return p
}

// Period is how often Update is worth calling: the bar redraws every
// 100 ms at most, the plain line is printed every few seconds.
func (p *Printer) Period() time.Duration {
	if p.bar != nil {
		return 200 * time.Millisecond
	}
	return p.every
}

// Update shows s, the pass at now.
func (p *Printer) Update(s pipeline.Progress, now time.Time) {
	if !p.enabled {
		return
	}
	done := s.Uploaded + s.Failed
	if p.bar != nil {
		desc := "uploading"
		if s.Scanning {
			desc = fmt.Sprintf("scanning (%d files seen)", s.Scan.Seen)
		}
		p.bar.Describe(desc)
		if !s.Scanning {
			p.bar.ChangeMax64(max(done+int64(s.Pending), 1))
		}
		_ = p.bar.Set64(done)
		return
	}
	if now.Sub(p.last) < p.every-p.every/10 {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	phase := "uploading"
	if s.Scanning {
		phase = "scanning"
	}
	fmt.Fprintf(p.w, "backfill %s: %d files seen, %d new, %d duplicates, %d unchanged; uploaded %d, failed %d, pending %d; %.1f files/s\n",
		phase, s.Scan.Seen, s.Scan.New, s.Scan.Duplicates, s.Scan.Unchanged, s.Uploaded, s.Failed, s.Pending, float64(done)/max(el, 0.001))
}

// Finish clears the bar.
func (p *Printer) Finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}
