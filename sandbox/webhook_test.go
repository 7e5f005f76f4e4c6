package sandbox

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The test vector of riminder-api.md 5.2.
const (
	vectorSecret  = "webhook_key"
	vectorPayload = `{"type":"profile.parse.success","message":"The parsing succeeded","profile":{"profile_id":"id","profile_reference":"reference"}}`
	vectorPart1A  = "4zOFKZVTswNQMwuFVxIhyEo+zPGcTXxlNDG/j7aNvgE="
	vectorPart2   = "eyJ0eXBlIjoicHJvZmlsZS5wYXJzZS5zdWNjZXNzIiwibWVzc2FnZSI6IlRoZSBwYXJzaW5nIHN1Y2NlZWRlZCIsInByb2ZpbGUiOnsicHJvZmlsZV9pZCI6ImlkIiwicHJvZmlsZV9yZWZlcmVuY2UiOiJyZWZlcmVuY2UifX0="
)

func TestSignVector(t *testing.T) {
	ev := event{Type: "profile.parse.success", Message: "The parsing succeeded",
		Profile: eventProfile{ProfileID: "id", ProfileReference: "reference"}}
	payload, err := asciiJSON(ev)
	if err != nil || string(payload) != vectorPayload {
		t.Fatalf("asciiJSON = %s, %v; want %s", payload, err, vectorPayload)
	}
	if got, want := sign(vectorSecret, payload), vectorPart1A+"."+vectorPart2; got != want {
		t.Errorf("sign = %s, want %s", got, want)
	}
}

func TestASCIIJSON(t *testing.T) {
	got, err := asciiJSON(map[string]string{"r": "é✓😀<"})
	if want := `{"r":"\u00e9\u2713\ud83d\ude00\u003c"}`; err != nil || string(got) != want {
		t.Errorf("asciiJSON = %s, %v; want %s", got, err, want)
	}
	var back map[string]string
	if json.Unmarshal(got, &back) != nil || back["r"] != "é✓😀<" {
		t.Errorf("round trip = %q", back["r"])
	}
}

// verifyA checks a signature header under scheme A and returns the payload.
func verifyA(t *testing.T, secret, header string) []byte {
	t.Helper()
	sig, enc, found := strings.Cut(header, ".")
	if !found {
		t.Fatalf("signature %q has no '.'", header)
	}
	payload, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("payload part: %v", err)
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatalf("signature part: %v", err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(payload)
	if !hmac.Equal(got, mac.Sum(nil)) {
		t.Errorf("signature does not verify under scheme A")
	}
	return payload
}

type delivery struct {
	header http.Header
	body   []byte
}

func TestWebhookDelivery(t *testing.T) {
	got := make(chan delivery, 10)
	var calls atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway) // the first attempt fails: retried
			return
		}
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), body}
	}))
	defer recv.Close()
	s, srv := start(t, Options{WebhookURL: recv.URL + "/hook", WebhookSecret: vectorSecret})

	ref := "réf-✓-😀"
	if r := upload(t, srv.URL, "k", field("source_id", srcA), field("profile_reference", ref), filePart("cv.pdf", "x")); r.status != 201 {
		t.Fatalf("upload = %d %s", r.status, r.Message)
	}
	var d delivery
	select {
	case d = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook delivered")
	}
	if calls.Load() != 2 {
		t.Errorf("%d attempts, want 2", calls.Load())
	}
	if ct := d.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	payload := verifyA(t, vectorSecret, d.header.Get("HTTP-RIMINDER-SIGNATURE"))
	if !bytes.Equal(payload, d.body) {
		t.Errorf("body %s differs from the signed payload %s", d.body, payload)
	}
	for _, c := range payload {
		if c >= 0x80 {
			t.Fatalf("payload is not ASCII: %s", payload)
		}
	}
	var ev event
	decode(t, payload, &ev)
	if ev.Type != "profile.parse.success" || ev.Message == "" || ev.Profile.ProfileReference != ref ||
		ev.Profile.ProfileID != s.Profiles()[0].ProfileID {
		t.Errorf("event = %+v", ev)
	}
}

func TestWebhookCloseStopsRetries(t *testing.T) {
	var calls atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer recv.Close()
	s, err := New(Options{WebhookURL: recv.URL, WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	upload(t, srv.URL, "k", field("source_id", srcA), filePart("cv.pdf", "x"))
	for calls.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	begin := time.Now()
	s.Close()
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	n := calls.Load()
	time.Sleep(300 * time.Millisecond)
	if calls.Load() != n {
		t.Errorf("deliveries went on after Close")
	}
	s.Close() // idempotent
}
