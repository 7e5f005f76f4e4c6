package state

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// withCodec runs fn with a codec in a write transaction of a new store.
func withCodec(t testing.TB, fn func(cd *codec)) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.update(func(tx *bolt.Tx) error { fn(newCodec(tx)); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestItemRoundTrip(t *testing.T) {
	ms := func(n int64) time.Time { return time.UnixMilli(n) }
	for _, it := range []Item{
		{Key: Key{SourceID: src, SHA256: sum("a")}, Source: "inbox", Status: Pending, Path: "/srv/cv/a.pdf", FileName: "a.pdf",
			Size: 12, Received: ms(1530607434000), Created: ms(1700000000123), Updated: ms(1700000000456), NextAttempt: ms(1700000001000)},
		{Key: Key{SourceID: src, SHA256: sum("b")}, Source: "jobs", Status: Uploaded, Attempts: 3, MaybeSent: true,
			Path: "/var/spool/x", Origin: "jobs@example.com/INBOX/12/345/2", FileName: "Lebenslauf Müller.pdf", Size: 1 << 40,
			LastError: "api: 503 Service Unavailable", FileID: "0123456789abcdef0123456789abcdef01234567",
			Created: ms(1), Updated: ms(2), UploadedAt: ms(3), Parse: Parsed, ProfileID: "p123", ParsedAt: ms(4)},
		{Key: Key{SourceID: src, SHA256: sum("c")}, Status: Failed, Path: "", FileName: "."},
		{Key: Key{SourceID: src, SHA256: sum("d")}, Status: Pending, Path: "relative.pdf", FileName: "other name.pdf", FileID: "ABCDEF", ProfileID: "abc",
			Created: ms(1700000000000), Updated: ms(1699999999000), NextAttempt: ms(1800000000000), Message: true, flags: 4},
		{Key: Key{SourceID: "other", SHA256: sum("e")}, Status: Uploaded, Path: "/a.pdf", FileName: "a.pdf", Created: ms(5), Updated: ms(5), UploadedAt: ms(5)},
	} {
		withCodec(t, func(cd *codec) {
			v, err := cd.encodeItem(&it)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cd.decodeItem(it.Key, v)
			if err != nil {
				t.Fatalf("decodeItem: %v", err)
			}
			if !reflect.DeepEqual(got, it) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, it)
			}
			st, parse, source, err := cd.countItem(v)
			if err != nil || st != it.Status || parse != it.Parse || source != it.Source {
				t.Errorf("countItem = %v, %v, %q, %v; want %v, %v, %q", st, parse, source, err, it.Status, it.Parse, it.Source)
			}
		})
	}
}

// TestItemRecordSize keeps the record of an uploaded folder file small:
// the 661 bytes per file came from records three times their need.
func TestItemRecordSize(t *testing.T) {
	now := time.UnixMilli(1790000000123)
	it := Item{Key: Key{SourceID: src, SHA256: sum("a")}, Source: "inbox", Status: Uploaded, Attempts: 1,
		Path: "/srv/hr/cvs/2024/Data Scientist/Candidate Name 00001 - CV.pdf", FileName: "Candidate Name 00001 - CV.pdf", Size: 123456,
		Received: now.Add(-30 * 24 * time.Hour), Created: now, Updated: now.Add(2 * time.Second), UploadedAt: now.Add(2 * time.Second),
		FileID: "0123456789abcdef0123456789abcdef01234567"}
	withCodec(t, func(cd *codec) {
		v, err := cd.encodeItem(&it)
		if err != nil {
			t.Fatal(err)
		}
		// 3 + attempts 1 + size 3 + created 6 + 3 deltas 5 + received 6 +
		// parse 2 + source 6 + dir 1 + name 30 + 4 empty strings + id 21.
		if want := 3 + 1 + 3 + 6 + 5 + 6 + 2 + 6 + 1 + 30 + 3 + 21 + 1; len(v) > want {
			t.Errorf("record of an uploaded file: %d bytes, want at most %d", len(v), want)
		}
		withV2 := encodeItemV2(&it)
		t.Logf("item record: %d bytes (schema 4: %d)", len(v), len(withV2))
	})
}

func FuzzDecodeItem(f *testing.F) {
	it := Item{Key: Key{SourceID: src}, Source: "s", Status: Pending, Path: "/p", Size: 3}
	withCodec(f, func(cd *codec) {
		v, _ := cd.encodeItem(&it)
		f.Add(v)
	})
	f.Add([]byte{itemFormat, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		withCodec(t, func(cd *codec) {
			if _, err := cd.encodeItem(&Item{Path: "/p"}); err != nil { // directory 1
				t.Fatal(err)
			}
			got, err := cd.decodeItem(it.Key, v)
			if err != nil {
				return
			}
			again, err := cd.encodeItem(&got)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cd.decodeItem(it.Key, again); err != nil {
				t.Fatalf("re-encoded item does not decode: %v", err)
			}
		})
	})
}

// TestDecodeFormat1 reads a record written before the parse result was
// kept (schema 4's decoder, used by the migration).
func TestDecodeFormat1(t *testing.T) {
	it := Item{Key: Key{SourceID: src, SHA256: sum("old")}, Source: "inbox", Status: Uploaded, Attempts: 1, Path: "/cv/old.pdf", FileName: "old.pdf", Size: 3, FileID: "f"}
	v := encodeItemV2(&it)
	// Strip the format 2 tail (parse byte, ParsedAt 0, empty ProfileID).
	v = append([]byte{1}, v[1:len(v)-3]...)
	got, err := decodeItemV2(it.Key.bytes(), v)
	if err != nil || !reflect.DeepEqual(got, it) {
		t.Errorf("format 1 record: %+v, %v; want %+v", got, err, it)
	}
}
