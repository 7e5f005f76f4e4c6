package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Schema 6 stores each thing once and small (see BenchmarkStateSize):
//
//	sources   sourceID → no[2]             a number per Riminder source id,
//	          0x00 name → no[2]             and per source name (schema 7)
//	dirs      'd' dir → no[4]              a number per directory (the path up to
//	          'n' no[4] → dir              and with its last '/'), both ways
//	items     no[2] sha256[32] → item      the claims (record.go, format 3)
//	idents    no[2] dirno[4] name → file   folder file identities
//
// An item's path is its directory's number and its name, and the name is
// left out when it is the file name sent; an identity's key is the same
// directory number and name: the directory's path is stored once for all
// its files, and the files of a directory are neighbours, in the order a
// walk finds them (directories are numbered as they are first seen), so
// the idents bucket is written append-mostly and filled to identFill.

var (
	bucketSources = []byte("sources")
	bucketDirs    = []byte("dirs")
	bucketItems   = []byte("items")
	bucketIdents  = []byte("idents")
)

// Fill percents (bbolt's Bucket.FillPercent: how full a page is left when
// a node splits). bbolt's docs: raise it for append-mostly buckets. Items
// are keyed by content hash, so their inserts land anywhere: the default
// keeps room in each page for the next.
const (
	identFill = 0.95
	itemFill  = bolt.DefaultFillPercent
)

// codec resolves, inside one transaction, the source and directory numbers
// of the schema 6 keys, caching what it read. New numbers are only given
// in a writable transaction.
type codec struct {
	tx      *bolt.Tx
	srcNo   map[string]uint16
	srcID   map[uint16]string
	nameNo  map[string]uint16
	name    map[uint16]string
	dirNo   map[string]uint32
	dirPath map[uint32]string
}

func newCodec(tx *bolt.Tx) *codec { return &codec{tx: tx} }

func (c *codec) loadSources() error {
	if c.srcNo != nil {
		return nil
	}
	c.srcNo, c.srcID = map[string]uint16{}, map[uint16]string{}
	c.nameNo, c.name = map[string]uint16{}, map[uint16]string{}
	b := c.tx.Bucket(bucketSources)
	if b == nil {
		return errors.New("bucket sources is missing")
	}
	return b.ForEach(func(k, v []byte) error {
		if len(v) != 2 {
			return fmt.Errorf("source %q: malformed number", k)
		}
		n := binary.BigEndian.Uint16(v)
		if name, ok := bytes.CutPrefix(k, []byte{0}); ok {
			c.nameNo[string(name)], c.name[n] = n, string(name)
			return nil
		}
		c.srcNo[string(k)], c.srcID[n] = n, string(k)
		return nil
	})
}

// sourceName returns the number of a source's name (a folder's or a
// mailbox's, Item.Source), giving a new one to an unknown name: an item
// stores the number (format 4).
func (c *codec) sourceName(name string) (uint16, error) {
	if err := c.loadSources(); err != nil {
		return 0, err
	}
	if n, ok := c.nameNo[name]; ok {
		return n, nil
	}
	if len(c.nameNo) >= 0xFFFF {
		return 0, errors.New("too many source names")
	}
	n := uint16(len(c.nameNo) + 1)
	if err := c.tx.Bucket(bucketSources).Put(append([]byte{0}, name...), binary.BigEndian.AppendUint16(nil, n)); err != nil {
		return 0, err
	}
	c.nameNo[name], c.name[n] = n, name
	return n, nil
}

func (c *codec) nameOf(n uint16) (string, error) {
	if err := c.loadSources(); err != nil {
		return "", err
	}
	name, ok := c.name[n]
	if !ok {
		return "", fmt.Errorf("unknown source name number %d", n)
	}
	return name, nil
}

