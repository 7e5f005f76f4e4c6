package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cvfeed/cvfeed/internal/fileio"
)

// Upload is one file to send with POST profile.
type Upload struct {
	SourceID string
	// Path is the file streamed as the file part.
	Path string
	// FileName is the name the API sees (never a path).
	FileName string
	// Size and SHA256 are what the file held when it was claimed: a file
	// that no longer matches is not sent (a *FileError).
	Size   int64
	SHA256 [32]byte
	// Reference is the profile_reference.
	Reference string
	// Received is timestamp_reception; zero leaves it out.
	Received time.Time
	// TrainingMetadata is the JSON text of the training_metadata array;
	// nil leaves it out.
	TrainingMetadata []byte
}

// Uploaded is the data of a 201 answer to POST profile.
type Uploaded struct {
	ProfileReference string `json:"profile_reference"`
	FileID           string `json:"file_id"`
	FileName         string `json:"file_name"`
	Extension        string `json:"extension"`
}

// FileError is a local problem with the file to upload: it is missing, or
// it changed since it was hashed. Retrying will not help.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("file %s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// ErrChanged says the file's content is no longer what was claimed.
var ErrChanged = errors.New("content changed since it was scanned")

// ReferenceFor returns the profile_reference cvfeed uses for content with
// this SHA-256: stable across restarts and machines, 64 characters.
func ReferenceFor(sha [32]byte) string {
	return fmt.Sprintf("%x", sha[:])
}

// PostProfile uploads a file as multipart, streamed from disk with a known
// Content-Length: memory use does not depend on the file size.
func (c *Client) PostProfile(ctx context.Context, u Upload) (Uploaded, error) {
	boundary := c.boundary()
	prefix := multipartPrefix(boundary, u)
	suffix := "\r\n--" + boundary + "--\r\n"
	open := func() (*checkedFile, error) {
		f, err := fileio.Open(u.Path)
		if err != nil {
			return nil, &FileError{Path: u.Path, Err: err}
		}
		return &checkedFile{f: f, path: u.Path, left: u.Size, want: u.SHA256, h: sha256.New()}, nil
	}
	body, err := open()
	if err != nil {
		return Uploaded{}, err
	}
	defer body.Close()
	// Uploads get the base timeout plus time for the bytes at a slow
	// 256 KiB/s, so that a big file on a slow link is not cut off.
	ctx, cancel := context.WithTimeout(ctx, c.timeout+time.Duration(u.Size/(256<<10))*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("profile", nil),
		newUploadBody(prefix, body, suffix))
	if err != nil {
		return Uploaded{}, fmt.Errorf("post profile: %w", err)
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
	var out Uploaded
	err = c.do(req, &out)
	if body.err != nil {
		// The file changed under us: the request was cut short, the
		// API cannot have accepted it.
		return Uploaded{}, body.err
	}
	if err != nil {
		return Uploaded{}, err
	}
	return out, nil
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
func multipartPrefix(boundary string, u Upload) []byte {
	// The layout is mime/multipart.Writer's (the tests read it back with
	// mime/multipart); writing it directly saves the Writer's header maps
	// and sorting on every upload. Field names are constants and values
	// sit in part bodies, which need no escaping; only the file name is
	// quoted. The boundary has 40 random characters: no value holds it.
	buf := bytes.NewBuffer(make([]byte, 0, 512+len(u.TrainingMetadata)))
	field := func(name, value string) {
		buf.WriteString("--")
		buf.WriteString(boundary)
		buf.WriteString("\r\nContent-Disposition: form-data; name=\"")
		buf.WriteString(name)
		buf.WriteString("\"\r\n\r\n")
		buf.WriteString(value)
		buf.WriteString("\r\n")
	}
	field("source_id", u.SourceID)
	if u.Reference != "" {
		field("profile_reference", u.Reference)
	}
	if !u.Received.IsZero() {
		field("timestamp_reception", strconv.FormatInt(u.Received.Unix(), 10))
	}
	if u.TrainingMetadata != nil {
		field("training_metadata", string(u.TrainingMetadata))
	}
	buf.WriteString("--")
	buf.WriteString(boundary)
	buf.WriteString("\r\nContent-Disposition: form-data; name=\"file\"; filename=\"")
	buf.WriteString(quoteName(u.FileName))
	buf.WriteString("\"\r\nContent-Type: ")
	buf.WriteString(contentType(u.FileName))
	buf.WriteString("\r\n\r\n")
	return buf.Bytes()
}

// quoteName makes a file name safe inside a quoted header parameter: no
// control characters, quotes and backslashes escaped as browsers do.
func quoteName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, "_"))
	if name == "" {
		name = "cv"
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name)
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

// Profile is the data of GET profile.
type Profile struct {
	ProfileID        string `json:"profile_id"`
	ProfileReference string `json:"profile_reference"`
	SourceID         string `json:"source_id"`
}

// GetProfile asks for the profile with this reference in the source. A
// profile that does not exist is an *APIError with status 404 (or 400).
func (c *Client) GetProfile(ctx context.Context, sourceID, reference string) (Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	q := url.Values{"source_id": {sourceID}, "profile_reference": {reference}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("profile", q), nil)
	if err != nil {
		return Profile{}, fmt.Errorf("get profile: %w", err)
	}
	var p Profile
	if err := c.do(req, &p); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// Source is an element of GET sources.
type Source struct {
	SourceID string `json:"source_id"`
	Name     string `json:"name"`
	Type     string `json:"type"`
}

// Sources lists the sources the key can see.
func (c *Client) Sources(ctx context.Context) ([]Source, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("sources", nil), nil)
	if err != nil {
		return nil, fmt.Errorf("get sources: %w", err)
	}
	var s []Source
	if err := c.do(req, &s); err != nil {
		return nil, err
	}
	return s, nil
}
