package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
)

// Event types the webhook passes on (riminder-api.md §5.3); every other
// type is acknowledged and dropped, as Riminder may add events.
const (
	EventParseSuccess = "profile.parse.success"
	EventParseError   = "profile.parse.error"
)

// SignatureHeader is the header carrying the signed event. Go's
// canonical form is Http-Riminder-Signature; names are case-insensitive.
const SignatureHeader = "HTTP-RIMINDER-SIGNATURE"

// altSignatureHeader is read when SignatureHeader is absent: whether the
// wire header is RIMINDER-SIGNATURE (which PHP shows as
// HTTP_RIMINDER_SIGNATURE) is an open question (riminder-api.md §9.2).
const altSignatureHeader = "RIMINDER-SIGNATURE"

const (
	// maxSignatureBytes bounds the header value. A parse event is a few
	// hundred bytes; the server's MaxHeaderBytes bounds all headers.
	maxSignatureBytes = 32 << 10
	// maxWebhookBody bounds the body, which is read and discarded: the
	// event is in the header, and clients never read the body.
	maxWebhookBody = 1 << 20
)

// Event is a profile parsing outcome for one profile.
type Event struct {
	Type             string // EventParseSuccess or EventParseError
	ProfileID        string // Riminder's id of the profile
	ProfileReference string // the profile_reference cvfeed uploaded it with
	Message          string // the API's message, e.g. why parsing failed
}

// EventFunc records an event, for instance by marking the item with that
// profile_reference parsed or parse_error. An error answers 500, so the
// sender tries again later: return one only for a failure that may pass
// (state unavailable), and nil for a reference that is not cvfeed's.
// Events may repeat (a retry, a replayed request), so recording one must
// be idempotent.
type EventFunc func(ctx context.Context, ev Event) error

// Webhook is the http.Handler of /webhook. It verifies the
// HTTP-RIMINDER-SIGNATURE header under the schemes of signature.go with
// each configured secret, and passes profile.parse.success and
// profile.parse.error events to an EventFunc. It never logs a secret nor
// the header.
type Webhook struct {
	handle  EventFunc
	log     *slog.Logger
	secrets atomic.Pointer[[][]byte]
}

// NewWebhook returns the handler, accepting a signature made with any of
// secrets (several during a rotation). handle is required; log may be nil.
func NewWebhook(secrets []string, handle EventFunc, log *slog.Logger) (*Webhook, error) {
	if handle == nil {
		return nil, errors.New("webhook: no event handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Webhook{handle: handle, log: log}
	if err := w.SetSecrets(secrets); err != nil {
		return nil, err
	}
	return w, nil
}

// SetSecrets replaces the secrets, for a reload; requests already being
// served finish with the old ones. An error leaves the old ones in place.
func (w *Webhook) SetSecrets(secrets []string) error {
	if len(secrets) == 0 {
		return errors.New("webhook: no secret")
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("webhook: secret %d of %d is empty", i+1, len(secrets))
		}
		keys[i] = []byte(s)
	}
	w.secrets.Store(&keys)
	return nil
}

// ServeHTTP answers POST only: 200 for a verified event (acted on or
// ignored), 401 for a missing or bad signature, 400 for a signed event
// that cannot be read, 413 or 431 for a body or header too large, 500
// when the EventFunc failed.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		reply(rw, http.StatusMethodNotAllowed, "use POST")
		return
	}
	// The body is not used, but read so that the connection can be reused.
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(rw, r.Body, maxWebhookBody)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			reply(rw, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		reply(rw, http.StatusBadRequest, "cannot read body")
		return
	}
	log := w.log.With("remote", r.RemoteAddr)
	values := r.Header.Values(SignatureHeader)
	if len(values) == 0 {
		values = r.Header.Values(altSignatureHeader)
	}
	switch {
	case len(values) == 0:
		log.Warn("webhook: request without " + SignatureHeader + " header")
		unauthorized(rw, "missing signature")
		return
	case len(values) > 1:
		reply(rw, http.StatusBadRequest, "more than one signature header")
		return
	case len(values[0]) > maxSignatureBytes:
		reply(rw, http.StatusRequestHeaderFieldsTooLarge, "signature header too large")
		return
	}
	sig, payload, err := splitSignature(values[0])
	if err != nil {
		log.Warn("webhook: malformed signature header", "err", err, "header_bytes", len(values[0]))
		unauthorized(rw, "malformed signature")
		return
	}
	decoded, decodeErr := decodeBase64(payload)
	if decodeErr != nil {
		decoded = nil // only scheme C, over the text as sent, can verify
	}
	scheme, ok := verify(*w.secrets.Load(), sig, payload, decoded)
	if !ok {
		log.Warn("webhook: signature does not verify with the configured secret", "header_bytes", len(values[0]))
		unauthorized(rw, "invalid signature")
		return
	}
	if decodeErr != nil {
		reply(rw, http.StatusBadRequest, "payload is not base64")
		return
	}
	ev, err := parseEvent(decoded)
	if err != nil {
		log.Warn("webhook: signed event cannot be read", "err", err)
		reply(rw, http.StatusBadRequest, err.Error())
		return
	}
	log = log.With("type", ev.Type, "profile_reference", ev.ProfileReference, "profile_id", ev.ProfileID)
	switch {
	case ev.Type != EventParseSuccess && ev.Type != EventParseError:
		log.Debug("webhook: event type ignored", "scheme", scheme)
		reply(rw, http.StatusOK, "ignored")
		return
	case ev.ProfileReference == "":
		log.Debug("webhook: event for a profile without reference ignored (not uploaded by cvfeed)")
		reply(rw, http.StatusOK, "ignored")
		return
	}
	if err := w.handle(r.Context(), ev); err != nil {
		log.Warn("webhook: event not recorded; the sender will retry", "err", err)
		reply(rw, http.StatusInternalServerError, "event not recorded")
		return
	}
	log.Debug("webhook: event recorded", "scheme", scheme)
	reply(rw, http.StatusOK, "ok")
}

// rawEvent is the JSON of an event (riminder-api.md §5.4).
type rawEvent struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Profile *struct {
		ID        flexString `json:"profile_id"`
		Reference flexString `json:"profile_reference"`
	} `json:"profile"`
}

// parseEvent reads the JSON of a verified event.
func parseEvent(b []byte) (Event, error) {
	var raw rawEvent
	if err := json.Unmarshal(b, &raw); err != nil {
		return Event{}, fmt.Errorf("payload is not a JSON event: %w", err)
	}
	if raw.Type == "" {
		return Event{}, errors.New("event has no type")
	}
	ev := Event{Type: raw.Type, Message: raw.Message}
	if raw.Profile != nil {
		ev.ProfileID, ev.ProfileReference = string(raw.Profile.ID), string(raw.Profile.Reference)
	}
	return ev, nil
}

// flexString takes a JSON string, or a number kept as written: clients
// model ids as strings, but nothing says the server never sends numbers.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %.20s", b)
	}
	*f = flexString(n)
	return nil
}

// envelope is the body of every webhook answer, in the API's
// {code, message} shape.
type envelope struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func reply(rw http.ResponseWriter, code int, msg string) {
	writeJSON(rw, code, envelope{Code: code, Message: msg})
}

func unauthorized(rw http.ResponseWriter, msg string) {
	rw.Header().Set("WWW-Authenticate", `HMAC realm="webhook", header="`+SignatureHeader+`"`)
	reply(rw, http.StatusUnauthorized, msg)
}
