package state

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// encodeItemV2 is schema 4's item encoder (format 2), kept to write the
// state files the migration reads.
func encodeItemV2(it *Item) []byte {
	name := it.FileName
	if name == filepath.Base(it.Path) {
		name = ""
	}
	flags := it.flags
	if it.MaybeSent {
		flags |= flagMaybeSent
	}
	if it.Message {
		flags |= flagMessage
	}
	b := []byte{2, byte(it.Status), flags}
	b = binary.AppendUvarint(b, uint64(max(it.Attempts, 0)))
	b = binary.AppendUvarint(b, uint64(max(it.Size, 0)))
	for _, t := range []time.Time{it.NextAttempt, it.Received, it.Created, it.Updated, it.UploadedAt} {
		b = binary.AppendVarint(b, millis(t))
	}
	for _, str := range []string{it.Source, it.Path, it.Origin, name, it.LastError, it.FileID} {
		b = binary.AppendUvarint(b, uint64(len(str)))
		b = append(b, str...)
	}
	b = append(b, byte(it.Parse))
	b = binary.AppendVarint(b, millis(it.ParsedAt))
	b = binary.AppendUvarint(b, uint64(len(it.ProfileID)))
	return append(b, it.ProfileID...)
}

// encodeFileV4 is schema 4's file record.
func encodeFileV4(r FileRecord) []byte {
	b := make([]byte, 32, 64)
	binary.BigEndian.PutUint64(b[0:], r.Dev)
	binary.BigEndian.PutUint64(b[8:], r.Ino)
	binary.BigEndian.PutUint64(b[16:], uint64(r.Size))
	binary.BigEndian.PutUint64(b[24:], uint64(r.MTime))
	return append(b, r.SHA256[:]...)
}

// schema4 is what a state of schema 4 (or 5) held, to write with the old
// layout.
type schema4 struct {
	schema  uint32 // 4 when 0; 5 adds the mailnotes bucket
	notes   map[MessageID][]byte
	items   []Item
	queued  []Key // due at their NextAttempt
	leased  []Key
	files   map[string]FileRecord // by sourceID + "\x00" + path
	actions []Action
	cursors map[string]MailCursor // by account + "\x00" + mailbox
	dups    map[string]uint64     // by dupKey
	extra   string                // a bucket of a later cvfeed, with one key
}

