package state

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strings"
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
	// flags keeps the record's flag bits this package does not know (a
	// bit a newer part of cvfeed sets survives a rewrite by this one).
	flags byte
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

// retire empties what an uploaded item says of its file, once an
// after-action moved the file to done_dir or deleted it: where it was and
// is, its names, size and date. Nothing reads them again (the upload is
// done, and a second file with the same content is a duplicate by its key
// alone); what stays is what exactly-once, cvfeed report and the
// API's answer need: the key, the status, the source, the attempts, the
// times and the API's ids. Over 100,000 moved files that is 45 bytes of
// record per item instead of 80.
func (it *Item) retire() {
	it.Path, it.Origin, it.FileName, it.LastError = "", "", "", ""
	it.Size, it.Received, it.NextAttempt, it.MaybeSent = 0, time.Time{}, time.Time{}, false
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
//
// Format 3 (schema 6, codec.encodeItem) stores each time but Created as a
// difference from another (a few bytes), the path as its directory's number
// and its name (layout.go), the file name only when it is not the path's,
// and a file id in hex as its bytes. Format 4 (schema 7) stores the source
// name as its number (layout.go) and the reception time as a difference
// from the creation time; format 3 is still read. Formats 1 and 2 (schema
// 4 and before, keyed by source id 0x00 sha256) are read by decodeItemV2,
// to migrate them; format 2 added the parse result at the end.
const (
	itemFormat   = 4
	itemFormatV3 = 3
)

// Flags of the record's third byte. Bits this package does not know are
// kept as they are (Item.flags).
const (
	flagMaybeSent = 1
	// flagMessage is an item that stands for a mail message (issue 10).
	flagMessage = 2
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

// appendDelta appends t as a difference from base: 0 for an unset t, else
// the zigzag of the difference in milliseconds, plus one.
func appendDelta(b []byte, t, base time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	d := millis(t) - millis(base)
	return binary.AppendUvarint(b, uint64(d<<1^d>>63)+1)
}

func (r *itemReader) delta(base time.Time) time.Time {
	u := r.uvarint()
	if u == 0 {
		return time.Time{}
	}
	u--
	d := int64(u>>1) ^ -int64(u&1)
	return time.UnixMilli(millis(base) + d)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendID appends an API id: lowercase hex of even length as its bytes
// (a 40-character file id takes 21 bytes), any other text as it is.
func appendID(b []byte, s string) []byte {
	if len(s) > 0 && len(s)%2 == 0 && isLowerHex(s) {
		b = binary.AppendUvarint(b, uint64(len(s)/2)<<1|1)
		b, _ = hex.AppendDecode(b, []byte(s)) // hex: checked above
		return b
	}
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (r *itemReader) id() string {
	u := r.uvarint()
	n := u >> 1
	if n > uint64(len(r.b)) {
		r.err = errors.New("truncated id")
		r.b = nil
		return ""
	}
	raw := r.b[:n]
	r.b = r.b[n:]
	if u&1 == 1 {
		return hex.EncodeToString(raw)
	}
	return string(raw)
}

// encodeItem is format 4: format, status, flags, then attempts, size,
// created, updated-created, uploaded-updated, next-updated,
// received-created, parse, parsed-updated, source name number, dir number
// (0: no path), name, origin,
// origin (a directory number when it is the path's name elsewhere), file
// name ("" when the name's), last error, file id, profile id.
func (c *codec) encodeItem(it *Item) ([]byte, error) {
	dir, name := splitPath(it.Path)
	fileName := it.FileName
	if fileName == name && !it.Message {
		fileName = ""
	}
	srcName, err := c.sourceName(it.Source)
	if err != nil {
		return nil, err
	}
	var dirNo uint32
	if it.Path != "" {
		n, _, err := c.dir(dir, true)
		if err != nil {
			return nil, err
		}
		dirNo = n
	}
	b := make([]byte, 0, 48+len(it.Source)+len(name)+len(it.Origin)+len(fileName)+len(it.LastError)+len(it.FileID)+len(it.ProfileID))
	flags := it.flags &^ (flagMaybeSent | flagMessage)
	if it.MaybeSent {
		flags |= flagMaybeSent
	}
	if it.Message {
		flags |= flagMessage
	}
	b = append(b, itemFormat, byte(it.Status), flags)
	b = binary.AppendUvarint(b, uint64(max(it.Attempts, 0)))
	b = binary.AppendUvarint(b, uint64(max(it.Size, 0)))
	b = binary.AppendVarint(b, millis(it.Created))
	b = appendDelta(b, it.Updated, it.Created)
	b = appendDelta(b, it.UploadedAt, it.Updated)
	b = appendDelta(b, it.NextAttempt, it.Updated)
	b = appendDelta(b, it.Received, it.Created)
	b = append(b, byte(it.Parse))
	b = appendDelta(b, it.ParsedAt, it.Updated)
	b = binary.AppendUvarint(b, uint64(srcName))
	b = binary.AppendUvarint(b, uint64(dirNo))
	b = appendStr(b, name)
	// A moved file's origin is where HR put it: the same name in another
	// directory, stored as that directory's number.
	odir, oname := splitPath(it.Origin)
	if it.Origin != "" && it.Path != "" && oname == name && strings.HasPrefix(it.Origin, "/") {
		n, _, err := c.dir(odir, true)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(n)<<1|1)
	} else {
		b = binary.AppendUvarint(b, uint64(len(it.Origin))<<1)
		b = append(b, it.Origin...)
	}
	b = appendStr(b, fileName)
	b = appendStr(b, it.LastError)
	b = appendID(b, it.FileID)
	b = appendID(b, it.ProfileID)
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

func (r *itemReader) byte() byte {
	if len(r.b) == 0 {
		r.err = errors.New("truncated record")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
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

// countItem reads from a format 4 or 3 record only what counting needs:
// its status, its parse result and its source name, without the rest
// (paths, ids, strings): cvfeed status and a backfill's summary count
// every item of the state.
func (c *codec) countItem(v []byte) (Status, ParseStatus, string, error) {
	if len(v) < 3 || v[0] != itemFormat && v[0] != itemFormatV3 {
		return 0, 0, "", errors.New("unknown record format")
	}
	r := &itemReader{b: v[3:]}
	for range 6 { // attempts, size, created, updated, uploaded, next
		r.uvarint()
	}
	r.uvarint() // received
	parse := ParseStatus(r.byte())
	r.uvarint() // parsed
	var name string
	if v[0] == itemFormatV3 {
		name = r.str()
	} else if n := r.uvarint(); r.err == nil {
		if n > 0xFFFF {
			return 0, 0, "", fmt.Errorf("source name number %d", n)
		}
		var err error
		if name, err = c.nameOf(uint16(n)); err != nil {
			return 0, 0, "", err
		}
	}
	if r.err != nil {
		return 0, 0, "", r.err
	}
	return Status(v[1]), parse, name, nil
}

// decodeItem reads a format 4 or 3 record of the item k.
func (c *codec) decodeItem(key Key, v []byte) (Item, error) {
	if len(v) < 3 || v[0] != itemFormat && v[0] != itemFormatV3 {
		return Item{}, fmt.Errorf("item %s: unknown record format", key)
	}
	v3 := v[0] == itemFormatV3
	it := Item{Key: key, Status: Status(v[1]), MaybeSent: v[2]&flagMaybeSent != 0, Message: v[2]&flagMessage != 0, flags: v[2] &^ (flagMaybeSent | flagMessage)}
	r := &itemReader{b: v[3:]}
	it.Attempts = int(r.uvarint())
	it.Size = int64(r.uvarint())
	it.Created = fromMillis(r.varint())
	it.Updated = r.delta(it.Created)
	it.UploadedAt = r.delta(it.Updated)
	it.NextAttempt = r.delta(it.Updated)
	if v3 {
		it.Received = fromMillis(r.varint())
	} else {
		it.Received = r.delta(it.Created)
	}
	it.Parse = ParseStatus(r.byte())
	it.ParsedAt = r.delta(it.Updated)
	if v3 {
		it.Source = r.str()
	} else if n := r.uvarint(); r.err == nil {
		if n > 0xFFFF {
			return Item{}, fmt.Errorf("item %s: source name number %d", key, n)
		}
		name, err := c.nameOf(uint16(n))
		if err != nil {
			return Item{}, fmt.Errorf("item %s: %w", key, err)
		}
		it.Source = name
	}
	dirNo := r.uvarint()
	name := r.str()
	originDir := uint64(0)
	if u := r.uvarint(); u&1 == 1 {
		originDir = u >> 1
	} else if n := u >> 1; n > uint64(len(r.b)) {
		r.err = errors.New("truncated origin")
		r.b = nil
	} else {
		it.Origin = string(r.b[:n])
		r.b = r.b[n:]
	}
	it.FileName, it.LastError = r.str(), r.str()
	it.FileID, it.ProfileID = r.id(), r.id()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes too many", len(r.b))
	}
	if r.err != nil {
		return Item{}, fmt.Errorf("item %s: %w", key, r.err)
	}
	if dirNo != 0 {
		if dirNo > 0xFFFFFFFF {
			return Item{}, fmt.Errorf("item %s: directory number %d", key, dirNo)
		}
		dir, err := c.dirOf(uint32(dirNo))
		if err != nil {
			return Item{}, fmt.Errorf("item %s: %w", key, err)
		}
		it.Path = dir + name
	}
	if originDir != 0 {
		if originDir > 0xFFFFFFFF {
			return Item{}, fmt.Errorf("item %s: directory number %d", key, originDir)
		}
		dir, err := c.dirOf(uint32(originDir))
		if err != nil {
			return Item{}, fmt.Errorf("item %s: %w", key, err)
		}
		it.Origin = dir + name
	}
	if it.FileName == "" && !it.Message {
		it.FileName = name
	}
	return it, nil
}

// decodeItemV2 reads a record of schema 4 and before: formats 1 and 2,
// keyed by source id 0x00 sha256.
func decodeItemV2(k, v []byte) (Item, error) {
	key, err := parseKey(k)
	if err != nil {
		return Item{}, err
	}
	if len(v) < 3 || v[0] < 1 || v[0] > 2 {
		return Item{}, fmt.Errorf("item %s: unknown record format", key)
	}
	format := v[0]
	it := Item{Key: key, Status: Status(v[1]), MaybeSent: v[2]&flagMaybeSent != 0, Message: v[2]&flagMessage != 0, flags: v[2] &^ (flagMaybeSent | flagMessage)}
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

// A file record (schema 6) is dev, ino and size as uvarints, the mtime
// as a varint, then the SHA-256: 45 bytes for a usual file, 64 before.
func encodeFile(r FileRecord) []byte {
	b := make([]byte, 0, 4*binary.MaxVarintLen64+32)
	b = binary.AppendUvarint(b, r.Dev)
	b = binary.AppendUvarint(b, r.Ino)
	b = binary.AppendUvarint(b, uint64(max(r.Size, 0)))
	b = binary.AppendVarint(b, r.MTime)
	return append(b, r.SHA256[:]...)
}

func decodeFile(b []byte) (FileRecord, error) {
	r := &itemReader{b: b}
	var f FileRecord
	f.Dev = r.uvarint()
	f.Ino = r.uvarint()
	f.Size = int64(r.uvarint())
	f.MTime = r.varint()
	if r.err != nil || len(r.b) != 32 {
		return FileRecord{}, errors.New("malformed file record")
	}
	copy(f.SHA256[:], r.b)
	return f, nil
}

// decodeFileV4 reads a file record of schema 4 and before: four
// big-endian uint64 and the SHA-256.
func decodeFileV4(b []byte) (FileRecord, error) {
	if len(b) != 8*4+32 {
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

// fileKeyV4 was the key of a file identity in schema 4 and before: an
// 8-byte hash of the source id, then the path.
func fileKeyV4(sourceID, path string) []byte {
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
