package mailpart

import (
	"fmt"
	"io"
	"os"
	"strconv"
)

// SkipTNEF is why AcceptContent refuses a TNEF container (winmail.dat)
// under every policy: its files are taken by UnpackTNEF, never the
// container, which no CV parser reads (and whose first KiB often holds the
// "%PDF-" of the PDF inside).
const SkipTNEF = "TNEF container (winmail.dat): its files are taken, not the container"

// UnpackTNEF takes the files out of a TNEF container part: r reads the
// part's decoded bytes (its first bytes pass IsTNEF). The container is
// written to a temporary file in dir (removed before return; at most
// maxSize bytes when maxSize > 0, else ErrTooLarge), read with ReadTNEF,
// and visit is called for each file with a PartRef of its own: the
// container's Path, Section "<container section>/tnef-N", InTNEF set,
// Disposition "attachment", Encoding "binary", the file's name and size.
// The same accept rules as for any part then apply to it.
//
// It returns how many files it gave visit. On a damaged container the
// files before the damage are visited and an error wrapping ErrBadTNEF is
// returned; an error from r or from visit is returned as it is.
func UnpackTNEF(ref PartRef, r io.Reader, dir string, maxSize int64, visit func(PartRef, io.Reader) error) (int, error) {
	f, err := os.CreateTemp(dir, ".tnef-*")
	if err != nil {
		return 0, fmt.Errorf("tnef: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	size, err := io.Copy(f, src)
	if err != nil {
		return 0, err
	}
	if maxSize > 0 && size > maxSize {
		return 0, ErrTooLarge
	}
	files, tnefErr := ReadTNEF(f, size)
	for i, file := range files {
		in := PartRef{
			Path:        ref.Path,
			Section:     ref.Section + "/tnef-" + strconv.Itoa(i+1),
			Filename:    file.Name,
			Type:        file.Type,
			Disposition: "attachment",
			Encoding:    "binary",
			Size:        file.Data.Size(),
			InRFC822:    ref.InRFC822,
			InTNEF:      true,
			Reason:      reasonTNEF,
		}
		if err := visit(in, file.Data); err != nil {
			return i, err
		}
	}
	return len(files), tnefErr
}