func writeSchema4(t *testing.T, path string, st schema4) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		buckets := [][]byte{bucketMeta, bucketClaimsV4, bucketQueue, bucketLeased, bucketFilesV4, bucketDups, bucketActions, bucketCursors, bucketMessages}
		if st.schema >= 5 {
			buckets = append(buckets, bucketMailNotes)
		}
		for _, b := range buckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for id, v := range st.notes {
			if err := tx.Bucket(bucketMailNotes).Put(messageKey(id), v); err != nil {
				return err
			}
		}
		if st.extra != "" {
			b, err := tx.CreateBucket([]byte(st.extra))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte("v")); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keySchema, put32(max(st.schema, 4))); err != nil {
			return err
		}
		if err := meta.Put(keyAPI, []byte("sandbox")); err != nil {
			return err
		}
		for i := range st.items {
			if err := tx.Bucket(bucketClaimsV4).Put(st.items[i].Key.bytes(), encodeItemV2(&st.items[i])); err != nil {
				return err
			}
		}
		for _, k := range st.queued {
			var due time.Time
			for _, it := range st.items {
				if it.Key == k {
					due = it.NextAttempt
				}
			}
			if err := enqueue(tx, k, due); err != nil {
				return err
			}
		}
		for _, k := range st.leased {
			if err := tx.Bucket(bucketLeased).Put(k.bytes(), put64(1)); err != nil {
				return err
			}
		}
		for sp, r := range st.files {
			var srcID, p string
			for i := range len(sp) {
				if sp[i] == 0 {
					srcID, p = sp[:i], sp[i+1:]
					break
				}
			}
			if err := tx.Bucket(bucketFilesV4).Put(fileKeyV4(srcID, p), encodeFileV4(r)); err != nil {
				return err
			}
		}
		for _, a := range st.actions {
			if err := tx.Bucket(bucketActions).Put(actionKey(a.Key, a.Path), []byte(a.Source)); err != nil {
				return err
			}
		}
		for am, c := range st.cursors {
			if err := tx.Bucket(bucketCursors).Put([]byte(am), append(put32(c.UIDValidity), put32(c.LastUID)...)); err != nil {
				return err
			}
		}
		for k, n := range st.dups {
			if err := tx.Bucket(bucketDups).Put([]byte(k), put64(n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFromSchema4 opens a state written by schema 4's code and
// finds every item, identity, action, cursor and duplicate count in it,
// and the bucket of a later cvfeed left alone; a file claimed again after
// the upgrade is not sent again.
func TestMigrateFromSchema4(t *testing.T) {
	const other = "fedcba9876543210fedcba9876543210fedcba98"
	ms := func(n int64) time.Time { return time.UnixMilli(n) }
	t0 := int64(1790000000000)
	var st schema4
	st.files = map[string]FileRecord{}
	for i := range 40 {
		it := Item{
			Key: Key{SourceID: src, SHA256: sum(fmt.Sprint("cv ", i))}, Source: "inbox", Status: Uploaded, Attempts: 1,
			Path: fmt.Sprintf("/srv/hr/d%d/Candidate %03d.pdf", i%3, i), FileName: fmt.Sprintf("Candidate %03d.pdf", i), Size: int64(1000 + i),
			Received: ms(t0 - 86400000), Created: ms(t0 + int64(i)), Updated: ms(t0 + 2000 + int64(i)), UploadedAt: ms(t0 + 2000 + int64(i)),
			FileID: fmt.Sprintf("%040x", i),
		}
		switch i % 5 {
		case 1:
			it.Status, it.UploadedAt, it.FileID, it.NextAttempt = Pending, time.Time{}, "", ms(t0+60000)
			st.queued = append(st.queued, it.Key)
		case 2:
			it.Status, it.UploadedAt, it.FileID, it.LastError = Failed, time.Time{}, "", "api: 400 bad file"
		case 3:
			it.Status, it.UploadedAt, it.FileID, it.NextAttempt = Pending, time.Time{}, "", ms(t0)
			st.leased = append(st.leased, it.Key)
		case 4:
			it.Parse, it.ProfileID, it.ParsedAt = Parsed, "prof-1", ms(t0+9000)
			it.Origin, it.Path = it.Path, "/srv/done/"+it.FileName // moved after upload
		}
		st.items = append(st.items, it)
		if i%5 != 4 {
			st.files[src+"\x00"+it.Path] = FileRecord{Identity: Identity{Dev: 2049, Ino: uint64(500 + i), Size: it.Size, MTime: t0*1e6 + int64(i)}, SHA256: it.SHA256}
		}
		if i%5 == 2 {
			st.actions = append(st.actions, Action{Key: it.Key, Path: it.Path, Source: "inbox"})
		}
	}
	// A mail item of another source, its spool file, and a message flag
	// bit of a later cvfeed.
	mail := Item{Key: Key{SourceID: other, SHA256: sum("mail")}, Source: "jobs", Status: Uploaded, Path: "/var/lib/cvfeed/spool/ab12", Origin: "jobs@x/INBOX/7/12/2",
		FileName: "Lebenslauf.pdf", Size: 77, Created: ms(t0), Updated: ms(t0 + 1), UploadedAt: ms(t0 + 1), FileID: "not-hex", flags: 4}
	st.items = append(st.items, mail)
	st.cursors = map[string]MailCursor{"jobs@x\x00INBOX": {UIDValidity: 7, LastUID: 12}}
	st.dups = map[string]uint64{"inbox\x0020260901": 3, "jobs\x00" + noDay: 2}
	st.extra = "laterfeature"

	p := filepath.Join(t.TempDir(), FileName)
	writeSchema4(t, p, st)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatalf("open schema 4 state: %v", err)
	}
	for _, want := range st.items {
		got, ok, err := s.Get(want.Key)
		if err != nil || !ok {
			t.Fatalf("item %s after the upgrade: %v, found %v", want.Key, err, ok)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("item after the upgrade:\n got %+v\nwant %+v", got, want)
		}
	}
	for sp, want := range st.files {
		var srcID, path string
		for i := range len(sp) {
			if sp[i] == 0 {
				srcID, path = sp[:i], sp[i+1:]
				break
			}
		}
		got, ok, err := s.LookupFile(srcID, path)
		if err != nil || !ok || got != want {
			t.Errorf("LookupFile(%s) after the upgrade = %+v, %v, %v; want %+v", path, got, ok, err, want)
		}
	}
	for _, a := range st.actions {
		acts, err := s.ActionsFor(a.Key)
		if err != nil || len(acts) != 1 || acts[0].Path != a.Path || acts[0].Source != a.Source {
			t.Errorf("ActionsFor(%s) after the upgrade = %+v, %v; want the action on %s", a.Key, acts, err, a.Path)
		}
	}
	if due, err := s.DueActions(); err != nil || len(due) != len(st.actions) {
		t.Errorf("DueActions after the upgrade: %d, %v; want %d (their items failed)", len(due), err, len(st.actions))
	}
	if c, ok, err := s.MailCursor("jobs@x", "INBOX"); err != nil || !ok || c != (MailCursor{UIDValidity: 7, LastUID: 12}) {
		t.Errorf("MailCursor after the upgrade = %+v, %v, %v", c, ok, err)
	}
	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if c := counts["inbox"]; c.Uploaded != 16 || c.Pending != 16 || c.Failed != 8 || c.Duplicate != 3 || c.Parsed != 8 {
		t.Errorf("counts of inbox after the upgrade = %+v", c)
	}
	if c := counts["jobs"]; c.Uploaded != 1 || c.Duplicate != 2 {
		t.Errorf("counts of jobs after the upgrade = %+v", c)
	}
	if api, err := s.BoundAPI(); err != nil || api != "sandbox" {
		t.Errorf("BoundAPI after the upgrade = %q, %v", api, err)
	}
	if problems, err := s.Check(); err != nil || len(problems) != 0 {
		t.Errorf("Check after the upgrade: %v, %q", err, problems)
	}
	// The leased items come back maybe-sent; the queued one is due.
	if n, err := s.Recover(); err != nil || n != len(st.leased) {
		t.Errorf("Recover after the upgrade = %d, %v; want %d", n, err, len(st.leased))
	}
	if n, err := s.Pending(nil); err != nil || n != len(st.leased)+len(st.queued) {
		t.Errorf("Pending after the upgrade = %d, %v; want %d", n, err, len(st.leased)+len(st.queued))
	}
	// Exactly once: the same content claimed again is a duplicate.
	again := st.items[0]
	res, err := s.Claim([]Candidate{{Source: "inbox", SourceID: src, SHA256: again.SHA256, Path: "/srv/hr/copy.pdf", FileName: "copy.pdf", Size: again.Size}})
	if err != nil || len(res) != 1 || res[0] != ClaimDuplicate {
		t.Errorf("claim of uploaded content after the upgrade = %v, %v; want a duplicate", res, err)
	}
	err = s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketClaimsV4) != nil || tx.Bucket(bucketFilesV4) != nil {
			t.Error("the schema 4 buckets are still there")
		}
		b := tx.Bucket([]byte(st.extra))
		if b == nil || string(b.Get([]byte("k"))) != "v" {
			t.Errorf("the %s bucket of a later cvfeed was not kept", st.extra)
		}
		if v := tx.Bucket(bucketMeta).Get(keySchema); be32(v) != SchemaVersion {
			t.Errorf("schema after the upgrade = %d, want %d", be32(v), SchemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// And it opens again, read-only, as schema 6.
	r, err := Open(p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the upgraded state read-only: %v", err)
	}
	r.Close()
}

// TestMigrateFromSchema5 opens a state written by schema 5's code (issue
// 10: quarantined messages are failed items without a file, notes about
// single messages in mailnotes) and finds them intact: listed as failed,
// read without BINARY, and a retry has the message read again.
func TestMigrateFromSchema5(t *testing.T) {
	const mailSrc = "fedcba9876543210fedcba9876543210fedcba98"
	ms := func(n int64) time.Time { return time.UnixMilli(n) }
	t0 := int64(1790000000000)
	poison := MessageID{Account: "jobs@x", Mailbox: "INBOX", UIDValidity: 7, UID: 13}
	nobin := MessageID{Account: "jobs@x", Mailbox: "INBOX", UIDValidity: 7, UID: 14}
	retried := MessageID{Account: "jobs@x", Mailbox: "Archive", UIDValidity: 9, UID: 2}
	q := Item{Key: QuarantineKey(mailSrc, poison), Source: "jobs", Status: Failed, Attempts: 1, Message: true,
		Origin: poison.String(), FileName: "Bewerbung (no attachment?)",
		LastError: `message quarantined (subject "Bewerbung"): no MIME structure`, Created: ms(t0), Updated: ms(t0 + 5)}
	file := Item{Key: Key{SourceID: src, SHA256: sum("cv")}, Source: "inbox", Status: Uploaded, Attempts: 1,
		Path: "/srv/hr/cv.pdf", FileName: "cv.pdf", Size: 10, Created: ms(t0), Updated: ms(t0 + 1), UploadedAt: ms(t0 + 1), FileID: fmt.Sprintf("%040x", 1)}
	st := schema4{
		schema: 5,
		items:  []Item{q, file},
		files:  map[string]FileRecord{src + "\x00" + file.Path: {Identity: Identity{Dev: 1, Ino: 2, Size: 10, MTime: 3}, SHA256: file.SHA256}},
		notes: map[MessageID][]byte{
			poison:  append([]byte{noteQuarantined}, mailSrc...),
			nobin:   append([]byte{noteNoBinary}, mailSrc...),
			retried: append([]byte{noteRetry}, mailSrc...),
		},
		cursors: map[string]MailCursor{"jobs@x\x00INBOX": {UIDValidity: 7, LastUID: 14}},
	}
	p := filepath.Join(t.TempDir(), FileName)
	writeSchema4(t, p, st)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatalf("open schema 5 state: %v", err)
	}
	defer s.Close()
	for _, want := range st.items {
		got, ok, err := s.Get(want.Key)
		if err != nil || !ok {
			t.Fatalf("item %s after the upgrade: %v, found %v", want.Key, err, ok)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("item after the upgrade:\n got %+v\nwant %+v", got, want)
		}
	}
	if got, ok, err := s.LookupFile(src, file.Path); err != nil || !ok || got.SHA256 != file.SHA256 {
		t.Errorf("LookupFile after the upgrade = %+v, %v, %v", got, ok, err)
	}
	if nb, err := s.NoBinary(nobin); err != nil || !nb {
		t.Errorf("NoBinary(%s) after the upgrade = %v, %v; want true", nobin, nb, err)
	}
	if ids, err := s.RetriedMessages("jobs@x"); err != nil || len(ids) != 1 || ids[0] != retried {
		t.Errorf("RetriedMessages after the upgrade = %v, %v; want [%s]", ids, err, retried)
	}
	if problems, err := s.Check(); err != nil || len(problems) != 0 {
		t.Errorf("Check after the upgrade: %v, %q", err, problems)
	}
	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if c := counts["jobs"]; c.Failed != 1 {
		t.Errorf("counts of jobs after the upgrade = %+v; want the quarantined message failed", c)
	}
	// Retrying the quarantined message removes its item and has the
	// mailbox read it again.
	if n, err := s.RetryFailed([]Key{q.Key}); err != nil || n != 1 {
		t.Fatalf("RetryFailed(quarantined) after the upgrade = %d, %v", n, err)
	}
	if _, ok, err := s.Get(q.Key); err != nil || ok {
		t.Errorf("the quarantined item after its retry: found %v, %v; want gone", ok, err)
	}
	ids, err := s.RetriedMessages("jobs@x")
	if err != nil || len(ids) != 2 {
		t.Errorf("RetriedMessages after the retry = %v, %v; want %s and %s", ids, err, poison, retried)
	}
}

// A state of schema 6, written by the cvfeed before record format 4, is
// read as it is by a read-only Open, and upgraded by a writer's: its items
// (format 3) keep their source, paths and times, and new items are written
// in format 4 next to them.
func TestOpenSchema6(t *testing.T) {
	src, err := os.ReadFile("testdata/schema6.db")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, src, 0o600); err != nil {
		t.Fatal(err)
	}
	const sourceID = "be50e7e57f4ad045ac8c406e7b665d409be9e363"
	check := func(s *Store, want int) {
		t.Helper()
		c, err := s.Counts()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 1 || c["hr-share"].Uploaded != want {
			t.Fatalf("counts = %+v, want %d uploaded for hr-share only", c, want)
		}
		var moved, kept int
		err = s.Items(func(it Item) error {
			switch {
			case it.Status != Uploaded:
			case it.Created.IsZero() || it.UploadedAt.Before(it.Created) || it.SourceID != sourceID:
				t.Errorf("item %s: created %v, uploaded %v, source id %s", it.Key, it.Created, it.UploadedAt, it.SourceID)
			case strings.HasPrefix(it.Path, "/tmp/mk6/done/") && strings.HasPrefix(it.Origin, "/tmp/mk6/in/") && filepath.Base(it.Path) == it.FileName:
				moved++
			case it.Path == "/tmp/mk6/in/cv-6.pdf" && it.FileName == "cv-6.pdf":
				kept++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if moved != 6 || kept != 1 {
			t.Errorf("%d moved items with their done_dir path and origin (want 6), %d kept (want 1)", moved, kept)
		}
		if _, ok, err := s.LookupFile(sourceID, "/tmp/mk6/in/cv-6.pdf"); err != nil || !ok {
			t.Errorf("identity of the kept file: found %v, %v", ok, err)
		}
	}
	ro, err := Open(p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a schema 6 state: %v", err)
	}
	check(ro, 7)
	ro.Close()

	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if problems, err := s.Check(); err != nil || len(problems) > 0 {
		t.Fatalf("state check after the upgrade: %v %v", problems, err)
	}
	var schema uint32
	if err := s.view(func(tx *bolt.Tx) error { schema = be32(tx.Bucket(bucketMeta).Get(keySchema)); return nil }); err != nil || schema != SchemaVersion {
		t.Fatalf("schema after a writer's open = %d (%v), want %d", schema, err, SchemaVersion)
	}
	c := Candidate{Source: "hr-share", SourceID: sourceID, SHA256: sum("a new CV"), Path: "/tmp/mk6/in/new.pdf", FileName: "new.pdf", Size: 8, Received: time.Now().Add(-time.Hour)}
	if _, err := s.Claim([]Candidate{c}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(Key{SourceID: sourceID, SHA256: c.SHA256})
	if err != nil || !ok || got.Source != "hr-share" || got.Path != c.Path || !got.Received.Equal(c.Received.Truncate(time.Millisecond)) {
		t.Fatalf("new item = %+v, %v, %v", got, ok, err)
	}
	if err := s.view(func(tx *bolt.Tx) error {
		cd := newCodec(tx)
		k, _, err := cd.itemKey(got.Key, false)
		if v := tx.Bucket(bucketItems).Get(k); err != nil || len(v) == 0 || v[0] != itemFormat {
			t.Errorf("new item record = %x (%v), want format %d", v, err, itemFormat)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check(s, 7)
}
