package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Outcome is what became of a leased item.
type Outcome uint8

// Outcomes reported to Complete.
const (
	// Done: the API confirmed the profile (201, or a duplicate
	// reference confirmed).
	Done Outcome = iota + 1
	// Retry: a transient failure; the item is queued again at Next.
	Retry
	// Fail: a permanent failure, or attempts exhausted.
	Fail
	// Release: nothing was decided (shutdown, pipeline paused); the item
	// goes back to the queue at Next (zero: now) unchanged.
	Release
)

// Result reports the outcome of one leased item.
type Result struct {
	Key
	Outcome Outcome
	// Attempted counts one more attempt (a request was sent).
	Attempted bool
	// FileID is the API's file_id, for Uploaded.
	FileID string
	// Err is the failure, for Retry and Fail.
	Err string
	// Next is when a Retry or Release is due.
	Next time.Time
	// MaybeSent is stored on the item for Retry and Release: whether the
	// API may hold the file already.
	MaybeSent bool
}

// Recover returns every item left leased by a process that stopped without
// recording its outcome to the queue, due now and marked MaybeSent. Call it
// once at start, before the first Lease.
func (s *Store) Recover() (int, error) {
	now := s.now()
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		leased := tx.Bucket(bucketLeased)
		cd := newCodec(tx)
		var keys [][]byte
		if err := leased.ForEach(func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
		for _, kb := range keys {
			if err := leased.Delete(kb); err != nil {
				return err
			}
			k, err := parseKey(kb)
			if err != nil {
				return err
			}
			it, ok, err := cd.getItem(k)
			if err != nil {
				return err
			}
			if !ok || it.Status != Pending {
				continue
			}
			it.MaybeSent = true
			it.NextAttempt = now
			it.Updated = now
			if err := cd.putItem(&it); err != nil {
				return err
			}
			if err := enqueue(tx, k, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recover leased items: %w", err)
	}
	if n > 0 {
		s.signal()
	}
	return n, nil
}

type queued struct {
	source string
	due    int64
	sha    [32]byte
}

// Lease takes up to max items that are due, of the sources accept admits
// (nil: all), oldest due first, and marks them leased in one transaction.
// next is the earliest due time of the admitted items left in the queue
// (zero when there are none).
func (s *Store) Lease(max int, accept func(sourceID string) bool) (items []Item, next time.Time, err error) {
	now := s.now().UnixNano()
	err = s.update(func(tx *bolt.Tx) error {
		items, next = items[:0], time.Time{}
		var due []queued
		nextDue := int64(0)
		q := tx.Bucket(bucketQueue)
		if err := q.ForEachBucket(func(src []byte) error {
			if accept != nil && !accept(string(src)) {
				return nil
			}
			c := q.Bucket(src).Cursor()
			taken := 0
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if len(k) != 40 {
					continue
				}
				d := int64(binary.BigEndian.Uint64(k))
				if d > now || taken >= max {
					if nextDue == 0 || d < nextDue {
						nextDue = d
					}
					break
				}
				e := queued{source: string(src), due: d}
				copy(e.sha[:], k[8:])
				due = append(due, e)
				taken++
			}
			return nil
		}); err != nil {
			return err
		}
		sort.Slice(due, func(i, j int) bool { return due[i].due < due[j].due })
		if len(due) > max {
			if nextDue == 0 || due[max].due < nextDue {
				nextDue = due[max].due
			}
			due = due[:max]
		}
		if nextDue != 0 {
			next = time.Unix(0, nextDue)
		}
		leased := tx.Bucket(bucketLeased)
		// One codec for the transaction: it reads the source numbers
		// once, not once per item.
		cd := newCodec(tx)
		for _, e := range due {
			k := Key{SourceID: e.source, SHA256: e.sha}
			if err := q.Bucket([]byte(e.source)).Delete(queueKey(time.Unix(0, e.due), e.sha)); err != nil {
				return err
			}
			it, ok, err := cd.getItem(k)
			if err != nil {
				return err
			}
			if !ok || it.Status != Pending {
				continue // a stale queue entry
			}
			if err := leased.Put(k.bytes(), put64(uint64(now))); err != nil {
				return err
			}
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lease items: %w", err)
	}
	return items, next, nil
}

// Complete records the outcomes of leased items in one transaction.
func (s *Store) Complete(results []Result) error {
	if len(results) == 0 {
		return nil
	}
	now := s.now()
	requeued := false
	err := s.update(func(tx *bolt.Tx) error {
		requeued = false
		leased := tx.Bucket(bucketLeased)
		cd := newCodec(tx) // one for the transaction, as in Lease
		for _, r := range results {
			kb := r.Key.bytes()
			if err := leased.Delete(kb); err != nil {
				return err
			}
			it, ok, err := cd.getItem(r.Key)
			if err != nil {
				return err
			}
			if !ok || it.Status != Pending {
				continue
			}
			if r.Attempted {
				it.Attempts++
			}
			it.Updated = now
			switch r.Outcome {
			case Done:
				it.Status = Uploaded
				it.FileID = r.FileID
				it.UploadedAt = now
				it.MaybeSent = false
				it.NextAttempt = time.Time{}
			case Fail:
				it.Status = Failed
				it.LastError = r.Err
				it.MaybeSent = false
				it.NextAttempt = time.Time{}
			case Retry, Release:
				if r.Err != "" {
					it.LastError = r.Err
				}
				next := r.Next
				if next.IsZero() {
					next = now
				}
				it.NextAttempt = next
				it.MaybeSent = r.MaybeSent
				if err := enqueue(tx, r.Key, next); err != nil {
					return err
				}
				requeued = true
			default:
				return fmt.Errorf("item %s: unknown outcome %d", r.Key, r.Outcome)
			}
			if err := cd.putItem(&it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %d outcomes: %w", len(results), err)
	}
	if requeued {
		s.signal()
	}
	return nil
}

// Pending counts the pending items of the sources accept admits (nil: all),
// queued or leased.
func (s *Store) Pending(accept func(sourceID string) bool) (int, error) {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		if err := q.ForEachBucket(func(src []byte) error {
			if accept != nil && !accept(string(src)) {
				return nil
			}
			n += q.Bucket(src).Stats().KeyN
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketLeased).ForEach(func(k, _ []byte) error {
			if key, err := parseKey(k); err == nil && (accept == nil || accept(key.SourceID)) {
				n++
			}
			return nil
		})
	})
	return n, err
}
