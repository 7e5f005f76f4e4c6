package sandbox

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
)

// noReuse is a client that opens a connection per request: http.Transport
// silently retries an idempotent request that failed on a reused
// connection, which would hide the resets under test.
var noReuse = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// outcome sends one request and returns its status, or "reset" when the
// connection was reset.
func outcome(t *testing.T, req *http.Request) (string, *http.Response) {
	t.Helper()
	req.Header.Set("X-API-Key", "k")
	resp, err := noReuse.Do(req)
	if err != nil {
		// A write can also fail with EPIPE once the reset has arrived.
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("%s %s: %v, want a connection reset", req.Method, req.URL.Path, err)
		}
		return "reset", nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return strconv.Itoa(resp.StatusCode), resp
}

func TestFaultRates(t *testing.T) {
	s, srv := start(t, Options{FailRate: 0.3, Seed: 42}) // default codes 500,503,429,reset
	const n = 800
	seen := map[string]int64{}
	for range n {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/sources", nil)
		got, resp := outcome(t, req)
		seen[got]++
		if got == "429" && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("429 with Retry-After %q, want 1", resp.Header.Get("Retry-After"))
		}
	}
	faults := n - seen["200"]
	if faults < n*20/100 || faults > n*40/100 {
		t.Errorf("%d faults in %d requests, want about 30%%", faults, n)
	}
	for _, code := range []string{"500", "503", "429", "reset"} {
		if seen[code] < 30 || seen[code] > 90 { // about n*0.3/4 = 60 each
			t.Errorf("%s seen %d times, want about 60", code, seen[code])
		}
	}
	st := s.Stats()
	if st.Requests != n || st.Accepted != 0 {
		t.Errorf("stats = %+v", st)
	}
	for code, count := range seen {
		if st.ByStatus[code] != count {
			t.Errorf("stats by_status[%s] = %d, client saw %d", code, st.ByStatus[code], count)
		}
	}

	// The same seed gives the same sequence.
	a, b := newInjector(0.5, defaultFaults, 7), newInjector(0.5, defaultFaults, 7)
	for range 100 {
		if da, db := a.draw(true), b.draw(true); da != db {
			t.Fatalf("same seed, different draws: %+v, %+v", da, db)
		}
	}
}

// TestFaultAfterUpload checks that 500s and resets on POST /profile happen
// both before processing (nothing stored) and after the upload was
// recorded (stored, response lost), and that the stored ones are then
// duplicates.
func TestFaultAfterUpload(t *testing.T) {
	for _, codes := range [][]Fault{{{500}}, {{503}}, {{0}}} {
		name := codes[0].String()
		t.Run(name, func(t *testing.T) {
			s, srv := start(t, Options{FailRate: 1, FailCodes: codes, Seed: 3, Dir: t.TempDir()})
			const n = 40
			for i := range n {
				body, ct := multipartBody(t, field("source_id", srcA), field("profile_reference", "r"+strconv.Itoa(i)),
					filePart("cv.pdf", "cv "+strconv.Itoa(i)))
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/profile", bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				if got, _ := outcome(t, req); got != name {
					t.Errorf("upload %d: %s, want %s", i, got, name)
				}
			}
			stored := len(s.Profiles())
			if stored < n/5 || stored > n*4/5 {
				t.Errorf("%d of %d faulted uploads stored, want about half", stored, n)
			}
			if files := dirFiles(t, s.opts.Dir); len(files) != stored {
				t.Errorf("dir holds %d files, want %d", len(files), stored)
			}
			if st := s.Stats(); st.ByStatus[name] != n || st.Accepted != int64(stored) || len(st.ByStatus) != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestFault429BeforeProcessing(t *testing.T) {
	s, srv := start(t, Options{FailRate: 1, FailCodes: []Fault{{429}, {402}}, Seed: 1})
	for range 20 {
		r := upload(t, srv.URL, "k", field("source_id", srcA), filePart("cv.pdf", "x"))
		if r.status == 429 && r.header.Get("Retry-After") != "1" {
			t.Errorf("429 with Retry-After %q", r.header.Get("Retry-After"))
		}
		if r.status != 429 && r.status != 402 {
			t.Errorf("status %d, want 429 or 402", r.status)
		}
	}
	if n := len(s.Profiles()); n != 0 {
		t.Errorf("%d profiles stored behind 429/402, want 0", n)
	}
	// The test endpoints are never faulted.
	var st Stats
	getRaw(t, srv.URL+"/_sandbox/stats", &st)
	if st.Requests != 20 || st.ByStatus["429"]+st.ByStatus["402"] != 20 {
		t.Errorf("stats = %+v", st)
	}
}

func TestParseFaults(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		err  bool
	}{
		{"500,503,429,reset", "[500 503 429 reset]", false},
		{" 500 , RESET ", "[500 reset]", false},
		{"", "[]", false},
		{"200", "", true},
		{"500,,503", "", true},
		{"boom", "", true},
	} {
		got, err := ParseFaults(tt.in)
		if (err != nil) != tt.err || (err == nil && faultsString(got) != tt.want) {
			t.Errorf("ParseFaults(%q) = %v, %v; want %s (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func faultsString(fs []Fault) string {
	var b bytes.Buffer
	b.WriteString("[")
	for i, f := range fs {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(f.String())
	}
	return b.String() + "]"
}

func TestParseKey(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Key
		err  bool
	}{
		{"abc", Key{"abc", true, true}, false},
		{"abc:w", Key{"abc", false, true}, false},
		{"abc:r", Key{"abc", true, false}, false},
		{"a:b:rw", Key{"a:b", true, true}, false},
		{"", Key{}, true},
		{":r", Key{}, true},
		{"abc:x", Key{}, true},
	} {
		got, err := ParseKey(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for name, opts := range map[string]Options{
		"rate above 1":      {FailRate: 1.5},
		"negative rate":     {FailRate: -0.1},
		"bad fault":         {FailCodes: []Fault{{200}}},
		"negative latency":  {Latency: -1},
		"key without perm":  {Keys: []Key{{Value: "k"}}},
		"empty source":      {Sources: []string{""}},
		"empty filter":      {Filters: []string{""}},
		"webhook no secret": {WebhookURL: "http://127.0.0.1/x"},
		"webhook not http":  {WebhookURL: "ftp://x/y", WebhookSecret: "s"},
		"webhook not a URL": {WebhookURL: "::", WebhookSecret: "s"},
		"webhook no host":   {WebhookURL: "http:///x", WebhookSecret: "s"},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%s) = nil error", name)
		}
	}
}
