package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestRoutingAndContentType(t *testing.T) {
	_, srv := start(t, strictOptions(""))
	for _, tt := range []struct {
		method, path, key string
		status            int
		allow             string
	}{
		{"GET", "/nope", "secret", 404, ""},
		{"GET", "/profile/", "secret", 404, ""},
		{"GET", "/v1/profile/parsing/file", "secret", 405, "POST"},
		{"GET", "/v1/profile", "secret", 404, ""},
		{"GET", "/v1/filters", "secret", 404, ""},
		{"GET", "/v1.0/sources", "secret", 404, ""},
		{"POST", "/v1/sources", "secret", 405, "GET"},
		{"GET", "/v1/webhook/check", "secret", 405, "POST"},
		{"DELETE", "/profile", "secret", 405, "GET, POST"},
		{"POST", "/sources", "secret", 405, "GET"},
		{"GET", "/webhook/check", "secret", 405, "POST"},
		{"GET", "/sources", "", 401, ""},
		{"GET", "/sources", "secret", 200, ""},
		{"GET", "/_sandbox/nope", "", 404, ""},
		{"POST", "/_sandbox/stats", "", 405, "GET"},
	} {
		r := do(t, tt.method, srv.URL+tt.path, tt.key, "", nil) // checks Content-Type
		if r.status != tt.status || r.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d (Allow %q), want %d (Allow %q)", tt.method, tt.path, r.status,
				r.header.Get("Allow"), tt.status, tt.allow)
		}
	}
}

func TestInspectEndpoints(t *testing.T) {
	_, srv := start(t, Options{Keys: []Key{{"k", true, true}}})
	resp, err := http.Get(srv.URL + "/_sandbox/profiles") // no key
	if err != nil {
		t.Fatal(err)
	}
	var empty []any
	if err := json.NewDecoder(resp.Body).Decode(&empty); err != nil || empty == nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("empty profiles: %v %v %q", empty, err, resp.Header.Get("Content-Type"))
	}
	resp.Body.Close()

	upload(t, srv.URL, "k", field("source_id", srcA), filePart("a.pdf", "a"))
	upload(t, srv.URL, "k", field("source_id", srcB), field("profile_reference", "r2"), filePart("b.pdf", "bb"),
		field("timestamp_reception", "1530607434"), field("training_metadata", `[ {"filter_reference": "f"} ]`))
	upload(t, srv.URL, "bad", field("source_id", srcB), filePart("b.pdf", "bb"))

	var profiles []map[string]json.RawMessage
	getRaw(t, srv.URL+"/_sandbox/profiles", &profiles)
	if len(profiles) != 2 {
		t.Fatalf("%d profiles, want 2", len(profiles))
	}
	want := sorted("source_id", "profile_reference", "file_name", "file_size", "sha256", "training_metadata",
		"timestamp_reception", "received_at")
	for i, p := range profiles {
		if got := keysOf(t, []byte(mustJSON(t, p))); !slices.Equal(got, want) {
			t.Errorf("profile %d keys = %v, want %v", i, got, want)
		}
		var at time.Time
		if err := json.Unmarshal(p["received_at"], &at); err != nil || time.Since(at) > time.Minute {
			t.Errorf("received_at = %s: %v", p["received_at"], err)
		}
	}
	checks := []struct{ got, want string }{
		{string(profiles[0]["source_id"]), `"` + srcA + `"`},
		{string(profiles[0]["profile_reference"]), `""`},
		{string(profiles[0]["training_metadata"]), `[]`},
		{string(profiles[0]["timestamp_reception"]), `null`},
		{string(profiles[0]["sha256"]), `"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"`},
		{string(profiles[1]["profile_reference"]), `"r2"`},
		{string(profiles[1]["file_name"]), `"b.pdf"`},
		{string(profiles[1]["file_size"]), `2`},
		{string(profiles[1]["training_metadata"]), `[{"filter_reference":"f"}]`},
		{string(profiles[1]["timestamp_reception"]), `1530607434`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}

	var stats map[string]json.RawMessage
	getRaw(t, srv.URL+"/_sandbox/stats", &stats)
	if got := string(mustJSON(t, stats)); got != `{"accepted":2,"by_status":{"201":2,"401":1},"requests":3}` {
		t.Errorf("stats = %s", got)
	}
}

func getRaw(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestLatency(t *testing.T) {
	_, srv := start(t, Options{Latency: 150 * time.Millisecond})
	begin := time.Now()
	if r := get(t, srv.URL+"/sources", "k"); r.status != 200 || time.Since(begin) < 150*time.Millisecond {
		t.Errorf("GET /sources = %d after %v, want 200 after 150ms", r.status, time.Since(begin))
	}
	begin = time.Now()
	getRaw(t, srv.URL+"/_sandbox/stats", new(Stats))
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("/_sandbox/stats took %v; it has no latency", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/sources", nil)
	req.Header.Set("X-API-Key", "k")
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled request: %v, want deadline exceeded", err)
	}
}

func TestKeyHeaderAnyCase(t *testing.T) {
	_, srv := start(t, strictOptions(""))
	for _, name := range []string{"x-api-key", "X-API-KEY", "X-Api-Key"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/sources", nil)
		req.Header[name] = []string{"secret"} // sent as written, not canonicalised
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("header %s: status %d, want 200", name, resp.StatusCode)
		}
	}
}
