package uploader

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/sandbox"
	"github.com/cvfeed/cvfeed/state"
)

// startSandbox runs the real sandbox in process; the HrFlow API is at
// URL + "/v1".
func startSandbox(t *testing.T, opts sandbox.Options) (*sandbox.Server, string) {
	t.Helper()
	sb, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(func() {
		srv.Close()
		sb.Close()
	})
	return sb, srv.URL
}

func TestHrFlowAgainstSandbox(t *testing.T) {
	sb, base := startSandbox(t, sandbox.Options{
		Keys:    []sandbox.Key{{Value: "rw", Read: true, Write: true}, {Value: "wo", Write: true}, {Value: "ro", Read: true}},
		Sources: []string{testSource},
		Filters: []string{"dev"},
	})
	c := newHrFlow(t, base+"/v1", "rw")
	content := "%PDF-1.4 e2e"
	p, sha := testFile(t, "cv.pdf", content)
	up := Upload{SourceID: testSource, Path: p, FileName: "cv.pdf", Size: int64(len(content)), SHA256: sha,
		Reference: ReferenceFor(sha), Received: time.Unix(1530607434, 0),
		TrainingMetadata: []byte(`[{"filter_reference":"dev","stage":"YES","stage_timestamp":1530607434,"rating":2,"rating_timestamp":null}]`)}

	if _, err := c.PostProfile(t.Context(), up); err != nil {
		t.Fatalf("upload: %v", err)
	}
	ps := sb.Profiles()
	if len(ps) != 1 {
		t.Fatalf("sandbox holds %d profiles, want 1", len(ps))
	}
	got := ps[0]
	if got.SourceID != testSource || got.ProfileReference != up.Reference || got.SHA256 != hex.EncodeToString(sha[:]) ||
		got.FileSize != up.Size || got.TimestampReception == nil || *got.TimestampReception != 1530607434 ||
		string(got.TrainingMetadata) != `[{"job_reference":"dev","stage":"yes","date_stage":"2018-07-03T08:43:54+00:00","rating":2,"date_rating":null}]` {
		t.Errorf("sandbox stored %+v (labels %s)", got, got.TrainingMetadata)
	}

	// The same reference again: a duplicate, confirmed by GET profile/indexing.
	_, err := c.PostProfile(t.Context(), up)
	if !IsDuplicateReference(err) || IsTransient(err) || IsAuth(err) {
		t.Fatalf("second upload = %v, want a duplicate reference", err)
	}
	prof, err := c.GetProfile(t.Context(), testSource, up.Reference)
	if err != nil || prof.ProfileID != got.ProfileID || prof.ProfileReference != up.Reference || prof.SourceID != testSource {
		t.Errorf("GetProfile = %+v, %v; want key %s", prof, err, got.ProfileID)
	}
	if _, err := c.GetProfile(t.Context(), testSource, "nope"); StatusOf(err) != http.StatusNotFound {
		t.Errorf("GetProfile(unknown) = %v, want 404", err)
	}

	// Keys: write-only may post but not read, read-only the reverse, an
	// unknown key nothing; all are auth errors, and the key never shows.
	wo := newHrFlow(t, base+"/v1", "wo")
	if _, err := wo.GetProfile(t.Context(), testSource, up.Reference); StatusOf(err) != 403 || !IsAuth(err) {
		t.Errorf("write-only GET = %v, want 403", err)
	}
	if _, err := wo.Sources(t.Context()); StatusOf(err) != 403 {
		t.Errorf("write-only Sources = %v, want 403", err)
	}
	other, sha2 := testFile(t, "b.pdf", "other")
	if _, err := wo.PostProfile(t.Context(), Upload{SourceID: testSource, Path: other, FileName: "b.pdf", Size: 5, SHA256: sha2, Reference: ReferenceFor(sha2)}); err != nil {
		t.Errorf("write-only POST = %v", err)
	}
	ro := newHrFlow(t, base+"/v1", "ro")
	if _, err := ro.PostProfile(t.Context(), up); StatusOf(err) != 403 || !IsAuth(err) {
		t.Errorf("read-only POST = %v, want 403", err)
	}
	bad := newHrFlow(t, base+"/v1", "sk_not_a_key")
	if _, err := bad.GetProfile(t.Context(), testSource, up.Reference); StatusOf(err) != 401 || !IsAuth(err) ||
		strings.Contains(fmt.Sprint(err), "sk_not_a_key") {
		t.Errorf("unknown key = %v, want 401 without the key", err)
	}
	noUser, _ := NewHrFlowClient(HrFlowOptions{BaseURL: base + "/v1", Key: "rw", UserEmail: "nobody"})
	if _, err := noUser.Sources(t.Context()); StatusOf(err) != 401 {
		t.Errorf("bad user email = %v, want 401", err)
	}

	// Validation errors are permanent.
	if _, err := c.PostProfile(t.Context(), Upload{SourceID: "0123456789abcdef0123456789abcdef01234567", Path: other,
		FileName: "b.pdf", Size: 5, SHA256: sha2}); StatusOf(err) != 400 || IsTransient(err) || IsDuplicateReference(err) {
		t.Errorf("unknown source = %v, want a plain 400", err)
	}
	if _, err := c.PostProfile(t.Context(), Upload{SourceID: testSource, Path: other, FileName: "b.pdf", Size: 5, SHA256: sha2,
		TrainingMetadata: []byte(`[{"filter_reference":"not-a-job"}]`)}); StatusOf(err) != 400 || IsTransient(err) {
		t.Errorf("unknown job = %v, want a plain 400", err)
	}

	srcs, err := c.Sources(t.Context())
	if err != nil || len(srcs) != 1 || srcs[0].SourceID != testSource {
		t.Errorf("Sources = %+v, %v", srcs, err)
	}
	if st := sb.Stats(); st.Accepted != 2 || st.ByStatus["202"] != 2 {
		t.Errorf("sandbox stats = %+v, want 2 accepted with 202", st)
	}
}

