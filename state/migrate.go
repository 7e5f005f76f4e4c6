package state

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The buckets of schema 4 (and 5) that schema 6 replaces.
var (
	bucketClaimsV4 = []byte("claims")
	bucketFilesV4  = []byte("files")
)

// migrate6 rewrites the claims and files of an older schema into the
// items and idents of schema 6 (layout.go), in the transaction that opens
// the database, then deletes the old buckets. Every other bucket,
// including those this version does not know, is left as it is.
//
// The old file keys hold an FNV hash of the source id, not the id: the ids
// are those of the items, queues, leases and actions. An identity of a
// source none of them names (none can be: an identity is written with its
// item) is dropped; the file is hashed again on the next scan, which is
// harmless: its content is claimed already.
func migrate6(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketSources, bucketDirs, bucketItems, bucketIdents, bucketMissing} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	cd := newCodec(tx)
	items := tx.Bucket(bucketItems)
	// Old keys are in source id, then hash order: the new ones (source
	// number, then hash) come in order too, so pages can be filled.
	items.FillPercent = 1
	bySum := map[[8]byte]string{}
	note := func(sourceID string) {
		var h [8]byte
		copy(h[:], fileKeyV4(sourceID, ""))
		bySum[h] = sourceID
	}
	if old := tx.Bucket(bucketClaimsV4); old != nil {
		if err := old.ForEach(func(k, v []byte) error {
			it, err := decodeItemV2(k, v)
			if err != nil {
				return err
			}
			note(it.SourceID)
			kb, _, err := cd.itemKey(it.Key, true)
			if err != nil {
				return err
			}
			nv, err := cd.encodeItem(&it)
			if err != nil {
				return err
			}
			return items.Put(kb, nv)
		}); err != nil {
			return fmt.Errorf("rewrite items: %w", err)
		}
	}
	// Source ids of pending work name sources too.
	if q := tx.Bucket(bucketQueue); q != nil {
		_ = q.ForEachBucket(func(src []byte) error { note(string(src)); return nil })
	}
	for _, b := range [][]byte{bucketLeased, bucketActions} {
		if bk := tx.Bucket(b); bk != nil {
			_ = bk.ForEach(func(k, _ []byte) error {
				if i := bytes.IndexByte(k, 0); i > 0 {
					note(string(k[:i]))
				}
				return nil
			})
		}
	}
	if old := tx.Bucket(bucketFilesV4); old != nil {
		idents := tx.Bucket(bucketIdents)
		idents.FillPercent = identFill
		if err := old.ForEach(func(k, v []byte) error {
			if len(k) < 8 {
				return nil
			}
			src, ok := bySum[[8]byte(k[:8])]
			if !ok {
				return nil
			}
			r, err := decodeFileV4(v)
			if err != nil {
				return fmt.Errorf("file record %q: %w", k[8:], err)
			}
			fk, _, err := cd.fileKey(src, string(k[8:]), true)
			if err != nil {
				return err
			}
			return idents.Put(fk, encodeFile(r))
		}); err != nil {
			return fmt.Errorf("rewrite file identities: %w", err)
		}
	}
	for _, b := range [][]byte{bucketClaimsV4, bucketFilesV4} {
		if tx.Bucket(b) != nil {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
	}
	return nil
}
