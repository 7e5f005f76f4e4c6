package state

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheckFile feeds damaged state files to the validation. Whatever it
// lets through must be safe for bbolt: a writer's Open (with bbolt's
// free-list scan on a goroutine of its own, where a panic would crash the
// process), counting, and tx.Check.
func FuzzCheckFile(f *testing.F) {
	_, small := goodState(f, 40)
	f.Add(small)
	for _, off := range []int{4096 + 16, 2*4096 + 20, 3*4096 + 10, 3*4096 + 40, 4*4096 + 16} {
		if off < len(small) {
			b := append([]byte(nil), small...)
			b[off] ^= 0xff
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkBytes(data) != "" {
			return
		}
		p := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, nil)
		if err != nil {
			return // an error is fine; a crash is not
		}
		defer s.Close()
		s.Counts()
		s.Check()
	})
}
