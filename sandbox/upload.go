package sandbox

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Profile is one accepted upload. Its JSON form is an element of
// GET /_sandbox/profiles.
type Profile struct {
	SourceID         string `json:"source_id"`
	ProfileReference string `json:"profile_reference"` // "" when none was sent
	// FileName is the multipart filename of the file part, as sent (never
	// used as a path).
	FileName string `json:"file_name"`
	FileSize int64  `json:"file_size"`
	SHA256   string `json:"sha256"` // 64 lowercase hex
	// TrainingMetadata is the array as received, compacted; [] when none.
	TrainingMetadata   json.RawMessage `json:"training_metadata"`
	TimestampReception *int64          `json:"timestamp_reception"` // Unix seconds, nil when absent
	ReceivedAt         time.Time       `json:"received_at"`
	// FileID and ProfileID are the ids the API gave out (40 hex). An
	// HrFlow upload's profile key is its ProfileID.
	FileID    string `json:"-"`
	ProfileID string `json:"-"`

	// hrflow marks an upload through /v1/profile/parsing/file: its
	// TrainingMetadata holds HrFlow labels, and tags and metadatas are
	// kept (compacted, [] when none) for GET /v1/profile/indexing.
	hrflow          bool
	tags, metadatas json.RawMessage
}

// reception is the profile's date_reception: the timestamp_reception sent
// by the client ("original date of the application"), else the arrival time.
func (p *Profile) reception() time.Time {
	if p.TimestampReception != nil {
		return time.Unix(*p.TimestampReception, 0).UTC()
	}
	return p.ReceivedAt
}

// Limits for the text fields of an upload; the file part has none.
const (
	maxField    = 4 << 10
	maxMetadata = 1 << 20
)

// riminderFields are the text fields POST /profile reads, with their size
// limits; other fields are read and dropped.
var riminderFields = map[string]int64{
	"source_id":           maxField,
	"profile_reference":   maxField,
	"timestamp_reception": maxField,
	"training_metadata":   maxMetadata,
}

// uploadForm is what was read from a POST /profile body. Text fields take
// the last value sent, as PHP does for repeated names.
type uploadForm struct {
	fields map[string]string
	file   *receivedFile
}

// receivedFile is the file part, hashed while it was read.
type receivedFile struct {
	name string
	size int64
	sum  string
	tmp  string // temporary file in Dir; "" without Dir or once renamed
}

// readUpload reads a multipart upload's fields and file (streamed, hashed,
// stored under Dir when set). A non-nil reply refuses the request; the
// form must be cleaned up either way.
func (s *Server) readUpload(r *http.Request, fields map[string]int64) (*uploadForm, *reply) {
	mr, err := r.MultipartReader()
	if err != nil {
		rep := badRequest("Invalid request: a multipart/form-data body is required")
		return nil, &rep
	}
	form, err := s.readForm(mr, fields)
	if errors.Is(err, errStorage) {
		s.log.Error("store upload", "err", err)
		rep := fail(http.StatusInternalServerError, "Internal error: cannot store the file")
		return form, &rep
	}
	if err != nil {
		rep := badRequest(err.Error())
		return form, &rep
	}
	return form, nil
}

// errStorage marks a failure to write into Dir: the sandbox's fault, a 500.
var errStorage = errors.New("storage")

// postProfile handles POST /profile: a streamed multipart upload.
func (s *Server) postProfile(r *http.Request) reply {
	form, refused := s.readUpload(r, riminderFields)
	defer form.cleanup()
	if refused != nil {
		return *refused
	}

	sourceID := form.fields["source_id"]
	if sourceID == "" {
		return badRequest("Missing source_id")
	}
	if !s.validSource(sourceID) {
		return badRequest("Invalid source_id: " + sourceID)
	}
	if form.file == nil {
		return badRequest("Missing file")
	}
	if form.file.size == 0 {
		return badRequest("Empty file")
	}
	ts, err := parseUnix(form.fields["timestamp_reception"])
	if err != nil {
		return badRequest("Invalid timestamp_reception: " + form.fields["timestamp_reception"])
	}
	meta, entries, err := parseTrainingMetadata(form.fields["training_metadata"], s.knownFilter)
	if err != nil {
		return badRequest("Invalid training_metadata: " + err.Error())
	}
	p := Profile{
		SourceID:           sourceID,
		ProfileReference:   form.fields["profile_reference"],
		FileName:           form.file.name,
		FileSize:           form.file.size,
		SHA256:             form.file.sum,
		TrainingMetadata:   meta,
		TimestampReception: ts,
		FileID:             randomID(),
		ProfileID:          randomID(),
	}
	if rep, accepted := s.record(&p, form.file, entries, "profile_reference already exists"); !accepted {
		return rep
	}
	s.log.Debug("upload accepted", "source_id", p.SourceID, "profile_reference", p.ProfileReference,
		"file_size", p.FileSize, "sha256", p.SHA256)
	if s.hooks != nil {
		s.hooks.enqueue(parseSuccess(p.ProfileID, p.ProfileReference))
	}
	return ok(http.StatusCreated, "Profile added successfully", map[string]any{
		"profile_reference": p.ProfileReference,
		"file_id":           p.FileID,
		"file_name":         p.FileName,
		"file_size":         p.FileSize,
		"extension":         extension(p.FileName),
		"date_reception":    newPHPDate(p.reception()),
	})
}

