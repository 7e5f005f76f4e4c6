package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeCertPEM(t *testing.T, dir string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "cvfeed"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	p := filepath.Join(dir, "app.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})...)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOAuth2Grant: [mailbox.oauth2] grant = "client_credentials" with a
// secret or a certificate, the refresh-token grant by default, and the
// mistakes an admin makes, each named by its key.
func TestOAuth2Grant(t *testing.T) {
	dir := t.TempDir()
	writeCertPEM(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "bad.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := fakeEnv(map[string]string{"DIR": dir, "CS": "app-secret"})
	const tenant = "token_url = \"https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n"
	const scope = "scopes = [\"https://outlook.office365.com/.default\"]\n"
	valid := []struct {
		name, body      string
		grant           string
		secret, refresh string
		cert            bool
	}{
		{"client credentials with a secret", "grant = \"client_credentials\"\n" + tenant + "client_secret = \"${CS}\"\n" + scope, GrantClientCredentials, "app-secret", "", false},
		{"client credentials with a certificate", "grant = \"client_credentials\"\n" + tenant + "certificate_file = \"${DIR}/app.pem\"\n" + scope, GrantClientCredentials, "", "", true},
		{"refresh token by default", tenant + "refresh_token = \"rt\"\n", GrantRefreshToken, "", "rt", false},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(mailMinimal, "%s", "username = \"jobs@contoso.com\"\n[mailbox.oauth2]\n"+tt.body, 1)
			cfg, err := Parse([]byte(data), filepath.Join(dir, "c.toml"), env)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			o := cfg.Mailboxes[0].OAuth2
			if o.Grant != tt.grant || o.ClientSecret.Reveal() != tt.secret || o.RefreshToken.Reveal() != tt.refresh || (o.Certificate != "") != tt.cert {
				t.Errorf("OAuth2 = grant %q secret %q refresh %q certificate %v; want %q %q %q %v",
					o.Grant, o.ClientSecret.Reveal(), o.RefreshToken.Reveal(), o.Certificate != "", tt.grant, tt.secret, tt.refresh, tt.cert)
			}
			if tt.cert {
				if _, err := ParseClientCertificate([]byte(o.Certificate.Reveal())); err != nil {
					t.Errorf("the certificate kept does not parse: %v", err)
				}
			}
		})
	}
	invalid := []struct{ name, body, want string }{
		{"unknown grant", "grant = \"password\"\n" + tenant + "refresh_token = \"rt\"\n", `mailbox[0].oauth2.grant: "password" is not one of refresh_token, client_credentials`},
		{"a refresh token with client credentials", "grant = \"client_credentials\"\n" + tenant + "client_secret = \"s\"\nrefresh_token = \"rt\"\n" + scope, `mailbox[0].oauth2.refresh_token: not used with grant = "client_credentials"`},
		{"no secret nor certificate", "grant = \"client_credentials\"\n" + tenant + scope, `mailbox[0].oauth2.client_secret: required with grant = "client_credentials" (or client_secret_file, or certificate_file)`},
		{"a secret and a certificate", "grant = \"client_credentials\"\n" + tenant + "client_secret = \"s\"\ncertificate_file = \"${DIR}/app.pem\"\n" + scope, `mailbox[0].oauth2.certificate_file: cannot be used with mailbox[0].oauth2.client_secret: set only one`},
		{"no scope", "grant = \"client_credentials\"\n" + tenant + "client_secret = \"s\"\n", `mailbox[0].oauth2.scopes: required with grant = "client_credentials" (Microsoft 365: ["https://outlook.office365.com/.default"])`},
		{"a certificate with the refresh grant", tenant + "refresh_token = \"rt\"\ncertificate_file = \"${DIR}/app.pem\"\n", `mailbox[0].oauth2.certificate_file: only used with grant = "client_credentials"`},
		{"a certificate that does not parse", "grant = \"client_credentials\"\n" + tenant + "certificate_file = \"${DIR}/bad.pem\"\n" + scope, `mailbox[0].oauth2.certificate_file: ` + dir + `/bad.pem: the certificate does not parse`},
		{"a certificate file that is missing", "grant = \"client_credentials\"\n" + tenant + "certificate_file = \"${DIR}/none.pem\"\n" + scope, `mailbox[0].oauth2.certificate_file: open ` + dir + `/none.pem`},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(mailMinimal, "%s", "username = \"u\"\n[mailbox.oauth2]\n"+tt.body, 1)
			_, err := Parse([]byte(data), filepath.Join(dir, "c.toml"), env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want an error holding %s", err, tt.want)
			}
		})
	}
}