// source returns the number of sourceID; with create, a new one is given
// to an unknown id.
func (c *codec) source(sourceID string, create bool) (uint16, bool, error) {
	if err := c.loadSources(); err != nil {
		return 0, false, err
	}
	if n, ok := c.srcNo[sourceID]; ok {
		return n, true, nil
	}
	if !create {
		return 0, false, nil
	}
	if strings.HasPrefix(sourceID, "\x00") {
		return 0, false, fmt.Errorf("source id %q begins with a NUL byte", sourceID)
	}
	if len(c.srcNo) >= 0xFFFF {
		return 0, false, errors.New("too many source ids")
	}
	n := uint16(len(c.srcNo) + 1)
	if err := c.tx.Bucket(bucketSources).Put([]byte(sourceID), binary.BigEndian.AppendUint16(nil, n)); err != nil {
		return 0, false, err
	}
	c.srcNo[sourceID], c.srcID[n] = n, sourceID
	return n, true, nil
}

func (c *codec) sourceID(n uint16) (string, error) {
	if err := c.loadSources(); err != nil {
		return "", err
	}
	id, ok := c.srcID[n]
	if !ok {
		return "", fmt.Errorf("unknown source number %d", n)
	}
	return id, nil
}

// splitPath cuts path after its last '/': dir+name is path, exactly.
func splitPath(path string) (dir, name string) {
	i := strings.LastIndexByte(path, '/')
	return path[:i+1], path[i+1:]
}

// dir returns the number of a directory (as splitPath gives it).
func (c *codec) dir(dir string, create bool) (uint32, bool, error) {
	if n, ok := c.dirNo[dir]; ok {
		return n, true, nil
	}
	b := c.tx.Bucket(bucketDirs)
	if b == nil {
		return 0, false, errors.New("bucket dirs is missing")
	}
	k := append([]byte{'d'}, dir...)
	if v := b.Get(k); len(v) == 4 {
		n := binary.BigEndian.Uint32(v)
		c.cacheDir(dir, n)
		return n, true, nil
	}
	if !create {
		return 0, false, nil
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, false, err
	}
	if seq > 0xFFFFFFFF {
		return 0, false, errors.New("too many directories")
	}
	n := uint32(seq)
	nb := binary.BigEndian.AppendUint32(nil, n)
	if err := b.Put(k, nb); err != nil {
		return 0, false, err
	}
	if err := b.Put(append([]byte{'n'}, nb...), []byte(dir)); err != nil {
		return 0, false, err
	}
	c.cacheDir(dir, n)
	return n, true, nil
}

func (c *codec) cacheDir(dir string, n uint32) {
	if c.dirNo == nil {
		c.dirNo, c.dirPath = map[string]uint32{}, map[uint32]string{}
	}
	c.dirNo[dir], c.dirPath[n] = n, dir
}

func (c *codec) dirOf(n uint32) (string, error) {
	if d, ok := c.dirPath[n]; ok {
		return d, nil
	}
	v := c.tx.Bucket(bucketDirs).Get(append([]byte{'n'}, binary.BigEndian.AppendUint32(nil, n)...))
	if v == nil {
		return "", fmt.Errorf("unknown directory number %d", n)
	}
	d := string(v)
	c.cacheDir(d, n)
	return d, nil
}

// itemKey is the items key of k; ok is false when k's source has no number
// (and create is false): no item of that source exists.
func (c *codec) itemKey(k Key, create bool) ([]byte, bool, error) {
	n, ok, err := c.source(k.SourceID, create)
	if err != nil || !ok {
		return nil, ok, err
	}
	b := make([]byte, 2, 2+32)
	binary.BigEndian.PutUint16(b, n)
	return append(b, k.SHA256[:]...), true, nil
}

func (c *codec) parseItemKey(b []byte) (Key, error) {
	if len(b) != 2+32 {
		return Key{}, fmt.Errorf("malformed item key %x", b)
	}
	id, err := c.sourceID(binary.BigEndian.Uint16(b))
	if err != nil {
		return Key{}, fmt.Errorf("item key %x: %w", b, err)
	}
	k := Key{SourceID: id}
	copy(k.SHA256[:], b[2:])
	return k, nil
}

// fileKey is the idents key of a folder file.
func (c *codec) fileKey(sourceID, path string, create bool) ([]byte, bool, error) {
	n, ok, err := c.source(sourceID, create)
	if err != nil || !ok {
		return nil, ok, err
	}
	dir, name := splitPath(path)
	d, ok, err := c.dir(dir, create)
	if err != nil || !ok {
		return nil, ok, err
	}
	b := make([]byte, 6, 6+len(name))
	binary.BigEndian.PutUint16(b, n)
	binary.BigEndian.PutUint32(b[2:], d)
	return append(b, name...), true, nil
}

