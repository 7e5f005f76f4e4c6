package ops

import (
	"strings"
	"testing"
)

// The computed test vector of riminder-api.md §5.2: secret webhook_key and
// this compact JSON payload, signed under each scheme.
const (
	vectorSecret  = "webhook_key"
	vectorEvent   = `{"type":"profile.parse.success","message":"The parsing succeeded","profile":{"profile_id":"id","profile_reference":"reference"}}`
	vectorPayload = "eyJ0eXBlIjoicHJvZmlsZS5wYXJzZS5zdWNjZXNzIiwibWVzc2FnZSI6IlRoZSBwYXJzaW5nIHN1Y2NlZWRlZCIsInByb2ZpbGUiOnsicHJvZmlsZV9pZCI6ImlkIiwicHJvZmlsZV9yZWZlcmVuY2UiOiJyZWZlcmVuY2UifX0="
	vectorSigA    = "4zOFKZVTswNQMwuFVxIhyEo+zPGcTXxlNDG/j7aNvgE="
	vectorSigB    = "ZTMzMzg1Mjk5NTUzYjMwMzUwMzMwYjg1NTcxMjIxYzg0YTNlY2NmMTljNGQ3YzY1MzQzMWJmOGZiNjhkYmUwMQ=="
	vectorSigC    = "s3cyvDSkUz3zzgg1Oj5vjujtu2hOyIym2SU6+eep0hA="
)

var vectors = []struct{ scheme, sig string }{
	{SchemeA, vectorSigA},
	{SchemeB, vectorSigB},
	{SchemeC, vectorSigC},
}

func TestSignMatchesVectors(t *testing.T) {
	for _, v := range vectors {
		got, err := Sign(v.scheme, []byte(vectorSecret), []byte(vectorEvent))
		if want := v.sig + "." + vectorPayload; err != nil || got != want {
			t.Errorf("Sign(%s) = %q, %v, want %q", v.scheme, got, err, want)
		}
	}
	if _, err := Sign("D", []byte(vectorSecret), []byte(vectorEvent)); err == nil {
		t.Error("Sign(D) = nil error, want an error")
	}
}

// urlSafe turns standard base64 into the URL-safe alphabet without padding.
func urlSafe(s string) string {
	return strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(s), "=")
}

func TestVerify(t *testing.T) {
	decoded := []byte(vectorEvent)
	key := [][]byte{[]byte(vectorSecret)}
	tests := []struct {
		name       string
		secrets    [][]byte
		sig, pay   string
		dec        []byte
		wantScheme string
		wantOK     bool
	}{
		{"A", key, vectorSigA, vectorPayload, decoded, SchemeA, true},
		{"B", key, vectorSigB, vectorPayload, decoded, SchemeB, true},
		{"C", key, vectorSigC, vectorPayload, decoded, SchemeC, true},
		{"A url-safe", key, urlSafe(vectorSigA), vectorPayload, decoded, SchemeA, true},
		{"B url-safe", key, urlSafe(vectorSigB), vectorPayload, decoded, SchemeB, true},
		{"C url-safe signature", key, urlSafe(vectorSigC), vectorPayload, decoded, SchemeC, true},
		{"B upper-case hex", key, b64("E33385299553B30350330B85571221C84A3ECCF19C4D7C653431BF8FB68DBE01"), vectorPayload, decoded, SchemeB, true},
		{"C without decoded payload", key, vectorSigC, vectorPayload, nil, SchemeC, true},
		{"A without decoded payload", key, vectorSigA, vectorPayload, nil, "", false},
		{"second secret", [][]byte{[]byte("old"), []byte(vectorSecret)}, vectorSigA, vectorPayload, decoded, SchemeA, true},
		{"wrong secret", [][]byte{[]byte("webhook_kez")}, vectorSigA, vectorPayload, decoded, "", false},
		{"C over another payload", key, vectorSigC, urlSafe(vectorPayload), decoded, "", false},
		{"signature not base64", key, "!!!!", vectorPayload, decoded, "", false},
		{"truncated signature", key, vectorSigA[:20], vectorPayload, decoded, "", false},
		{"hex of A as A", key, vectorSigB, vectorPayload, []byte(vectorEvent + " "), "", false},
		{"no secrets", nil, vectorSigA, vectorPayload, decoded, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme, ok := verify(tt.secrets, tt.sig, tt.pay, tt.dec)
			if scheme != tt.wantScheme || ok != tt.wantOK {
				t.Errorf("verify(%q, %.12q...) = %q, %v, want %q, %v", tt.sig, tt.pay, scheme, ok, tt.wantScheme, tt.wantOK)
			}
		})
	}
}

func b64(s string) string {
	h, _ := Sign(SchemeA, nil, []byte(s)) // "sig.payload": the payload is base64(s)
	_, p, _ := strings.Cut(h, ".")
	return p
}

func TestSplitSignature(t *testing.T) {
	tests := []struct {
		in, sig, payload string
		ok               bool
	}{
		{"a.b", "a", "b", true},
		{"a.b.c", "a", "b.c", true}, // split at the first '.'
		{" a.b ", "a", "b", true},
		{"ab", "", "", false},
		{".b", "", "", false},
		{"a.", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		sig, payload, err := splitSignature(tt.in)
		if sig != tt.sig || payload != tt.payload || (err == nil) != tt.ok {
			t.Errorf("splitSignature(%q) = %q, %q, %v, want %q, %q, ok %v", tt.in, sig, payload, err, tt.sig, tt.payload, tt.ok)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	for _, in := range []string{"aGk/Pz8+", "aGk_Pz8-", "aGk/Pz8+", "YQ==", "YQ", "YQ="} {
		if _, err := decodeBase64(in); err != nil {
			t.Errorf("decodeBase64(%q) = %v, want no error", in, err)
		}
	}
	for _, in := range []string{"Y", "a$bc", "YQ==YQ=="} {
		if got, err := decodeBase64(in); err == nil {
			t.Errorf("decodeBase64(%q) = %q, nil, want an error", in, got)
		}
	}
}
