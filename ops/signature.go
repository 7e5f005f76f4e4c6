package ops

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// A Riminder webhook carries its event in one header,
// "<signature>.<payload>", where payload is the base64 of the JSON event
// (riminder-api.md §5.1). The official clients disagree on what the
// signature is (§5.2), all with HMAC-SHA256 keyed by the webhook secret:
//
//	A  base64(HMAC(decoded payload))             php-rim, go-rim, ruby, java, C#
//	B  base64(hex(HMAC(decoded payload)))        py-rim, py-hf
//	C  base64(HMAC(payload as sent, in base64))  node-rim, js-hf, the HrFlow docs
//
// No server code is public, so a signature is accepted when it verifies
// under any of the three. Each is a MAC by the same secret: accepting three
// forms multiplies a forger's odds per try by three, from 2^-256, which
// changes nothing.
//
// Part 1 is decoded to bytes and compared with the expected MAC (A, C) or
// hex digest (B) by hmac.Equal, in constant time. Comparing bytes rather
// than the base64 text, as node-rim does for C, also accepts the URL-safe
// alphabet and missing padding, which some senders use.

// Schemes, as named in riminder-api.md §5.2; verify returns one.
const (
	SchemeA = "A"
	SchemeB = "B"
	SchemeC = "C"
)

var errNoDot = errors.New(`no "." between signature and payload`)

// splitSignature splits a header value at its first '.' into the
// signature and the payload, both non-empty.
func splitSignature(v string) (sig, payload string, err error) {
	sig, payload, ok := strings.Cut(strings.TrimSpace(v), ".")
	if !ok {
		return "", "", errNoDot
	}
	if sig == "" || payload == "" {
		return "", "", errors.New("empty signature or payload")
	}
	return sig, payload, nil
}

// decodeBase64 decodes standard or URL-safe base64, with or without
// padding, as the official clients do (they map "-_" to "+/").
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	return base64.RawStdEncoding.DecodeString(s)
}

// verify reports the first scheme under which sig signs payload with one
// of secrets, and false when none does. payload is part 2 as sent;
// decoded is its base64 decoding, nil when it does not decode (then only
// scheme C can verify). Every comparison runs whatever the others gave.
func verify(secrets [][]byte, sig, payload string, decoded []byte) (scheme string, ok bool) {
	got, err := decodeBase64(sig)
	if err != nil {
		return "", false
	}
	var a, b, c bool
	for _, secret := range secrets {
		if decoded != nil {
			mac := hmacSHA256(secret, decoded)
			a = hmac.Equal(got, mac) || a
			b = hmac.Equal(hexLower(got), []byte(hex.EncodeToString(mac))) || b
		}
		c = hmac.Equal(got, hmacSHA256(secret, []byte(payload))) || c
	}
	switch {
	case a:
		return SchemeA, true
	case b:
		return SchemeB, true
	case c:
		return SchemeC, true
	}
	return "", false
}

func hmacSHA256(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// hexLower lowercases A-F, for a scheme B sender that wrote upper-case
// hex; other bytes are left alone.
func hexLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// Sign returns a header value for event under scheme (SchemeA, SchemeB or
// SchemeC) with standard padded base64, as riminder-api.md §5.2 builds
// its test vectors. Tests use it to play the sender (the sandbox keeps its
// own signer: it shares no code with the receiver it tests).
func Sign(scheme string, secret, event []byte) (string, error) {
	payload := base64.StdEncoding.EncodeToString(event)
	var sig []byte
	switch scheme {
	case SchemeA:
		sig = hmacSHA256(secret, event)
	case SchemeB:
		sig = []byte(hex.EncodeToString(hmacSHA256(secret, event)))
	case SchemeC:
		sig = hmacSHA256(secret, []byte(payload))
	default:
		return "", errors.New("unknown signature scheme " + scheme)
	}
	return base64.StdEncoding.EncodeToString(sig) + "." + payload, nil
}
