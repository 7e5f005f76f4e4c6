package pipeline

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cvfeed/cvfeed/internal/termsafe"
	"github.com/cvfeed/cvfeed/watcher"
)

// Progress is a one-shot pass as it goes. Every count is live.
type Progress struct {
	// Scan is the folders' counts plus the mailboxes' duplicates.
	Scan     watcher.Counts
	Scanning bool
	// Uploaded and Failed count this process's outcomes.
	Uploaded, Failed int64
	// Pending is what waits in the queue or is in a worker's hands now.
	Pending int
}

// Progress returns the counts of a one-shot pass now. It reads the queue:
// call it every so often, not per item.
func (p *Pipeline) Progress() Progress {
	pr := Progress{Uploaded: p.counts.uploaded.Load(), Failed: p.counts.failed.Load()}
	if p.scanner != nil {
		pr.Scan = p.scanner.Stats().Snapshot()
	}
	pr.Scan.Duplicates += p.mailStats.Duplicates.Load()
	pr.Scan.Skipped += p.mailStats.Skipped.Load() // mail parts skipped
	pr.Scan.Errors += p.mailErrs.Load()
	select {
	case <-p.sources.done:
	default:
		pr.Scanning = true
	}
	if n, err := p.store.Pending(p.accept); err == nil {
		pr.Pending = n
	}
	return pr
}

// Summary is the end of a one-shot pass, read after Drain (and before
// Stop closes the state: Stop keeps the summary).
type Summary struct {
	Progress
	// FailedNow is the number of items of the selected sources that are
	// failed in state (from this pass or an earlier one).
	FailedNow int
	// Down are the folders found down and not scanned.
	Down []error
	// Skipped are the first few files skipped, with why.
	Skipped []watcher.Skipped
	// SourcesErr is why the pass stopped early, if it did.
	SourcesErr error
}

// Summary returns the summary of a one-shot pass, made by Stop.
func (p *Pipeline) Summary() Summary { return p.summary }

func (p *Pipeline) makeSummary() Summary {
	s := Summary{Progress: p.Progress(), SourcesErr: p.srcErr}
	s.Scanning = false
	if p.scanner != nil {
		s.Down = p.scanner.Down()
		s.Skipped = p.scanner.FirstSkipped()
	}
	var names []string
	for _, src := range sources(p.folders, p.mailboxes) {
		names = append(names, src.name)
	}
	if n, err := p.store.FailedCount(names); err == nil {
		s.FailedNow = n
	}
	return s
}

// Print writes the summary of the pass, which took elapsed: one line of
// counts, and one naming the first few skipped files, if any.
func (s Summary) Print(w io.Writer, elapsed time.Duration) {
	sc := s.Scan
	done := s.Uploaded + s.Failed + sc.Duplicates
	fmt.Fprintf(w, "uploaded %d, duplicates %d, failed %d, skipped %d, unreadable %d, unchanged %d, pending %d; elapsed %s, %.1f files/s\n",
		s.Uploaded, sc.Duplicates, s.Failed, sc.Skipped, sc.Errors, sc.Unchanged, s.Pending+int(sc.Changing),
		elapsed.Round(time.Millisecond), float64(done)/max(elapsed.Seconds(), 0.001))
	if len(s.Skipped) == 0 {
		return
	}
	names := make([]string, len(s.Skipped))
	for i, sk := range s.Skipped {
		names[i] = fmt.Sprintf("%s (%s)", termsafe.Escape(sk.Path), sk.Reason)
	}
	more := ""
	if n := sc.Skipped - int64(len(names)); n > 0 {
		more = fmt.Sprintf(" and %d more (see the log)", n)
	}
	fmt.Fprintf(w, "skipped: %s%s\n", strings.Join(names, ", "), more)
}
