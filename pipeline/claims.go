package pipeline

import "github.com/cvfeed/cvfeed/state"

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
// duplicates that carry an action.
func (c claims) Claim(cands []state.Candidate) ([]state.ClaimResult, error) {
	res, err := c.Store.Claim(cands)
	for i, r := range res {
		if r == state.ClaimDuplicate && cands[i].Action {
			c.p.actions.Notify(state.Key{SourceID: cands[i].SourceID, SHA256: cands[i].SHA256})
		}
	}
	return res, err
}
