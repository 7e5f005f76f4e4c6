package state

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkClaim compares one transaction (two fsyncs) per file with the
// batches the scanner hands over. Run:
//
//	go test -run '^$' -bench Claim ./state/
func BenchmarkClaim(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), FileName), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := make([]Candidate, 0, size)
			i := 0
			for b.Loop() {
				c := cand(fmt.Sprint("content ", i), fmt.Sprintf("/srv/cvs/%08d.pdf", i))
				c.Identity = &Identity{Ino: uint64(i), Size: 10, MTime: int64(i)}
				batch = append(batch, c)
				i++
				if len(batch) == size {
					if _, err := s.Claim(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if _, err := s.Claim(batch); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}

// BenchmarkLeaseComplete measures the per-item cost of the upload
// bookkeeping: a lease and an outcome, in batches like the pool's.
func BenchmarkLeaseComplete(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), FileName), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 32
	n := 0
	for b.Loop() {
		if n%batch == 0 {
			cands := make([]Candidate, batch)
			for j := range cands {
				cands[j] = cand(fmt.Sprint("c", n+j), fmt.Sprint("/", n+j))
			}
			if _, err := s.Claim(cands); err != nil {
				b.Fatal(err)
			}
			items, _, err := s.Lease(batch, nil)
			if err != nil {
				b.Fatal(err)
			}
			rs := make([]Result, len(items))
			for j, it := range items {
				rs[j] = Result{Key: it.Key, Outcome: Done, Attempted: true}
			}
			if err := s.Complete(rs); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}
