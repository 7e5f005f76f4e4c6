package uploader

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// rawRequest is a request as the server read it, body bytes included.
type rawRequest struct {
	header http.Header
	body   []byte
}

// rawServer records raw request bodies and answers with status and body.
func rawServer(t *testing.T, status int, reply string) (*httptest.Server, *[]rawRequest) {
	t.Helper()
	var got []rawRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, rawRequest{header: r.Header.Clone(), body: b})
		writeJSON(w, status, reply)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

// TestPostProfileWireFormat pins the v1.0 body byte for byte: the multipart
// layout is written by hand, and the HrFlow flavour shares the code.
func TestPostProfileWireFormat(t *testing.T) {
	srv, got := rawServer(t, 201, `{"code":201,"message":"ok","data":{"file_id":"f"}}`)
	c, err := NewClient(ClientOptions{BaseURL: srv.URL, Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	c.boundaryBase = "0123456789012345678901234567890123456789"
	content := "%PDF-1.7 a CV"
	p := filepath.Join(t.TempDir(), "cv.pdf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sha := sha256.Sum256([]byte(content))
	md := []byte(`[{"filter_reference":"dev","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null}]`)
	ups := []Upload{
		{SourceID: testSource, Path: p, FileName: "a \"b\"\x01\\.pdf", Size: int64(len(content)), SHA256: sha,
			Reference: ReferenceFor(sha), Received: time.Unix(1530607434, 0), TrainingMetadata: md},
		{SourceID: testSource, Path: p, FileName: "", Size: int64(len(content)), SHA256: sha},
	}
	want := []string{
		"--01234567890123456789012345678901234567891\r\n" +
			"Content-Disposition: form-data; name=\"source_id\"\r\n\r\n" + testSource + "\r\n" +
			"--01234567890123456789012345678901234567891\r\n" +
			"Content-Disposition: form-data; name=\"profile_reference\"\r\n\r\n" + ReferenceFor(sha) + "\r\n" +
			"--01234567890123456789012345678901234567891\r\n" +
			"Content-Disposition: form-data; name=\"timestamp_reception\"\r\n\r\n1530607434\r\n" +
			"--01234567890123456789012345678901234567891\r\n" +
			"Content-Disposition: form-data; name=\"training_metadata\"\r\n\r\n" + string(md) + "\r\n" +
			"--01234567890123456789012345678901234567891\r\n" +
			"Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\"\\\\.pdf\"\r\n" +
			"Content-Type: application/pdf\r\n\r\n" + content + "\r\n" +
			"--01234567890123456789012345678901234567891--\r\n",
		"--01234567890123456789012345678901234567892\r\n" +
			"Content-Disposition: form-data; name=\"source_id\"\r\n\r\n" + testSource + "\r\n" +
			"--01234567890123456789012345678901234567892\r\n" +
			"Content-Disposition: form-data; name=\"file\"; filename=\"cv\"\r\n" +
			"Content-Type: application/octet-stream\r\n\r\n" + content + "\r\n" +
			"--01234567890123456789012345678901234567892--\r\n",
	}
	for i, u := range ups {
		if _, err := c.PostProfile(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		r := (*got)[i]
		if !bytes.Equal(r.body, []byte(want[i])) {
			t.Errorf("upload %d body =\n%q\nwant\n%q", i, r.body, want[i])
		}
		if ct := r.header.Get("Content-Type"); ct != "multipart/form-data; boundary=0123456789012345678901234567890123456789"+string(rune('1'+i)) {
			t.Errorf("upload %d Content-Type = %q", i, ct)
		}
		if k := r.header["X-Api-Key"]; len(k) != 1 || k[0] != "k" {
			t.Errorf("upload %d X-Api-Key = %q", i, k)
		}
	}
}