// record checks the reference is new in its source and stores the profile,
// all under the lock, which is held only now that the body has been read.
// With Dir, the temporary file is renamed to Dir/<sha256> inside the same
// critical section, so a rejected upload never leaves a file. A reference
// already in the source gets a 400 with dupMessage.
//
// Both APIs share the one store: the sandbox is one account seen through
// two API generations, a HrFlow source key is a Riminder source id, and a
// reference is unique in its source whichever API stored it.
func (s *Server) record(p *Profile, f *receivedFile, entries []metaEntry, dupMessage string) (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := refKey{p.SourceID, p.ProfileReference}
	if p.ProfileReference != "" {
		if _, dup := s.byRef[key]; dup {
			return badRequest(dupMessage), false
		}
	}
	if f.tmp != "" {
		if err := os.Rename(f.tmp, filepath.Join(s.opts.Dir, p.SHA256)); err != nil {
			s.log.Error("store upload", "err", err)
			return fail(http.StatusInternalServerError, "Internal error: cannot store the file"), false
		}
		f.tmp = ""
	}
	p.ReceivedAt = time.Now().UTC() // under the lock: increasing in order of arrival
	i := len(s.profiles)
	s.profiles = append(s.profiles, *p)
	if p.ProfileReference != "" {
		s.byRef[key] = i
	}
	s.byID[p.ProfileID] = i
	if s.counts[p.SourceID] == 0 {
		s.seen = append(s.seen, seenSource{id: p.SourceID, created: p.ReceivedAt})
	}
	s.counts[p.SourceID]++
	for _, e := range entries {
		c := s.stages[e.reference]
		if c == nil {
			c = &stageCount{created: p.ReceivedAt}
			s.stages[e.reference] = c
			s.refOrder = append(s.refOrder, e.reference)
		}
		switch e.stage {
		case "YES":
			c.yes++
		case "LATER":
			c.later++
		case "NO":
			c.no++
		}
	}
	return reply{}, true
}

// readForm reads the body part by part: the file part, and the text fields
// named in fields (name → size limit). Fields may come before or after the
// file. The whole body is consumed before validation, so the rejection does
// not depend on the order of the parts.
func (s *Server) readForm(mr *multipart.Reader, fields map[string]int64) (*uploadForm, error) {
	form := &uploadForm{fields: make(map[string]string)}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return form, nil
		}
		if err != nil {
			return form, rejectf("Invalid multipart body: %v", err)
		}
		err = s.readPart(form, part, fields)
		part.Close()
		if err != nil {
			return form, err
		}
	}
}

func (s *Server) readPart(form *uploadForm, part *multipart.Part, fields map[string]int64) error {
	name := part.FormName()
	limit, wanted := fields[name]
	switch {
	case name == "file":
		filename := rawFileName(part)
		if filename == "" {
			// Without a filename PHP sees a plain field, not a file.
			_, err := io.Copy(io.Discard, part)
			return readErr(err)
		}
		if form.file != nil {
			return rejectf("Invalid request: more than one file part")
		}
		f, err := s.receiveFile(part)
		if f != nil {
			f.name = filename
			form.file = f
		}
		return err
	case wanted:
		b, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err != nil {
			return readErr(err)
		}
		if int64(len(b)) > limit {
			return rejectf("Field too large: %s", name)
		}
		form.fields[name] = string(b)
		return nil
	default:
		_, err := io.Copy(io.Discard, part)
		return readErr(err)
	}
}

// receiveFile hashes the file part while reading it and, with Dir, streams it
// into a temporary file there (through a 64 KiB buffer: multipart parts
// arrive in reads of about 4 KiB). It returns the file even on error, so that
// cleanup removes the temporary file.
func (s *Server) receiveFile(part io.Reader) (*receivedFile, error) {
	h := sha256.New()
	f := &receivedFile{}
	if s.opts.Dir == "" {
		n, err := io.Copy(h, part)
		f.size, f.sum = n, hex.EncodeToString(h.Sum(nil))
		return f, readErr(err)
	}
	tmp, err := os.CreateTemp(s.opts.Dir, ".upload-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errStorage, err)
	}
	f.tmp = tmp.Name()
	bw := bufio.NewWriterSize(storeWriter{tmp}, 64<<10)
	f.size, err = io.Copy(io.MultiWriter(h, bw), part)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("%w: %v", errStorage, cerr)
	}
	if errors.Is(err, errStorage) {
		return f, err
	}
	f.sum = hex.EncodeToString(h.Sum(nil))
	return f, readErr(err)
}

// storeWriter marks write errors as the sandbox's own (errStorage), to tell
// them from errors reading the request.
type storeWriter struct{ w io.Writer }

func (s storeWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		err = fmt.Errorf("%w: %v", errStorage, err)
	}
	return n, err
}

// cleanup removes the temporary file of a rejected upload.
func (form *uploadForm) cleanup() {
	if form != nil && form.file != nil && form.file.tmp != "" {
		_ = os.Remove(form.file.tmp)
		form.file.tmp = ""
	}
}

func readErr(err error) error {
	if err == nil {
		return nil
	}
	return rejectf("Invalid multipart body: %v", err)
}

// rejection is a 400 whose text is the message sent to the client.
type rejection string

func (r rejection) Error() string { return string(r) }

func rejectf(format string, args ...any) error { return rejection(fmt.Sprintf(format, args...)) }

// rawFileName is the filename parameter as sent. multipart.Part.FileName
// would apply filepath.Base; the sandbox records what the client sent.
func rawFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// extension is the lowercased extension of name, without the dot.
func extension(name string) string {
	base := name[strings.LastIndexAny(name, `/\`)+1:]
	i := strings.LastIndexByte(base, '.')
	if i <= 0 {
		return ""
	}
	return strings.ToLower(base[i+1:])
}

// randomID returns 40 lowercase hex characters, like Riminder's ids.
func randomID() string {
	var b [20]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}
