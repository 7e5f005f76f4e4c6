package state

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The device of a folder survives a restart, is kept per source_id and
// path, and a damaged record is an error naming the folder.
func TestFolderDevice(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.FolderDevice(src, "/srv/hr/cvs"); ok || err != nil {
		t.Fatalf("FolderDevice of a new state = %v, %v, want none", ok, err)
	}
	share := FolderDevice{Dev: 52, MountRoot: "/srv/hr/cvs"}
	if err := s.SetFolderDevice(src, "/srv/hr/cvs", share); err != nil {
		t.Fatal(err)
	}
	other := FolderDevice{Dev: 0xfe00, MountRoot: "/"}
	if err := s.SetFolderDevice("0123456789abcdef0123456789abcdef01234567", "/srv/hr/cvs", other); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFolderDevice(src, "/srv/hr/cvs2", other); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		id, path string
		want     FolderDevice
	}{
		{src, "/srv/hr/cvs", share},
		{"0123456789abcdef0123456789abcdef01234567", "/srv/hr/cvs", other},
		{src, "/srv/hr/cvs2", other},
	} {
		got, ok, err := s.FolderDevice(c.id, c.path)
		if err != nil || !ok || got != c.want {
			t.Errorf("FolderDevice(%s, %s) after reopen = %+v, %v, %v, want %+v", c.id[:8], c.path, got, ok, err, c.want)
		}
	}
	// A new record replaces the old one.
	moved := FolderDevice{Dev: 45, MountRoot: "/srv/hr"}
	if err := s.SetFolderDevice(src, "/srv/hr/cvs", moved); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.FolderDevice(src, "/srv/hr/cvs"); got != moved {
		t.Errorf("FolderDevice after a new record = %+v, want %+v", got, moved)
	}
	// The schema key is untouched: the records live beside it in meta.
	s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); len(v) != 4 || be32(v) != SchemaVersion {
			t.Errorf("schema key = %x", v)
		}
		return nil
	})
	// A damaged record.
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(folderDevKey(src, "/srv/hr/cvs"), []byte{1, 2})
	})
	if _, ok, err := s.FolderDevice(src, "/srv/hr/cvs"); ok || err == nil || !strings.Contains(err.Error(), "/srv/hr/cvs") {
		t.Errorf("FolderDevice of a damaged record = %v, %v, want an error naming the folder", ok, err)
	}
}

// Wake tells the pool waiting on Notify.
func TestWake(t *testing.T) {
	s := openTest(t, newClock())
	select {
	case <-s.Notify():
		t.Fatal("Notify fired before Wake")
	default:
	}
	s.Wake()
	select {
	case <-s.Notify():
	default:
		t.Error("Notify did not fire after Wake")
	}
}
