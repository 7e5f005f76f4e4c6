package state

import (
	"reflect"
	"testing"
	"time"
)

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
	} {
		v, err := encodeItem(&it)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeItem(it.Key.bytes(), v)
		if err != nil {
			t.Fatalf("decodeItem: %v", err)
		}
		if !reflect.DeepEqual(got, it) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, it)
		}
	}
}

func FuzzDecodeItem(f *testing.F) {
	it := Item{Key: Key{SourceID: src}, Source: "s", Status: Pending, Path: "/p", Size: 3}
	v, _ := encodeItem(&it)
	f.Add(v)
	f.Add([]byte{itemFormat, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := decodeItem(it.Key.bytes(), v)
		if err != nil {
			return
		}
		again, err := encodeItem(&got)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeItem(it.Key.bytes(), again); err != nil {
			t.Fatalf("re-encoded item does not decode: %v", err)
		}
	})
}

// TestDecodeFormat1 reads a record written before the parse result was
// kept.
func TestDecodeFormat1(t *testing.T) {
	it := Item{Key: Key{SourceID: src, SHA256: sum("old")}, Source: "inbox", Status: Uploaded, Attempts: 1, Path: "/cv/old.pdf", FileName: "old.pdf", Size: 3, FileID: "f"}
	v, _ := encodeItem(&it)
	// Strip the format 2 tail (parse byte, ParsedAt 0, empty ProfileID).
	v = append([]byte{1}, v[1:len(v)-3]...)
	got, err := decodeItem(it.Key.bytes(), v)
	if err != nil || !reflect.DeepEqual(got, it) {
		t.Errorf("format 1 record: %+v, %v; want %+v", got, err, it)
	}
}
