package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// formField is a text part of a multipart upload.
type formField struct{ name, value string }

// postFile posts the fields of u and then u's file as multipart/form-data
// to path, streamed from disk with a known Content-Length: memory use does
// not depend on the file size. The answer's data is decoded into out. Both
// API flavours upload through it; only their fields differ. The fields are
// made once the file is open, so that the date sent can be the one of the
// file being sent (see reception).
func (c *conn) postFile(ctx context.Context, path string, fields func(Upload) []formField, u Upload, out any) error {
	boundary := c.boundary()
	suffix := "\r\n--" + boundary + "--\r\n"
	open := func() (*checkedFile, error) {
		f, err := c.open(u.Path)
		if err != nil {
			return nil, &FileError{Path: u.Path, Err: err}
		}
		return &checkedFile{f: f, path: u.Path, left: u.Size, want: u.SHA256, h: sha256.New()}, nil
	}
	body, err := open()
	if err != nil {
		return err
	}
	defer body.Close()
	if u.Received, err = c.reception(u, body.f); err != nil {
		return err
	}
	prefix := multipartPrefix(boundary, fields(u), u.FileName)
	// Uploads get the base timeout plus time for the bytes at a slow
	// 256 KiB/s, so that a big file on a slow link is not cut off.
	ctx, cancel := context.WithTimeout(ctx, c.timeout+time.Duration(u.Size/(256<<10))*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(path, nil),
		newUploadBody(prefix, body, suffix))
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req.ContentLength = int64(len(prefix)) + u.Size + int64(len(suffix))
	req.GetBody = func() (io.ReadCloser, error) {
		b, err := open()
		if err != nil {
			return nil, err
		}
		return newUploadBody(prefix, b, suffix), nil
	}
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	err = c.do(req, out)
	if body.err != nil {
		// The file changed under us: the request was cut short, the
		// API cannot have accepted it.
		return body.err
	}
	return err
}

// uploadBody is the multipart body: the fields and the file part's header,
// the file, the closing boundary. Each Read fills as much of p as it can
// across those parts, so the transport sends a small CV in one write
// instead of one per part.
type uploadBody struct {
	file *checkedFile
	r    io.Reader
}

func newUploadBody(prefix []byte, file *checkedFile, suffix string) *uploadBody {
	return &uploadBody{file: file, r: io.MultiReader(bytes.NewReader(prefix), file, strings.NewReader(suffix))}
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := b.r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (b *uploadBody) Close() error { return b.file.Close() }

// multipartPrefix writes every field, then the header of the file part.
func multipartPrefix(boundary string, fields []formField, fileName string) []byte {
	// The layout is mime/multipart.Writer's (the tests read it back with
	// mime/multipart); writing it directly saves the Writer's header maps
	// and sorting on every upload. Field names are constants and values
	// sit in part bodies, which need no escaping; only the file name is
	// quoted. The boundary has 40 random characters: no value holds it.
	size := 256 + len(fileName)
	for _, f := range fields {
		size += 64 + len(boundary) + len(f.name) + len(f.value)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	for _, f := range fields {
		buf.WriteString("--")
		buf.WriteString(boundary)
		buf.WriteString("\r\nContent-Disposition: form-data; name=\"")
		buf.WriteString(f.name)
		buf.WriteString("\"\r\n\r\n")
		buf.WriteString(f.value)
		buf.WriteString("\r\n")
	}
	buf.WriteString("--")
	buf.WriteString(boundary)
	buf.WriteString("\r\nContent-Disposition: form-data; name=\"file\"; filename=\"")
	buf.WriteString(quoteName(fileName))
	buf.WriteString("\"\r\nContent-Type: ")
	buf.WriteString(contentType(fileName))
	buf.WriteString("\r\n\r\n")
	return buf.Bytes()
}

// quoteName makes a file name safe inside a quoted header parameter: no
// control characters, quotes and backslashes escaped as browsers do.
func quoteName(name string) string {
	if plainName(name) {
		return name // the usual case, without a copy
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, "_"))
	if name == "" {
		name = "cv"
	}
	return nameEscaper.Replace(name)
}

// nameEscaper escapes quotes and backslashes in a quoted parameter. A
// Replacer is safe for concurrent use, and building one costs more than
// the replacement: one for the package.
var nameEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// plainName reports whether quoteName would return name unchanged: not
// empty, valid UTF-8, no control character, quote or backslash.
func plainName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// contentType is the declared type of the file part, from the extension;
// the API reads the bytes anyway.
func contentType(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".pdf":
		return "application/pdf"
	case ".doc", ".dot":
		return "application/msword"
	case ".docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case ".dotx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.template"
	case ".odt":
		return "application/vnd.oasis.opendocument.text"
	case ".odp":
		return "application/vnd.oasis.opendocument.presentation"
	case ".rtf":
		return "application/rtf"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".bmp":
		return "image/bmp"
	case ".tif", ".tiff":
		return "image/tiff"
	case ".ppt":
		return "application/vnd.ms-powerpoint"
	case ".pptx":
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	case ".msg":
		return "application/vnd.ms-outlook"
	}
	return "application/octet-stream"
}

// checkedFile streams exactly the claimed size and hash: if the file ends
// early, grows, or hashes differently, Read fails before the last byte is
// handed over, so the request is aborted instead of sending other content
// under this content's reference.
//
// The file was hashed when it was claimed, and it is hashed again here on
// purpose. Comparing an fstat of the open file with the identity taken at
// the claim (device, inode, size, mtime and ctime in nanoseconds) would
// save that second SHA-256 (about 6 µs of a 10 KiB CV), but it is not
// sound: the kernel stamps mtime and ctime from a coarse clock (a timer
// tick, several ms, on kernels and file systems without multigrain
// timestamps), so a write in the same tick as the scan's read leaves both
// unchanged; a network share's attributes come from the server's clock
// and the client's attribute cache; and the identity in state has no
// ctime. The hash is the only check that holds everywhere.
type checkedFile struct {
	f        *os.File
	path     string
	left     int64
	want     [32]byte
	h        hash.Hash
	err      error
	verified bool
}

func (c *checkedFile) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if err := c.finish(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.f.Read(p)
	c.h.Write(p[:n])
	c.left -= int64(n)
	switch {
	case c.left == 0:
		// The last bytes are only handed over once the whole file
		// proved to be the claimed content.
		if err := c.finish(); err != nil {
			return 0, err
		}
		return n, nil
	case err == io.EOF:
		c.err = &FileError{Path: c.path, Err: fmt.Errorf("%w (%d bytes shorter than scanned)", ErrChanged, c.left)}
		return 0, c.err
	case err != nil:
		c.err = &FileError{Path: c.path, Err: err}
		return 0, c.err
	}
	return n, nil
}

// finish checks, once, that the file ends here and hashes as claimed.
func (c *checkedFile) finish() error {
	if c.verified {
		return nil
	}
	var one [1]byte
	if n, _ := c.f.Read(one[:]); n > 0 {
		c.err = &FileError{Path: c.path, Err: fmt.Errorf("%w (longer than scanned)", ErrChanged)}
		return c.err
	}
	var got [32]byte
	c.h.Sum(got[:0])
	if got != c.want {
		c.err = &FileError{Path: c.path, Err: ErrChanged}
		return c.err
	}
	c.verified = true
	return nil
}

func (c *checkedFile) Close() error { return c.f.Close() }
