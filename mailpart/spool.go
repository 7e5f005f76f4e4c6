package mailpart

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Spool decodes the transfer encoding enc of r while writing the bytes to
// a new file in dir, hashing them on the way, and names the file after
// their SHA-256: dir/<64 hex>. Content that is spooled already is not
// written twice: the new copy is dropped, the existing file's mtime set to
// now (the spool cleaner keeps recent files) and its path returned.
// Memory stays constant whatever the part's size.
//
// Past max decoded bytes (max > 0) it stops and returns ErrTooLarge; an
// encoding it cannot undo gives ErrUnsupportedEncoding. On any error no
// file is left behind. The file is mode 0600 and not synced: the state
// store's batched commit is the durability point, and a spool file lost
// in a crash is fetched again.
func Spool(dir string, enc string, r io.Reader, max int64) (path string, sha [32]byte, size int64, err error) {
	dec, err := Decode(enc, r)
	if err != nil {
		return "", sha, 0, err
	}
	f, err := os.CreateTemp(dir, ".spool-*")
	if err != nil {
		return "", sha, 0, fmt.Errorf("spool: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return "", sha, 0, fmt.Errorf("spool: %w", err)
	}
	h := sha256.New()
	src := dec
	if max > 0 {
		src = io.LimitReader(dec, max+1)
	}
	size, err = io.Copy(io.MultiWriter(f, h), src)
	if errors.Is(err, ErrTooLarge) || (err == nil && max > 0 && size > max) {
		return "", sha, 0, ErrTooLarge
	}
	if err != nil {
		return "", sha, 0, fmt.Errorf("spool: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return "", sha, 0, fmt.Errorf("spool: %w", err)
	}
	h.Sum(sha[:0])
	path = filepath.Join(dir, hex.EncodeToString(sha[:]))
	if _, statErr := os.Lstat(path); statErr == nil {
		os.Remove(tmp) // same bytes spooled already
		// The spool cleaner removes files older than an hour that no
		// pending item uses: this one is about to be claimed again.
		now := time.Now()
		if err = os.Chtimes(path, now, now); err != nil {
			return "", sha, 0, fmt.Errorf("spool: %w", err)
		}
		return path, sha, size, nil
	}
	if err = os.Rename(tmp, path); err != nil {
		return "", sha, 0, fmt.Errorf("spool: %w", err)
	}
	return path, sha, size, nil
}
