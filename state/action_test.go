package state

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestActionsFollowItems(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	a := cand("aaa", "/cv/a.pdf")
	a.Action = true
	a.Identity = &Identity{Ino: 1, Size: 3}
	copyA := cand("aaa", "/cv/copy.pdf")
	copyA.Action = true
	b := cand("bbb", "/cv/b.pdf")
	b.Action = true
	keep := cand("ccc", "/cv/c.pdf") // after_upload = keep: no action
	if _, err := s.Claim([]Candidate{a, copyA, b, keep}); err != nil {
		t.Fatal(err)
	}
	ka := Key{SourceID: src, SHA256: sum("aaa")}
	kb := Key{SourceID: src, SHA256: sum("bbb")}
	acts, err := s.ActionsFor(ka)
	if err != nil || len(acts) != 2 || acts[0].Due() {
		t.Fatalf("ActionsFor(a) = %+v, %v; want 2 actions, not due", acts, err)
	}
	if due, _ := s.DueActions(); len(due) != 0 {
		t.Fatalf("DueActions before any upload = %+v", due)
	}
	items, _, _ := s.Lease(10, nil)
	if len(items) != 3 {
		t.Fatalf("leased %d", len(items))
	}
	if err := s.Complete([]Result{
		{Key: ka, Outcome: Done, Attempted: true},
		{Key: kb, Outcome: Fail, Attempted: true, Err: "422 bad file"},
		{Key: Key{SourceID: src, SHA256: sum("ccc")}, Outcome: Done},
	}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueActions()
	if err != nil || len(due) != 3 {
		t.Fatalf("DueActions = %+v, %v; want the 3 actions (a, its copy, b)", due, err)
	}
	for _, d := range due {
		if d.Key == kb && (d.Item.Status != Failed || d.Item.LastError != "422 bad file") {
			t.Errorf("action on b carries item %+v", d.Item)
		}
	}
	// b's file moves to failed/: the item follows it, its old identity goes.
	var actB Action
	for _, d := range due {
		if d.Key == kb {
			actB = d
		}
	}
	if err := s.ActionDone(actB, "/failed/b.pdf"); err != nil {
		t.Fatal(err)
	}
	if it, _, _ := s.Get(kb); it.Path != "/failed/b.pdf" || it.FileName != "b.pdf" {
		t.Errorf("item b after the move: path %q name %q", it.Path, it.FileName)
	}
	// a's file is deleted: its identity is forgotten.
	for _, d := range due {
		if d.Key == ka && d.Path == "/cv/a.pdf" {
			if err := s.ActionDone(d, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, ok, _ := s.LookupFile(src, "/cv/a.pdf"); ok {
		t.Error("the identity of a deleted file is still remembered")
	}
	if due, _ := s.DueActions(); len(due) != 1 || due[0].Path != "/cv/copy.pdf" {
		t.Errorf("DueActions after two are done = %+v, want the copy's", due)
	}
}

func TestMigrateFromSchema1(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	// A version 1 database: no actions bucket.
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketClaimsV4, bucketQueue, bucketLeased, bucketFilesV4, bucketDups} {
			tx.CreateBucket(b)
		}
		tx.Bucket(bucketDups).Put([]byte("inbox"), put64(5)) // per source, no day
		return tx.Bucket(bucketMeta).Put(keySchema, put32(1))
	})
	db.Close()
	if _, err := Open(p, &Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only Open of a version 1 database succeeded; it cannot upgrade")
	}
	s, err := Open(p, nil)
	if err != nil {
		t.Fatalf("Open(v1) = %v, want an upgrade", err)
	}
	defer s.Close()
	s.db.View(func(tx *bolt.Tx) error {
		if v := be32(tx.Bucket(bucketMeta).Get(keySchema)); v != SchemaVersion {
			t.Errorf("after upgrade: schema %d", v)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				t.Errorf("after upgrade: no bucket %s", b)
			}
		}
		return nil
	})
	if c, _ := s.Counts(); c["inbox"].Duplicate != 5 {
		t.Errorf("duplicates after upgrade = %d, want the 5 counted before", c["inbox"].Duplicate)
	}
}
