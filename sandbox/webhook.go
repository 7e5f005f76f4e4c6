package sandbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/cvfeed/cvfeed/internal/termsafe"
)

// signatureHeader is the header that carries a webhook's signed payload
// (riminder-api.md 5.1), written on the wire in exactly this case.
const signatureHeader = "HTTP-RIMINDER-SIGNATURE"

// Webhook delivery: a bounded queue and a few workers, so an upload never
// waits for the receiver; a full queue drops the event with a warning.
const (
	hookQueue    = 1024
	hookWorkers  = 4
	hookAttempts = 5
	hookBackoff  = 100 * time.Millisecond // doubled after each failed attempt
	hookTimeout  = 10 * time.Second
)

// event is a Riminder v1.0 webhook event (riminder-api.md 5.4).
type event struct {
	Type    string       `json:"type"`
	Message string       `json:"message"`
	Profile eventProfile `json:"profile"`
}

type eventProfile struct {
	ProfileID        string `json:"profile_id"`
	ProfileReference string `json:"profile_reference"`
}

func parseSuccess(profileID, reference string) event {
	return event{
		Type:    "profile.parse.success",
		Message: "Profile parsed successfully",
		Profile: eventProfile{ProfileID: profileID, ProfileReference: reference},
	}
}

// webhooks delivers events to one URL.
type webhooks struct {
	url, secret string
	log         *slog.Logger
	client      *http.Client
	queue       chan []byte
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	once        sync.Once
}

func newWebhooks(url, secret string, log *slog.Logger) *webhooks {
	h := &webhooks{
		url:    url,
		secret: secret,
		log:    log.With("webhook", termsafe.URL(url)), // never a user:password@
		client: &http.Client{Timeout: hookTimeout},
		queue:  make(chan []byte, hookQueue),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for range hookWorkers {
		h.wg.Go(h.work)
	}
	return h
}

// enqueue queues ev without blocking.
func (h *webhooks) enqueue(ev event) {
	payload, err := asciiJSON(ev)
	if err != nil {
		h.log.Error("encode webhook event", "err", err)
		return
	}
	select {
	case h.queue <- payload:
	default:
		h.log.Warn("webhook queue full, event dropped", "type", ev.Type)
	}
}

// close stops the workers and waits for them.
func (h *webhooks) close() {
	h.once.Do(func() {
		h.cancel()
		h.wg.Wait()
	})
}

func (h *webhooks) work() {
	for {
		select {
		case <-h.ctx.Done():
			return
		case payload := <-h.queue:
			h.deliver(payload)
		}
	}
}

// deliver posts payload, retrying with a doubling backoff.
func (h *webhooks) deliver(payload []byte) {
	wait := hookBackoff
	for attempt := 1; ; attempt++ {
		err := h.post(payload)
		if err == nil {
			h.log.Debug("webhook delivered", "attempt", attempt)
			return
		}
		if attempt == hookAttempts {
			h.log.Error("webhook giving up", "attempts", attempt, "err", err)
			return
		}
		h.log.Warn("webhook failed, will retry", "attempt", attempt, "err", err)
		if !sleepCtx(h.ctx, wait) {
			return
		}
		wait *= 2
	}
}

func (h *webhooks) post(payload []byte) error {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header[signatureHeader] = []string{sign(h.secret, payload)} // not canonicalised
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// sign returns the HTTP-RIMINDER-SIGNATURE value for a JSON payload under
// scheme A of riminder-api.md 5.2 (the majority of official clients):
// base64(HMAC-SHA256(secret, payload)) "." base64(payload), standard base64
// with padding.
func sign(secret string, payload []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(payload)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)) + "." + base64.StdEncoding.EncodeToString(payload)
}

// asciiJSON marshals v with every non-ASCII character escaped as \uXXXX,
// as Python's json.dumps does: py-rim decodes the payload as ASCII.
func asciiJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, r := range string(b) { // non-ASCII only occurs inside strings
		switch {
		case r < 0x80:
			out.WriteByte(byte(r))
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.Bytes(), nil
}