// parseFileKey returns the source id and path of an idents key.
func (c *codec) parseFileKey(b []byte) (sourceID, path string, err error) {
	if len(b) < 6 {
		return "", "", fmt.Errorf("malformed file key %x", b)
	}
	if sourceID, err = c.sourceID(binary.BigEndian.Uint16(b)); err != nil {
		return "", "", err
	}
	dir, err := c.dirOf(binary.BigEndian.Uint32(b[2:]))
	if err != nil {
		return "", "", err
	}
	return sourceID, dir + string(b[6:]), nil
}

func (c *codec) getItem(k Key) (Item, bool, error) {
	kb, ok, err := c.itemKey(k, false)
	if err != nil || !ok {
		return Item{}, false, err
	}
	v := c.tx.Bucket(bucketItems).Get(kb)
	if v == nil {
		return Item{}, false, nil
	}
	it, err := c.decodeItem(k, v)
	return it, err == nil, err
}

func (c *codec) hasItem(k Key) (bool, error) {
	kb, ok, err := c.itemKey(k, false)
	if err != nil || !ok {
		return false, err
	}
	return c.tx.Bucket(bucketItems).Get(kb) != nil, nil
}

func (c *codec) putItem(it *Item) error {
	kb, _, err := c.itemKey(it.Key, true)
	if err != nil {
		return err
	}
	v, err := c.encodeItem(it)
	if err != nil {
		return err
	}
	b := c.tx.Bucket(bucketItems)
	b.FillPercent = itemFill
	return b.Put(kb, v)
}

// deleteItem removes an item (nothing else: its queue or lease entry, its
// actions are the caller's).
func (c *codec) deleteItem(k Key) error {
	kb, ok, err := c.itemKey(k, false)
	if err != nil || !ok {
		return err
	}
	return c.tx.Bucket(bucketItems).Delete(kb)
}

// forEachItem calls fn with every item in key order (by source number,
// then hash). A record that does not decode is fn's err argument.
func (c *codec) forEachItem(fn func(it Item, kv [2][]byte, err error) error) error {
	var n int
	return c.tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
		trimScan(c.tx, &n)
		key, err := c.parseItemKey(k)
		if err != nil {
			return fn(Item{}, [2][]byte{k, v}, err)
		}
		it, err := c.decodeItem(key, v)
		return fn(it, [2][]byte{k, v}, err)
	})
}

// getItem and putItem are the codec's for one call.
func getItem(tx *bolt.Tx, k Key) (Item, bool, error) { return newCodec(tx).getItem(k) }
func putItem(tx *bolt.Tx, it *Item) error            { return newCodec(tx).putItem(it) }

// getFile returns a folder file's record.
func (c *codec) getFile(sourceID, path string) (FileRecord, bool, error) {
	fk, ok, err := c.fileKey(sourceID, path, false)
	if err != nil || !ok {
		return FileRecord{}, false, err
	}
	v := c.tx.Bucket(bucketIdents).Get(fk)
	if v == nil {
		return FileRecord{}, false, nil
	}
	r, err := decodeFile(v)
	return r, err == nil, err
}

func (c *codec) deleteFile(sourceID, path string) error {
	fk, ok, err := c.fileKey(sourceID, path, false)
	if err != nil || !ok {
		return err
	}
	if err := c.tx.Bucket(bucketMissing).Delete(fk); err != nil {
		return err
	}
	return c.tx.Bucket(bucketIdents).Delete(fk)
}

// putFile records a folder file's identity (and that it is there).
func (c *codec) putFile(sourceID, path string, r FileRecord) error {
	fk, _, err := c.fileKey(sourceID, path, true)
	if err != nil {
		return err
	}
	if err := c.tx.Bucket(bucketMissing).Delete(fk); err != nil {
		return err
	}
	b := c.tx.Bucket(bucketIdents)
	b.FillPercent = identFill
	return b.Put(fk, encodeFile(r))
}
