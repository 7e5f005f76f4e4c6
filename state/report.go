package state

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MarkParsed records the API's word on the parsing of the CV with this
// profile_reference (cvfeed's references are the content's SHA-256), in
// each of the given sources that holds it. It reports whether any did. An
// item still waiting for its upload's outcome is marked too: the webhook
// may come before the 201 is recorded.
func (s *Store) MarkParsed(sourceIDs []string, reference, profileID string, ok bool) (bool, error) {
	raw, err := hex.DecodeString(reference)
	if err != nil || len(raw) != 32 {
		return false, nil // not one of cvfeed's references
	}
	var sha [32]byte
	copy(sha[:], raw)
	now := s.now()
	found := false
	err = s.update(func(tx *bolt.Tx) error {
		found = false
		for _, id := range sourceIDs {
			it, exists, err := getItem(tx, Key{SourceID: id, SHA256: sha})
			if err != nil {
				return err
			}
			if !exists {
				continue
			}
			found = true
			it.Parse = ParseError
			if ok {
				it.Parse = Parsed
			}
			if profileID != "" {
				it.ProfileID = profileID
			}
			it.ParsedAt = now
			if err := putItem(tx, &it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record the parsing of %s: %w", reference, err)
	}
	return found, nil
}

// ReportRow is one source's activity on one UTC day.
type ReportRow struct {
	Source string `json:"source"`
	// Day is YYYY-MM-DD, or "" for duplicates counted before days were
	// kept.
	Day string `json:"day"`
	// Seen counts the files found that day: new CVs and duplicates.
	Seen        int `json:"seen"`
	Uploaded    int `json:"uploaded"`
	Duplicates  int `json:"duplicates"`
	Failed      int `json:"failed"`
	Parsed      int `json:"parsed"`
	ParseErrors int `json:"parse_errors"`
}

// Report returns the activity per source and day, from the items' times,
// on or after since (zero: everything), sorted by source then day.
func (s *Store) Report(since time.Time) ([]ReportRow, error) {
	rows := map[[2]string]*ReportRow{}
	row := func(src, day string) *ReportRow {
		k := [2]string{src, day}
		if r := rows[k]; r != nil {
			return r
		}
		r := &ReportRow{Source: src, Day: day}
		rows[k] = r
		return r
	}
	minDay := ""
	if !since.IsZero() {
		minDay = since.UTC().Format(time.DateOnly)
	}
	day := func(t time.Time) (string, bool) {
		if t.IsZero() {
			return "", false
		}
		d := t.UTC().Format(time.DateOnly)
		return d, d >= minDay
	}
	err := s.view(func(tx *bolt.Tx) error {
		if err := newCodec(tx).forEachItem(func(it Item, _ [2][]byte, err error) error {
			if err != nil {
				return err
			}
			if d, ok := day(it.Created); ok {
				row(it.Source, d).Seen++
			}
			if d, ok := day(it.UploadedAt); ok && it.Status == Uploaded {
				row(it.Source, d).Uploaded++
			}
			if d, ok := day(it.Updated); ok && it.Status == Failed {
				row(it.Source, d).Failed++
			}
			if d, ok := day(it.ParsedAt); ok {
				switch it.Parse {
				case Parsed:
					row(it.Source, d).Parsed++
				case ParseError:
					row(it.Source, d).ParseErrors++
				}
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketDups).ForEach(func(k, v []byte) error {
			src, d := parseDupKey(k)
			if d != "" {
				d = d[:4] + "-" + d[4:6] + "-" + d[6:]
				if d < minDay {
					return nil
				}
			} else if minDay != "" {
				return nil
			}
			r := row(src, d)
			r.Duplicates += int(be64(v))
			r.Seen += int(be64(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	out := make([]ReportRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b ReportRow) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Day, b.Day)
	})
	return out, nil
}
