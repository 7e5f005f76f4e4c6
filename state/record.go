package state

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"time"
)

// Status is where an item stands.
type Status uint8

// The item statuses. Duplicate is not stored on items: a duplicate is a
// second file with the content of an existing item, counted per source.
const (
	Pending Status = iota + 1
	Uploaded
	Failed
	Duplicate
)

var statusNames = [...]string{Pending: "pending", Uploaded: "uploaded", Failed: "failed", Duplicate: "duplicate"}

// String returns the status name used in status -json.
func (s Status) String() string {
	if int(s) < len(statusNames) && statusNames[s] != "" {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Key identifies an item: the Riminder source it goes to and the SHA-256 of
// its content.
type Key struct {
	SourceID string
	SHA256   [32]byte
}

// Hex returns the content hash as 64 lowercase hex characters.
func (k Key) Hex() string { return hex.EncodeToString(k.SHA256[:]) }

// String returns "sourceID/sha256" for logs.
func (k Key) String() string { return k.SourceID + "/" + k.Hex() }

func (k Key) bytes() []byte {
	b := make([]byte, 0, len(k.SourceID)+1+32)
	b = append(b, k.SourceID...)
	b = append(b, 0)
	return append(b, k.SHA256[:]...)
}

func parseKey(b []byte) (Key, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 || len(b)-i-1 != 32 {
		return Key{}, fmt.Errorf("malformed item key %q", b)
	}
	var k Key
	k.SourceID = string(b[:i])
	copy(k.SHA256[:], b[i+1:])
	return k, nil
}

// ParseKey parses the "sourceID/sha256hex" form of Key.String.
func ParseKey(s string) (Key, error) {
	i := bytes.LastIndexByte([]byte(s), '/')
	if i <= 0 {
		return Key{}, fmt.Errorf("item id %q: want SOURCE_ID/SHA256", s)
	}
	var k Key
	k.SourceID = s[:i]
	h, err := hex.DecodeString(s[i+1:])
	if err != nil || len(h) != 32 {
		return Key{}, fmt.Errorf("item id %q: the part after / is not a SHA-256 in hex", s)
	}
	copy(k.SHA256[:], h)
	return k, nil
}

// Item is one distinct CV for one source: everything needed to upload it
// and what happened so far.
type Item struct {
	Key
	// Source is the name of the source (folder or mailbox) that found it.
	Source string
	Status Status
	// Attempts counts requests that reached the point of being sent.
	Attempts int
	// NextAttempt is when a pending item is due.
	NextAttempt time.Time
	// LastError is the last failure, for failed and retried items.
	LastError string
	// MaybeSent is set when the item was handed to a worker by a process
	// that stopped before recording the outcome: the API may hold it.
	MaybeSent bool
	// Message is set for a quarantined message (quarantine.go): a failed
	// item with no file, Origin naming the message, FileName its subject.
	// Retrying it has the mailbox source read the message again.
	Message bool
	// Path is the file to upload (a folder file or a spool file).
	Path string
	// Origin describes where the CV came from, for people (a path, or
	// account/mailbox/UIDVALIDITY/UID/part).
	Origin string
	// FileName is the name sent to the API.
	FileName string
	Size     int64
	// Received is sent as timestamp_reception.
	Received time.Time
	// FileID is the API's file_id once uploaded.
	FileID     string
	Created    time.Time
	Updated    time.Time
	UploadedAt time.Time
	// Parse is what the API's webhook said of the parsing of an uploaded
	// item; ProfileID and ParsedAt come with it.
	Parse     ParseStatus
	ProfileID string
	ParsedAt  time.Time
}

// ParseStatus is the outcome of the API's parsing of an uploaded CV, as
// its webhook reports it.
type ParseStatus uint8

// Parse outcomes.
const (
	NotParsed ParseStatus = iota
	Parsed
	ParseError
)

// Items are stored in a compact binary form (a JSON record was twice the
// size and a tenth of a backfill's CPU): a format byte, the status and
// flags, varints, then length-prefixed strings. Times are Unix
// milliseconds, 0 for unset.
// Format 2 added the parse result (Parse, ProfileID, ParsedAt) at the
// end; format 1 records are still read.
const itemFormat = 2

const (
	flagMaybeSent = 1
	flagMessage   = 2
)

// Times are stored as Unix milliseconds: short, and precise enough.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func encodeItem(it *Item) ([]byte, error) {
	name := it.FileName
	if name == filepath.Base(it.Path) {
		name = "" // the usual case: the name is the path's
	}
	b := make([]byte, 0, 64+len(it.Source)+len(it.Path)+len(it.Origin)+len(name)+len(it.LastError)+len(it.FileID))
	flags := byte(0)
	if it.MaybeSent {
		flags |= flagMaybeSent
	}
	if it.Message {
		flags |= flagMessage
	}
	b = append(b, itemFormat, byte(it.Status), flags)
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
	b = append(b, it.ProfileID...)
	return b, nil
}

// itemReader decodes the binary form, remembering the first error.
type itemReader struct {
	b   []byte
	err error
}

func (r *itemReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated varint")
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *itemReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated varint")
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *itemReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errors.New("truncated string")
		r.b = nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func decodeItem(k, v []byte) (Item, error) {
	key, err := parseKey(k)
	if err != nil {
		return Item{}, err
	}
	if len(v) < 3 || v[0] < 1 || v[0] > itemFormat {
		return Item{}, fmt.Errorf("item %s: unknown record format", key)
	}
	format := v[0]
	it := Item{Key: key, Status: Status(v[1]), MaybeSent: v[2]&flagMaybeSent != 0, Message: v[2]&flagMessage != 0}
	r := &itemReader{b: v[3:]}
	it.Attempts = int(r.uvarint())
	it.Size = int64(r.uvarint())
	it.NextAttempt = fromMillis(r.varint())
	it.Received = fromMillis(r.varint())
	it.Created = fromMillis(r.varint())
	it.Updated = fromMillis(r.varint())
	it.UploadedAt = fromMillis(r.varint())
	it.Source, it.Path, it.Origin, it.FileName, it.LastError, it.FileID = r.str(), r.str(), r.str(), r.str(), r.str(), r.str()
	if format >= 2 {
		if len(r.b) == 0 {
			r.err = errors.New("truncated parse result")
		} else {
			it.Parse = ParseStatus(r.b[0])
			r.b = r.b[1:]
			it.ParsedAt = fromMillis(r.varint())
			it.ProfileID = r.str()
		}
	}
	if r.err != nil {
		return Item{}, fmt.Errorf("item %s: %w", key, r.err)
	}
	if it.FileName == "" && !it.Message {
		it.FileName = filepath.Base(it.Path)
	}
	return it, nil
}

// Identity is what a folder scan compares to decide that a file is
// unchanged since it was hashed, without reading it.
type Identity struct {
	Dev, Ino uint64
	Size     int64
	MTime    int64 // unix nanoseconds
}

// FileRecord is a folder file's identity and the hash of its content.
type FileRecord struct {
	Identity
	SHA256 [32]byte
}

const fileRecordLen = 8*4 + 32

func encodeFile(r FileRecord) []byte {
	b := make([]byte, fileRecordLen)
	binary.BigEndian.PutUint64(b[0:], r.Dev)
	binary.BigEndian.PutUint64(b[8:], r.Ino)
	binary.BigEndian.PutUint64(b[16:], uint64(r.Size))
	binary.BigEndian.PutUint64(b[24:], uint64(r.MTime))
	copy(b[32:], r.SHA256[:])
	return b
}

func decodeFile(b []byte) (FileRecord, error) {
	if len(b) != fileRecordLen {
		return FileRecord{}, errors.New("malformed file record")
	}
	var r FileRecord
	r.Dev = binary.BigEndian.Uint64(b[0:])
	r.Ino = binary.BigEndian.Uint64(b[8:])
	r.Size = int64(binary.BigEndian.Uint64(b[16:]))
	r.MTime = int64(binary.BigEndian.Uint64(b[24:]))
	copy(r.SHA256[:], b[32:])
	return r, nil
}

// fileKey is an 8-byte hash of the source id, then the path: shorter than
// the 40-character id, and collisions among a config's few sources are
// out of reach.
func fileKey(sourceID, path string) []byte {
	h := fnv.New64a()
	h.Write([]byte(sourceID))
	b := make([]byte, 0, 8+len(path))
	b = h.Sum(b)
	return append(b, path...)
}

func queueKey(due time.Time, sha [32]byte) []byte {
	b := make([]byte, 8, 8+32)
	binary.BigEndian.PutUint64(b, uint64(max(due.UnixNano(), 0)))
	return append(b, sha[:]...)
}

func put32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be32(b []byte) uint32  { return binary.BigEndian.Uint32(b) }
func put64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func be64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
