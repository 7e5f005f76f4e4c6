package state

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// FolderDevice is the file system a folder source's root was on when it
// last held something. A share that did not mount leaves its mount point,
// an empty directory on the file system below, where the share was: the
// device number tells the two apart, and that must survive a restart,
// since a share missing after a reboot is the usual case.
type FolderDevice struct {
	// Dev is the device number (st_dev) of the folder's root.
	Dev uint64
	// MountRoot is the top directory of that file system on the
	// folder's (resolved) path: where the share is mounted, the folder
	// itself or one of its parents.
	MountRoot string
}

// folderDevPrefix starts the keys of folder devices in the meta bucket:
// "folderdev" 0x00 sourceID 0x00 path → version[1]=1 dev[8] mount root.
var folderDevPrefix = []byte("folderdev\x00")

const folderDevVersion = 1

func folderDevKey(sourceID, path string) []byte {
	k := make([]byte, 0, len(folderDevPrefix)+len(sourceID)+1+len(path))
	k = append(k, folderDevPrefix...)
	k = append(k, sourceID...)
	k = append(k, 0)
	return append(k, path...)
}

// FolderDevice returns the device recorded for the folder at path of
// sourceID; false when none was.
func (s *Store) FolderDevice(sourceID, path string) (FolderDevice, bool, error) {
	var (
		d  FolderDevice
		ok bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(folderDevKey(sourceID, path))
		if v == nil {
			return nil
		}
		if len(v) < 9 || v[0] != folderDevVersion {
			return fmt.Errorf("malformed record (%d bytes)", len(v))
		}
		d = FolderDevice{Dev: binary.BigEndian.Uint64(v[1:9]), MountRoot: string(v[9:])}
		ok = true
		return nil
	})
	if err != nil {
		return FolderDevice{}, false, fmt.Errorf("read the device of folder %s: %w", path, err)
	}
	return d, ok, nil
}

// SetFolderDevice records the device of the folder at path of sourceID.
// Writing the record it already holds costs no transaction.
func (s *Store) SetFolderDevice(sourceID, path string, d FolderDevice) error {
	v := make([]byte, 0, 9+len(d.MountRoot))
	v = append(v, folderDevVersion)
	v = binary.BigEndian.AppendUint64(v, d.Dev)
	v = append(v, d.MountRoot...)
	k := folderDevKey(sourceID, path)
	same := false
	_ = s.view(func(tx *bolt.Tx) error {
		same = bytes.Equal(tx.Bucket(bucketMeta).Get(k), v)
		return nil
	})
	if same {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(k, v) })
	if err != nil {
		return fmt.Errorf("record the device of folder %s: %w", path, err)
	}
	return nil
}

// Wake tells whoever waits on Notify that pending work may be due: the
// uploads of a folder that was down (and left alone meanwhile) can go on.
func (s *Store) Wake() { s.signal() }
