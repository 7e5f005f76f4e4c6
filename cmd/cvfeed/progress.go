package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cvfeed/cvfeed/watcher"
)

// progress shows a backfill going: a bar on a terminal, a plain line every
// few seconds otherwise (logs, journald, CI).
type progress struct {
	w       io.Writer
	bar     *progressbar.ProgressBar
	every   time.Duration
	last    time.Time
	start   time.Time
	enabled bool
}

// snapshot is what progress shows.
type snapshot struct {
	scan     watcher.Counts
	scanning bool
	uploaded int64
	failed   int64
	pending  int
}

func newProgress(w io.Writer, tty, enabled bool, start time.Time) *progress {
	p := &progress{w: w, every: 5 * time.Second, start: start, last: start, enabled: enabled}
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

func (p *progress) update(s snapshot, now time.Time) {
	if !p.enabled {
		return
	}
	done := s.uploaded + s.failed
	if p.bar != nil {
		desc := "uploading"
		if s.scanning {
			desc = fmt.Sprintf("scanning (%d files seen)", s.scan.Seen)
		}
		p.bar.Describe(desc)
		total := s.scan.New + int64(s.pending) - 0
		if total < done {
			total = done
		}
		if !s.scanning {
			p.bar.ChangeMax64(max(done+int64(s.pending), 1))
		}
		_ = p.bar.Set64(done)
		return
	}
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	phase := "uploading"
	if s.scanning {
		phase = "scanning"
	}
	fmt.Fprintf(p.w, "backfill %s: %d files seen, %d new, %d duplicates, %d unchanged; uploaded %d, failed %d, pending %d; %.1f files/s\n",
		phase, s.scan.Seen, s.scan.New, s.scan.Duplicates, s.scan.Unchanged, s.uploaded, s.failed, s.pending, float64(done)/max(el, 0.001))
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}
