package uploader

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Upload is one file to send with POST profile (or, for the HrFlow
// flavour, POST profile/parsing/file).
type Upload struct {
	// SourceID is the source_id (HrFlow: the source_key).
	SourceID string
	// Path is the file streamed as the file part.
	Path string
	// FileName is the name the API sees (never a path).
	FileName string
	// Size and SHA256 are what the file held when it was claimed: a file
	// that no longer matches is not sent (a *FileError).
	Size   int64
	SHA256 [32]byte
	// Reference is the profile_reference (HrFlow: the reference).
	Reference string
	// Received is timestamp_reception (HrFlow: created_at); zero leaves it
	// out. Unless ReceivedFromFile, it is sent as it is, within what the
	// API accepts (see reception).
	Received time.Time
	// ReceivedFromFile takes Received from the modification time of the
	// file as it is sent (fstat of the descriptor the upload reads): the
	// date of a folder's file is what the share says now, not when it was
	// scanned, so that a touch and a retry mend a bad date.
	ReceivedFromFile bool
	// TrainingMetadata is the JSON text of the training_metadata array;
	// nil leaves it out. The HrFlow flavour turns it into labels.
	TrainingMetadata []byte
}

// Uploaded is the data of a 201 answer to POST profile. For the HrFlow
// flavour, FileID is the profile key of a synchronous parse and empty for
// the usual asynchronous 202, whose data is [].
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

// InputError is an upload that cannot be sent as it is, whatever the API
// would say: for example training metadata the HrFlow flavour cannot turn
// into labels. Retrying will not help.
type InputError struct {
	Field string
	Err   error
}

func (e *InputError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *InputError) Unwrap() error { return e.Err }

// ErrChanged says the file's content is no longer what was claimed.
var ErrChanged = errors.New("content changed since it was scanned")

// ReferenceFor returns the profile_reference cvfeed uses for content with
// this SHA-256: stable across restarts and machines, 64 characters.
func ReferenceFor(sha [32]byte) string {
	return hex.EncodeToString(sha[:])
}

// PostProfile uploads a file with POST profile (riminder-api.md 2), as
// multipart streamed from disk with a known Content-Length: memory use does
// not depend on the file size.
func (c *Client) PostProfile(ctx context.Context, u Upload) (Uploaded, error) {
	var out Uploaded
	if err := c.postFile(ctx, "profile", riminderFields, u, &out); err != nil {
		return Uploaded{}, err
	}
	return out, nil
}

// riminderFields are the text parts of POST profile, in the order they go
// out; unset ones are left out.
func riminderFields(u Upload) []formField {
	fields := make([]formField, 0, 4)
	fields = append(fields, formField{"source_id", u.SourceID})
	if u.Reference != "" {
		fields = append(fields, formField{"profile_reference", u.Reference})
	}
	if !u.Received.IsZero() {
		fields = append(fields, formField{"timestamp_reception", strconv.FormatInt(u.Received.Unix(), 10)})
	}
	if u.TrainingMetadata != nil {
		fields = append(fields, formField{"training_metadata", string(u.TrainingMetadata)})
	}
	return fields
}

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

// Filter is an element of GET filters (a job, in Riminder's words).
type Filter struct {
	FilterID        string `json:"filter_id"`
	FilterReference string `json:"filter_reference"`
	Name            string `json:"name"`
}

// Filters lists the filters the key can see (cvfeed check verifies the
// filter_reference of the training metadata against it).
func (c *Client) Filters(ctx context.Context) ([]Filter, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("filters", nil), nil)
	if err != nil {
		return nil, fmt.Errorf("get filters: %w", err)
	}
	var f []Filter
	if err := c.do(req, &f); err != nil {
		return nil, err
	}
	return f, nil
}

// Source asks for one source by id (GET source?source_id=): cvfeed check
// uses it for ids a listing did not show. A source that does not exist is
// an *APIError (400 or 404).
func (c *Client) Source(ctx context.Context, id string) (Source, error) {
	return getOne[Source](ctx, &c.conn, "source", url.Values{"source_id": {id}})
}

// Filter asks for one filter by its reference (GET filter?filter_reference=).
func (c *Client) Filter(ctx context.Context, reference string) (Filter, error) {
	return getOne[Filter](ctx, &c.conn, "filter", url.Values{"filter_reference": {reference}})
}

// getOne GETs path?q and decodes the envelope's data.
func getOne[T any](ctx context.Context, c *conn, path string, q url.Values) (T, error) {
	var v T
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, q), nil)
	if err != nil {
		return v, fmt.Errorf("get %s: %w", path, err)
	}
	err = c.do(req, &v)
	return v, err
}
