package imapsrc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"github.com/cvfeed/cvfeed/config"
)

// bearerSession admits an XOAUTH2 login whose bearer token ok accepts.
type bearerSession struct {
	imapserver.Session
	ok func(token string) bool
}

func (s *bearerSession) AuthenticateMechanisms() []string { return []string{"XOAUTH2"} }

func (s *bearerSession) Authenticate(mech string) (sasl.Server, error) {
	return saslServerFunc(func(resp []byte) ([]byte, bool, error) {
		f := strings.Split(string(resp), "\x01")
		if len(f) < 2 || !strings.HasPrefix(f[0], "user=") || !s.ok(strings.TrimPrefix(f[1], "auth=Bearer ")) {
			return nil, true, imapserver.ErrAuthFailed
		}
		return nil, true, s.Session.Login(strings.TrimPrefix(f[0], "user="), "secret")
	}), nil
}

// authServer is a token endpoint: client_credentials with a secret or a
// certificate assertion (RFC 7523, verified against cert), refresh_token
// with rotation (each token works once).
type authServer struct {
	*httptest.Server
	secret  string
	cert    *x509.Certificate
	mu      sync.Mutex
	n       int
	refresh map[string]bool
	access  map[string]bool
}

func newAuthServer(t *testing.T, secret string, cert *x509.Certificate, refresh string) *authServer {
	a := &authServer{secret: secret, cert: cert, refresh: map[string]bool{refresh: true}, access: map[string]bool{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *authServer) valid(tok string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.access[tok]
}

func (a *authServer) serve(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	a.mu.Lock()
	defer a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fail := func(code, desc string) {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	answer := map[string]any{"token_type": "Bearer", "expires_in": 3600}
	switch r.Form.Get("grant_type") {
	case "client_credentials":
		if r.Form.Get("client_id") != "app" {
			fail("invalid_client", "AADSTS700016: Application with identifier 'x' was not found in the directory.")
			return
		}
		if as := r.Form.Get("client_assertion"); as != "" {
			if err := a.checkAssertion(as, "http://"+r.Host+r.URL.Path); err != nil {
				fail("invalid_client", "AADSTS700027: Client assertion failed signature validation: "+err.Error())
				return
			}
		} else if r.Form.Get("client_secret") != a.secret {
			fail("invalid_client", "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2")
			return
		}
	case "refresh_token":
		rt := r.Form.Get("refresh_token")
		if !a.refresh[rt] {
			fail("invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.")
			return
		}
		delete(a.refresh, rt)
		a.n++
		next := fmt.Sprintf("rt-%d", a.n)
		a.refresh[next] = true
		answer["refresh_token"] = next
	default:
		fail("unsupported_grant_type", "")
		return
	}
	a.n++
	at := fmt.Sprintf("at-%d", a.n)
	a.access[at] = true
	answer["access_token"] = at
	json.NewEncoder(w).Encode(answer)
}

// checkAssertion verifies a client assertion as Entra ID does: RS256 by
// the certificate whose SHA-1 is x5t, for this audience and client.
func (a *authServer) checkAssertion(jwt, aud string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	enc := base64.RawURLEncoding
	var h struct{ Alg, X5t string }
	var c struct {
		Aud, Iss, Sub, Jti string
		Exp, Nbf           int64
	}
	hb, _ := enc.DecodeString(parts[0])
	cb, _ := enc.DecodeString(parts[1])
	sig, _ := enc.DecodeString(parts[2])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		return errors.New("bad JSON")
	}
	thumb := sha1.Sum(a.cert.Raw)
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	now := time.Now().Unix()
	switch {
	case h.Alg != "RS256" || h.X5t != enc.EncodeToString(thumb[:]):
		return fmt.Errorf("header %+v", h)
	case rsa.VerifyPKCS1v15(a.cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig) != nil:
		return errors.New("bad signature")
	case c.Aud != aud || c.Iss != "app" || c.Sub != "app" || c.Jti == "" || c.Exp <= now || c.Nbf > now+60:
		return fmt.Errorf("claims %+v", c)
	}
	return nil
}

// testCertificate returns a self-signed RSA certificate and the PEM file
// Azure's tools write (certificate and key).
func testCertificate(t *testing.T) (*x509.Certificate, []byte) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cvfeed"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	return cert, pemData
}

// TestXOAUTH2Grants: each grant logs in to an XOAUTH2 server and reads the
// mailbox; a rotated refresh token is kept in the state and used by the
// next account on the same state (a restart), while one without the
// state fails with the endpoint's error named.
func TestXOAUTH2Grants(t *testing.T) {
	cert, pemData := testCertificate(t)
	auth := newAuthServer(t, "s3cret", cert, "rt-0")
	srv := newMemServer(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	wrap := func(s imapserver.Session) imapserver.Session { return &bearerSession{Session: s, ok: auth.valid} }
	srv.wrap.Store(&wrap)
	if _, err := srv.user.Append("INBOX", bytes.NewReader(message("a@example.com", "CV", "a.pdf", pdf(3000))), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	cc := func(secret, certPEM string) *config.OAuth2 {
		return &config.OAuth2{Grant: config.GrantClientCredentials, TokenURL: auth.URL + "/token", ClientID: "app",
			ClientSecret: config.Secret(secret), Certificate: config.Secret(certPEM), Scopes: []string{"https://outlook.office365.com/.default"}}
	}
	// backfill runs a backfill on the state in dir; want is the number
	// of CVs it must claim when it logs in (0 on a state that read them).
	backfill := func(t *testing.T, dir string, o *config.OAuth2, want int) (string, error) {
		st := &recStore{Store: openStore(t, dir)}
		defer st.Close()
		cfg := mailboxConfig(srv.addr)
		cfg.Password, cfg.OAuth2 = "", o
		logs := &logBuf{}
		opts := options(t, dir, logs)
		opts.Tokens = st.Store
		err := NewAccount(cfg, st, opts).Backfill(context.Background())
		if n, _ := st.counts(); err == nil && n != want {
			t.Errorf("claimed %d CVs, want %d", n, want)
		}
		return logs.String(), err
	}
	t.Run("client_credentials with a secret", func(t *testing.T) {
		if logs, err := backfill(t, t.TempDir(), cc("s3cret", ""), 1); err != nil {
			t.Fatalf("Backfill: %v\n%s", err, logs)
		}
	})
	t.Run("client_credentials with a certificate", func(t *testing.T) {
		if logs, err := backfill(t, t.TempDir(), cc("", string(pemData)), 1); err != nil {
			t.Fatalf("Backfill: %v\n%s", err, logs)
		}
	})
	t.Run("client_credentials with a wrong secret", func(t *testing.T) {
		_, err := backfill(t, t.TempDir(), cc("wrong", ""), 1)
		var le *LoginError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "invalid_client: AADSTS7000215: Invalid client secret provided.") ||
			strings.Contains(err.Error(), "Trace ID") || strings.Contains(err.Error(), "wrong") {
			t.Errorf("Backfill = %v; want a *LoginError naming invalid_client and AADSTS7000215, without the trace lines or the secret", err)
		}
	})
	t.Run("rotating refresh token across a restart", func(t *testing.T) {
		dir := t.TempDir()
		o := &config.OAuth2{Grant: config.GrantRefreshToken, TokenURL: auth.URL + "/token", ClientID: "app", RefreshToken: "rt-0"}
		if logs, err := backfill(t, dir, o, 1); err != nil {
			t.Fatalf("first Backfill: %v\n%s", err, logs)
		}
		// rt-0 was used once: only the rotated token, kept in the state, works.
		logs, err := backfill(t, dir, o, 0)
		if err != nil {
			t.Fatalf("Backfill after a restart: %v\n%s", err, logs)
		}
		if !strings.Contains(logs, "kept in the state") {
			t.Errorf("the restart does not say it used the kept token:\n%s", logs)
		}
		_, err = backfill(t, t.TempDir(), o, 1)
		if !strings.Contains(fmt.Sprint(err), "invalid_grant: AADSTS70008") {
			t.Errorf("Backfill with the used configured token and a new state = %v, want invalid_grant named", err)
		}
	})
}

func TestParseClientCertificate(t *testing.T) {
	_, pemData := testCertificate(t)
	c, err := config.ParseClientCertificate(pemData)
	if err != nil || len(c.Thumbprint) != 20 {
		t.Fatalf("ParseClientCertificate = %v, %v", c, err)
	}
	certOnly := pemData[bytes.Index(pemData, []byte("-----BEGIN CERTIFICATE")):]
	_, other := testCertificate(t)
	keyOther := other[:bytes.Index(other, []byte("-----BEGIN CERTIFICATE"))]
	for name, data := range map[string][]byte{
		"no key":      certOnly,
		"no cert":     keyOther,
		"another key": append(append([]byte(nil), certOnly...), keyOther...),
		"not PEM":     []byte("secret"),
	} {
		if _, err := config.ParseClientCertificate(data); err == nil {
			t.Errorf("ParseClientCertificate(%s): no error", name)
		} else if strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("ParseClientCertificate(%s): error shows the key: %v", name, err)
		}
	}
}
