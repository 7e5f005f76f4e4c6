package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestBindAPI(t *testing.T) {
	s := openTest(t, newClock())
	const sandbox, real = "riminder sandbox", "riminder https://www.riminder.net/sf/public/api/v1.0"
	// An empty state binds to whatever API runs it, again and again.
	for _, api := range []string{sandbox, real, sandbox} {
		b, err := s.BindAPI(api)
		if err != nil || !b.Changed || !b.Empty {
			t.Fatalf("BindAPI(%q) on an empty state = %+v, %v; want it bound", api, b, err)
		}
	}
	if _, err := s.Claim([]Candidate{cand("a", "/srv/a.pdf")}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.BindAPI(sandbox); err != nil || b.Changed {
		t.Errorf("BindAPI(same) = %+v, %v; want nothing to do", b, err)
	}
	if err := s.CheckAPI(real); !errors.Is(err, ErrOtherAPI) {
		t.Errorf("CheckAPI(other) with items = %v, want ErrOtherAPI", err)
	}
	if err := s.CheckAPI(sandbox); err != nil {
		t.Errorf("CheckAPI(same) = %v", err)
	}
	_, err := s.BindAPI(real)
	var me *APIMismatchError
	if !errors.Is(err, ErrOtherAPI) || !errors.As(err, &me) {
		t.Fatalf("BindAPI(other) with items = %v, want an *APIMismatchError", err)
	}
	// Bound to the sandbox, the only way to another API is a new
	// state_dir: the message does not offer a rebind, and a rebind is
	// refused.
	for _, want := range []string{s.Path(), `"` + sandbox + `"`, `"` + real + `"`, "new state_dir", "not the same API"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("mismatch = %q, want it to say %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "rebind") {
		t.Errorf("mismatch from the sandbox = %q offers a rebind", err)
	}
	if _, err := s.RebindAPI(real); !errors.Is(err, ErrOtherAPI) || !strings.Contains(err.Error(), "embedded sandbox") {
		t.Errorf("RebindAPI from the sandbox = %v, want refused naming the embedded sandbox", err)
	}
	if got, _ := s.BoundAPI(); got != sandbox {
		t.Errorf("BoundAPI after the refusals = %q, want %q", got, sandbox)
	}
	// Bound to a real API, a new address of it may be rebound; another
	// flavour may not.
	s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyAPI, []byte(real)) })
	const moved = "riminder https://riminder.internal.example/api/v1.0"
	_, err = s.BindAPI(moved)
	for _, want := range []string{`"` + real + `"`, `"` + moved + `"`, "new state_dir", `"cvfeed state rebind"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mismatch = %v, want it to say %s", err, want)
		}
	}
	if _, err := s.RebindAPI("hrflow https://api.hrflow.ai/v1"); !errors.Is(err, ErrOtherAPI) {
		t.Errorf("RebindAPI to another flavour = %v, want refused", err)
	}
	prev, err := s.RebindAPI(moved)
	if err != nil || prev != real {
		t.Fatalf("RebindAPI = %q, %v; want the previous API %q", prev, err, real)
	}
	if b, err := s.BindAPI(moved); err != nil || b.Changed {
		t.Errorf("BindAPI after the rebind = %+v, %v", b, err)
	}
	// A state of an older cvfeed (items, no API): bound on the first
	// write open.
	s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyAPI) })
	if b, err := s.BindAPI(sandbox); err != nil || !b.Changed || b.Empty || b.Previous != "" {
		t.Errorf("BindAPI on an unbound state with items = %+v, %v; want it bound", b, err)
	}
}

func TestCheck(t *testing.T) {
	p, _ := goodState(t, 500)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if problems, err := s.Check(); err != nil || len(problems) != 0 {
		t.Fatalf("Check of a sound state = %q, %v", problems, err)
	}
	// Break the invariant: a pending item out of the queue, an uploaded
	// one leased.
	var pending, uploaded Key
	s.Items(func(it Item) error {
		if it.Status == Pending {
			pending = it.Key
		} else {
			uploaded = it.Key
		}
		return nil
	})
	s.update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue).Bucket([]byte(pending.SourceID))
		c := q.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if bytes.Equal(k[8:], pending.SHA256[:]) {
				if err := q.Delete(k); err != nil {
					return err
				}
				break
			}
		}
		return tx.Bucket(bucketLeased).Put(uploaded.bytes(), put64(1))
	})
	problems, err := s.Check()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("item %s is leased but not pending", uploaded),
		fmt.Sprintf("pending item %s is queued or leased 0 times, want once", pending),
	}
	if !reflect.DeepEqual(problems, want) {
		t.Errorf("Check = %q, want %q", problems, want)
	}
}

func TestBackupWhileWriting(t *testing.T) {
	p, _ := goodState(t, 2000)
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A writer goes on while the copy is made.
	done := make(chan error, 1)
	go func() {
		for i := range 50 {
			if _, err := s.Claim([]Candidate{cand(fmt.Sprint("new ", i), fmt.Sprintf("/srv/new%d.pdf", i))}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	dst := filepath.Join(t.TempDir(), "backup.db")
	os.WriteFile(dst, []byte("an older backup"), 0o644)
	n, err := s.Backup(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Size() != n || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup: %v, size %d (Backup said %d), mode %v; want mode 0600", err, fi.Size(), n, fi.Mode())
	}
	c, err := Open(dst, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	defer c.Close()
	got, _ := c.Counts()
	if n := got["inbox"].Pending + got["inbox"].Uploaded; n < 2000 || n > 2050 {
		t.Errorf("backup holds %d items, want 2000 to 2050: %+v", n, got)
	}
	if problems, err := c.Check(); err != nil || len(problems) != 0 {
		t.Errorf("Check of the backup = %q, %v", problems, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".backup.db.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestReset(t *testing.T) {
	p, _ := goodState(t, 100)
	holder, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Reset(p, time.Now(), &Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("Reset while another holds the state = %v, want ErrLocked", err)
	}
	holder.Close()
	os.Chmod(p, 0o644)
	data, _ := os.ReadFile(p)
	at := time.Date(2026, 12, 1, 10, 15, 0, 0, time.FixedZone("CET", 3600))
	aside, err := Reset(p, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := p + ".damaged-20261201T091500Z"; aside != want {
		t.Errorf("kept aside as %s, want %s", aside, want)
	}
	kept, _ := os.ReadFile(aside)
	fi, _ := os.Stat(aside)
	if !bytes.Equal(kept, data) || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file kept aside differs from the state, or its mode is %v (want 0600)", fi.Mode())
	}
	s, err := Open(p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Counts(); len(c) != 0 {
		t.Errorf("the new state holds %v, want nothing", c)
	}
	s.Close()
	// A second reset in the same second keeps both.
	if aside2, err := Reset(p, at, nil); err != nil || aside2 != aside+"-2" {
		t.Errorf("second Reset = %s, %v; want %s-2", aside2, err, aside)
	}
}