// TestPoolHrFlowSandboxExactlyOnce runs the pool with the HrFlow client
// against the sandbox's /v1 failing 30% of requests (5xx and resets, half
// of them after the upload was stored): every file ends up there once.
// With a write-only key the duplicate answers are trusted instead of
// confirmed.
func TestPoolHrFlowSandboxExactlyOnce(t *testing.T) {
	for _, key := range []string{"rw", "wo"} {
		t.Run(key, func(t *testing.T) {
			sb, base := startSandbox(t, sandbox.Options{
				Keys:      []sandbox.Key{{Value: "rw", Read: true, Write: true}, {Value: "wo", Write: true}},
				FailRate:  0.3,
				FailCodes: []sandbox.Fault{{Status: 500}, {Status: 503}, {Status: 0}},
				Seed:      11,
			})
			const n = 60
			fx := newFixture(t, n)
			c := newHrFlow(t, base+"/v1", key)
			md := []byte(`[{"filter_reference":"dev","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null}]`)
			p := NewPool(PoolConfig{Workers: 4, ReadAccess: key == "rw", MaxAttempts: 50,
				Backoff:  Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
				Metadata: func(state.Item) ([]byte, error) { return md, nil }}, fx.store, c)
			if err := runUntilDone(t, p, fx.store, time.Minute); err != nil {
				t.Fatal(err)
			}
			if got := fx.counts(t); got.Uploaded != n || got.Failed != 0 {
				t.Fatalf("counts = %+v, want %d uploaded", got, n)
			}
			seen := map[string]int{}
			for _, pr := range sb.Profiles() {
				seen[pr.ProfileReference]++
				if pr.SourceID != testSource || string(pr.TrainingMetadata) != `[{"job_reference":"dev","stage":"new","date_stage":null,"rating":null,"date_rating":null}]` ||
					pr.TimestampReception == nil || *pr.TimestampReception != 1700000000 {
					t.Errorf("stored %+v (labels %s)", pr, pr.TrainingMetadata)
				}
			}
			for _, k := range fx.keys {
				if c := seen[ReferenceFor(k.SHA256)]; c != 1 {
					t.Errorf("reference %s stored %d times, want 1", ReferenceFor(k.SHA256)[:12], c)
				}
			}
			if len(seen) != n {
				t.Errorf("sandbox holds %d references, want %d", len(seen), n)
			}
			st := sb.Stats()
			t.Logf("sandbox: %s", fmt.Sprint(st))
			if st.ByStatus["400"] == 0 {
				t.Error("no duplicate answers: the faults after upload did not happen")
			}
		})
	}
}

// TestSourceAndFilterLookups: the one-item lookups cvfeed check uses, for
// both flavours, against the real sandbox.
func TestSourceAndFilterLookups(t *testing.T) {
	_, base := startSandbox(t, sandbox.Options{Sources: []string{testSource}, Filters: []string{"data-scientist"}})
	c, _ := NewClient(ClientOptions{BaseURL: base, Key: "k"})
	if s, err := c.Source(t.Context(), testSource); err != nil || s.SourceID != testSource {
		t.Errorf("Source(known) = %+v, %v", s, err)
	}
	if _, err := c.Source(t.Context(), "0000000000000000000000000000000000000009"); StatusOf(err) == 0 {
		t.Errorf("Source(unknown) = %v, want an API error", err)
	}
	if f, err := c.Filter(t.Context(), "data-scientist"); err != nil || f.FilterReference != "data-scientist" {
		t.Errorf("Filter(known) = %+v, %v", f, err)
	}
	if _, err := c.Filter(t.Context(), "nope"); StatusOf(err) == 0 {
		t.Errorf("Filter(unknown) = %v, want an API error", err)
	}
	h, _ := NewHrFlowClient(HrFlowOptions{BaseURL: base + "/v1", Key: "k", UserEmail: "hr@example.com"})
	if s, err := h.Source(t.Context(), testSource); err != nil || s.SourceID != testSource {
		t.Errorf("HrFlow Source(known) = %+v, %v", s, err)
	}
	if _, err := h.Source(t.Context(), "0000000000000000000000000000000000000009"); StatusOf(err) == 0 {
		t.Errorf("HrFlow Source(unknown) = %v, want an API error", err)
	}
}
