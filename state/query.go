package state

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Counts is how many items of a source stand in each status.
type Counts struct {
	Pending   int `json:"pending"`
	Uploaded  int `json:"uploaded"`
	Failed    int `json:"failed"`
	Duplicate int `json:"duplicate"`
	// Parsed and ParseError count uploaded items the API's webhook
	// reported parsed, or failing to parse.
	Parsed     int `json:"parsed"`
	ParseError int `json:"parse_error"`
}

// Add returns the sum of c and d.
func (c Counts) Add(d Counts) Counts {
	return Counts{c.Pending + d.Pending, c.Uploaded + d.Uploaded, c.Failed + d.Failed, c.Duplicate + d.Duplicate,
		c.Parsed + d.Parsed, c.ParseError + d.ParseError}
}

// FailedCount returns the number of failed items of the sources named
// (a backfill's summary): a scan of the items that reads only their status
// byte, and the source of those failed.
func (s *Store) FailedCount(names []string) (int, error) {
	var n int
	err := s.view(func(tx *bolt.Tx) error {
		cd := newCodec(tx)
		var read int
		return tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			trimScan(tx, &read)
			if len(v) < 2 || Status(v[1]) != Failed {
				return nil
			}
			_, _, source, err := cd.countItem(v)
			if err != nil {
				return fmt.Errorf("item %x: %w", k, err)
			}
			if slices.Contains(names, source) {
				n++
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("count failed items: %w", err)
	}
	return n, nil
}

// Counts returns the counts per source name.
func (s *Store) Counts() (map[string]Counts, error) {
	out := map[string]Counts{}
	err := s.view(func(tx *bolt.Tx) error {
		cd := newCodec(tx)
		var n int
		if err := tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			trimScan(tx, &n)
			status, parse, source, err := cd.countItem(v)
			if err != nil {
				return fmt.Errorf("item %x: %w", k, err)
			}
			c := out[source]
			switch status {
			case Pending:
				c.Pending++
			case Uploaded:
				c.Uploaded++
			case Failed:
				c.Failed++
			}
			switch parse {
			case Parsed:
				c.Parsed++
			case ParseError:
				c.ParseError++
			}
			out[source] = c
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketDups).ForEach(func(k, v []byte) error {
			src, _ := parseDupKey(k)
			c := out[src]
			c.Duplicate += int(be64(v))
			out[src] = c
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("count items: %w", err)
	}
	return out, nil
}

// Items calls fn for every item with one of the given statuses (none: all),
// in key order. The Item is a copy; fn must not call the Store.
func (s *Store) Items(fn func(Item) error, statuses ...Status) error {
	return s.view(func(tx *bolt.Tx) error {
		return newCodec(tx).forEachItem(func(it Item, _ [2][]byte, err error) error {
			if err != nil {
				return err
			}
			if len(statuses) > 0 {
				match := false
				for _, st := range statuses {
					match = match || it.Status == st
				}
				if !match {
					return nil
				}
			}
			return fn(it)
		})
	})
}

// Get returns one item.
func (s *Store) Get(k Key) (Item, bool, error) {
	var (
		it Item
		ok bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		it, ok, err = getItem(tx, k)
		return err
	})
	return it, ok, err
}

// RetryFailed queues failed items again with a fresh attempt count: the
// given keys, or every failed item when keys is empty. It returns how many
// items were queued.
func (s *Store) RetryFailed(keys []Key) (int, error) {
	now := s.now()
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		cd := newCodec(tx)
		if len(keys) == 0 {
			if err := cd.forEachItem(func(it Item, _ [2][]byte, err error) error {
				if err == nil && it.Status == Failed {
					keys = append(keys, it.Key)
				}
				return err
			}); err != nil {
				return err
			}
		}
		for _, k := range keys {
			it, ok, err := cd.getItem(k)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no item %s", k)
			}
			if it.Status != Failed {
				continue
			}
			if it.Message {
				if err := retryMessageTx(tx, it); err != nil {
					return err
				}
				n++
				continue
			}
			it.Status = Pending
			it.Attempts = 0
			it.NextAttempt = now
			it.Updated = now
			if err := cd.putItem(&it); err != nil {
				return err
			}
			if err := enqueue(tx, k, now); err != nil {
				return err
			}
			if err := waitAnyOutcome(tx, k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("retry failed items: %w", err)
	}
	if n > 0 {
		s.signal()
	}
	return n, nil
}
