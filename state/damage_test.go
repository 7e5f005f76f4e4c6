package state

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// goodState writes a state of n items (half uploaded, some leased, with
// file identities) and returns its path and bytes.
func goodState(t testing.TB, n int) (string, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cands []Candidate
	for i := range n {
		c := cand(fmt.Sprint("cv ", i), fmt.Sprintf("/srv/hr/cvs/team%d/Candidate %05d.pdf", i%7, i))
		c.Identity = &Identity{Dev: 1, Ino: uint64(i), Size: 100, MTime: int64(i)}
		cands = append(cands, c)
	}
	if _, err := s.Claim(cands); err != nil {
		t.Fatal(err)
	}
	items, _, err := s.Lease(n/2, nil)
	if err != nil {
		t.Fatal(err)
	}
	var res []Result
	for _, it := range items {
		res = append(res, Result{Key: it.Key, Outcome: Done, Attempted: true, FileID: "f" + it.Hex()[:8]})
	}
	if err := s.Complete(res); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lease(10, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, data
}

// rootPage returns the root page of a bucket of the state at p.
func rootPage(t *testing.T, p string, bucket []byte) int64 {
	t.Helper()
	db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root int64
	db.View(func(tx *bolt.Tx) error { root = int64(tx.Bucket(bucket).Root()); return nil })
	if root < 2 {
		t.Fatalf("bucket %s is inline (root %d): the test needs more items", bucket, root)
	}
	return root
}

// wantDamaged checks that err is the one-line damage report for p.
func wantDamaged(t *testing.T, what string, err error, p string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want the state reported damaged", what)
	}
	var de *DamagedError
	if !errors.Is(err, ErrDamaged) || !errors.As(err, &de) {
		t.Fatalf("%s = %v (%T), want a *DamagedError", what, err, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, p) || !strings.Contains(msg, `"cvfeed state reset"`) || strings.Contains(msg, "\n") {
		t.Errorf("%s = %q, want one line naming %s and \"cvfeed state reset\"", what, msg, p)
	}
}

// TestOpenDamaged: every kind of damage, opened read-only and for writing,
// is a *DamagedError naming the file; a writer leaves the file as it was.
func TestOpenDamaged(t *testing.T) {
	good, data := goodState(t, 3000)
	const page = 4096
	if len(data) < 64*page {
		t.Fatalf("the good state has %d bytes, want a larger one", len(data))
	}
	claimsRoot := rootPage(t, good, bucketItems)
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, len(data))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	flipped := bytes.Clone(data)
	flipped[claimsRoot*page] ^= 0x40 // the page id in the header of the claims' root page
	foreign := filepath.Join(t.TempDir(), "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("users"))
		if err == nil {
			err = b.Put([]byte("alice"), []byte("x"))
		}
		return err
	})
	db.Close()
	foreignData, _ := os.ReadFile(foreign)

	for _, tc := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"truncated at 8 KiB", data[:8<<10], "meta page points past the end of the file: the file has 8192 bytes"},
		{"truncated at 32 KiB", data[:32<<10], "meta page points past the end of the file: the file has 32768 bytes"},
		{"truncated at half", data[:len(data)/2], "meta page points past the end of the file"},
		{"truncated to one page", data[:page], "less than its two meta pages"},
		{"truncated at 100 bytes", data[:100], "the file has 100 bytes and no valid bbolt meta page"},
		{"random bytes", random, "no valid bbolt meta page"},
		{"a text file", []byte(strings.Repeat("Dear HR, please find my CV attached.\n", 500)), "no valid bbolt meta page"},
		{"a foreign bbolt file", foreignData, "not a cvfeed state"},
		{"a flipped byte in a data page", flipped, fmt.Sprintf("page %d says it is page", claimsRoot)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{true, false} {
				s, err := Open(p, &Options{ReadOnly: ro, LockTimeout: 100 * time.Millisecond})
				if err == nil {
					s.Close()
				}
				wantDamaged(t, fmt.Sprintf("Open(read-only %v)", ro), err, p)
				if err != nil && !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("Open(read-only %v) = %v, want the reason %q", ro, err, tc.reason)
				}
				if now, _ := os.ReadFile(p); !bytes.Equal(now, tc.data) {
					t.Fatalf("Open(read-only %v) changed the damaged file", ro)
				}
			}
			// The lock went with the failed Open: a reset can take it.
			if _, err := Reset(p, time.Now(), &Options{LockTimeout: 100 * time.Millisecond}); err != nil {
				t.Errorf("Reset after the failed Open: %v", err)
			}
		})
	}
}

// TestGuardRecoversPanicsAndFaults damages the file under an open store:
// bbolt then panics (a page that is not the page it should be) or faults
// (pages past the end of a truncated file) inside a transaction, and the
// store returns a *DamagedError instead of crashing.
func TestGuardRecoversPanicsAndFaults(t *testing.T) {
	t.Run("panic", func(t *testing.T) {
		p, data := goodState(t, 3000)
		root := rootPage(t, p, bucketItems)
		s, err := Open(p, &Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// The mapping is shared: a write to the file is what bbolt reads.
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{data[root*4096] ^ 0x40}, root*4096); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = s.Counts()
		wantDamaged(t, "Counts", err, p)
		if !strings.Contains(err.Error(), "assertion failed") {
			t.Errorf("Counts = %v, want bbolt's assertion as the reason", err)
		}
		// The transaction was rolled back: the store still answers (and
		// still reports the damage), it does not hang.
		_, err = s.Counts()
		wantDamaged(t, "Counts again", err, p)
	})
	t.Run("fault", func(t *testing.T) {
		p, _ := goodState(t, 3000)
		s, err := Open(p, &Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := os.Truncate(p, 8<<10); err != nil {
			t.Fatal(err)
		}
		_, err = s.Counts()
		wantDamaged(t, "Counts", err, p)
		if !strings.Contains(err.Error(), "a page lies outside the file") {
			t.Errorf("Counts = %v, want the fault as the reason", err)
		}
	})
}

// TestOpenZeroLength: a zero-length file is a new state for a writer,
// ErrEmpty for a reader, and ErrLocked for both while another process
// holds its lock (a cvfeed starting).
func TestOpenZeroLength(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, &Options{ReadOnly: true}); !errors.Is(err, ErrEmpty) {
		t.Errorf("read-only Open of an empty file = %v, want ErrEmpty", err)
	}
	holder, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := lockFile(holder, syscall.LOCK_EX, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		if _, err := Open(p, &Options{ReadOnly: ro, LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
			t.Errorf("Open(read-only %v) of an empty file another process holds = %v, want ErrLocked", ro, err)
		}
	}
	holder.Close()
	s, err := Open(p, nil)
	if err != nil {
		t.Fatalf("writer Open of an empty file: %v", err)
	}
	s.Close()
	s, err = Open(p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open once created: %v", err)
	}
	s.Close()
}

// TestOpenMakesStatePrivate: an existing state_dir of mode 0755 and a
// state file of 0644 are made 0700 and 0600 by a writer, and it says so.
func TestOpenMakesStatePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var")
	os.Mkdir(dir, 0o755)
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, FileName)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Chmod(p, 0o644)
	os.Chmod(dir, 0o755)
	var logs bytes.Buffer
	s, err = Open(p, &Options{Logger: testLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, p: 0o600} {
		fi, _ := os.Stat(path)
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %04o, want %04o", path, got, want)
		}
	}
	if !strings.Contains(logs.String(), "state_dir was open to group or others: made it private") || !strings.Contains(logs.String(), "state file was open") {
		t.Errorf("log = %q, want the two fixes said", logs.String())
	}
}

func testLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
