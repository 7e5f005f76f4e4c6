package pipeline

import (
	"time"

	"github.com/cvfeed/cvfeed/state"
)

// claims is the state as the folder sources see it. A duplicate claimed
// with an after-action (a later copy of a CV) gets its folder's action as
// soon as its original is settled: the runner is told of it at once, and
// does it then if the original was uploaded (or failed) before, or with
// the original's outcome otherwise. Every other method is the store's.
type claims struct {
	*state.Store
	p *Pipeline
}

// Claim records the candidates and tells the after-actions runner of the
// duplicates that carry an action. In one-shot mode it first waits while
// the queue is full (see waitQueue).
func (c claims) Claim(cands []state.Candidate) ([]state.ClaimResult, error) {
	c.p.waitQueue(len(cands))
	res, err := c.Store.Claim(cands)
	for i, r := range res {
		if r == state.ClaimDuplicate && cands[i].Action {
			c.p.actions.Notify(state.Key{SourceID: cands[i].SourceID, SHA256: cands[i].SHA256})
		}
	}
	return res, err
}

// A one-shot pass walks a share far faster than the API takes its files:
// left alone, the scan of a million files would queue nearly all of them
// before the uploads caught up, and the queue's pages (a key per pending
// item), written and then emptied, would stay in the state file as free
// pages for ever (bbolt never shrinks a file), besides the time every
// count of the queue takes. So the scan waits while more than queueAhead
// items are pending, until half of them are done: the walk then goes at
// the uploads' pace, a few thousand files ahead of them, which keeps every
// worker busy. The queue is counted (Store.Pending) once every
// queueAhead/4 claims, and every queueWait while the scan waits; a wait in
// which the queue did not shrink for queueStall ends. The daemon is never
// held: its claims are the files arriving now.
const (
	queueAhead = 16384
	queueWait  = 250 * time.Millisecond
	queueStall = 30 * time.Second
)

// queueLimits are waitQueue's bounds: queueAhead and queueStall, but for
// tests.
type queueLimits struct {
	ahead int
	stall time.Duration
}

func (q queueLimits) orDefault() queueLimits {
	if q.ahead <= 0 {
		q.ahead = queueAhead
	}
	if q.stall <= 0 {
		q.stall = queueStall
	}
	return q
}

// waitQueue is the wait of a one-shot scan before it claims n more files.
// It gives up (and lets the claim through) when the sources' pass is
// stopped or the uploads stopped (a key the API refuses): the pass ends
// then anyway; and when the queue did not shrink for queueStall.
func (p *Pipeline) waitQueue(n int) {
	q := p.queue.orDefault()
	if p.mode != OneShot || p.ahead.Add(int64(n)) < int64(q.ahead/4) {
		return
	}
	p.ahead.Store(0)
	limit, least, since := q.ahead, 0, time.Now()
	for {
		pending, err := p.store.Pending(p.accept)
		if err != nil || pending <= limit {
			return
		}
		if least == 0 || pending < least {
			least, since = pending, time.Now()
		} else if time.Since(since) > q.stall {
			// Nothing done for a while (the API backing off, a folder
			// gone down whose files wait): walk on rather than hold
			// the pass.
			return
		}
		limit = q.ahead / 2
		select {
		case <-p.sources.ctx.Done():
			return
		case <-p.uploads.done:
			return
		case <-time.After(queueWait):
		}
	}
}
