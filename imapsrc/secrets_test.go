package imapsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/cvfeed/cvfeed/config"
)

// xoauth2Session adds XOAUTH2 to a session of the memory server: a login
// with the bearer token want is the user's password login.
type xoauth2Session struct {
	imapserver.Session
	token, password string
}

func (s *xoauth2Session) AuthenticateMechanisms() []string { return []string{"XOAUTH2"} }

func (s *xoauth2Session) Authenticate(mech string) (sasl.Server, error) {
	return saslServerFunc(func(resp []byte) ([]byte, bool, error) {
		f := strings.Split(string(resp), "\x01")
		if len(f) < 2 || !strings.HasPrefix(f[0], "user=") || f[1] != "auth=Bearer "+s.token {
			return nil, true, imapserver.ErrAuthFailed
		}
		return nil, true, s.Session.Login(strings.TrimPrefix(f[0], "user="), s.password)
	}), nil
}

type saslServerFunc func([]byte) ([]byte, bool, error)

func (f saslServerFunc) Next(resp []byte) ([]byte, bool, error) { return f(resp) }

// tokenServer is an OAuth2 token endpoint that exchanges refresh for an
// access token (status 200), or refuses it with status.
func tokenServer(t *testing.T, refresh, access string, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if status != http.StatusOK || r.Form.Get("refresh_token") != refresh {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, access)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestNoSecretInLogs logs in with a password and with XOAUTH2, with a
// Debug logger and the wire log on, and looks for the secrets in it all.
func TestNoSecretInLogs(t *testing.T) {
	const (
		password     = "pw-Zq8!\"quoted\" secret"
		refresh      = "refresh-Kd93jf0s"
		access       = "access-Pq71mx2w"
		clientSecret = "client-Uu4kq9"
	)
	// IMAP4rev1 only: the wrapper hides the session's IMAP4rev2 methods.
	srv := newMemServer(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	u := imapmemserver.NewUser("ann", password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv.mem.AddUser(u)
	wrap := func(s imapserver.Session) imapserver.Session {
		return &xoauth2Session{Session: s, token: access, password: password}
	}
	srv.wrap.Store(&wrap)
	if _, err := u.Append("INBOX", bytes.NewReader(message("a@example.com", "CV", "a.pdf", pdf(3000))), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	tok := tokenServer(t, refresh, access, http.StatusOK)
	for _, oauth := range []bool{false, true} {
		t.Run(fmt.Sprintf("oauth2=%v", oauth), func(t *testing.T) {
			dir := t.TempDir()
			st := &recStore{Store: openStore(t, dir)}
			logs := &logBuf{}
			cfg := mailboxConfig(srv.addr)
			cfg.Username, cfg.Password = "ann", password
			if oauth {
				cfg.Password = ""
				cfg.OAuth2 = &config.OAuth2{TokenURL: tok.URL, ClientID: "cvfeed", ClientSecret: clientSecret, RefreshToken: refresh, Scopes: []string{"https://mail.google.com/"}}
			}
			o := options(t, dir, logs)
			o.WireLog = func(line string) { fmt.Fprintln(logs, "wire:", line) }
			if err := NewAccount(cfg, st, o).Backfill(context.Background()); err != nil {
				t.Fatalf("Backfill: %v\n%s", err, logs)
			}
			if n, _ := st.counts(); n != 1 {
				t.Fatalf("claimed %d, want 1 (logged in)", n)
			}
			out := logs.String()
			if !strings.Contains(out, "wire:") || !strings.Contains(out, "[redacted]") {
				t.Fatalf("no redacted wire log:\n%s", out)
			}
			for _, secret := range []string{password, "Zq8", refresh, access, clientSecret} {
				if strings.Contains(out, secret) {
					t.Errorf("log shows secret %q:\n%s", secret, out)
				}
			}
		})
	}
	t.Run("refused refresh", func(t *testing.T) {
		dir := t.TempDir()
		cfg := mailboxConfig(srv.addr)
		cfg.Username = "ann"
		cfg.OAuth2 = &config.OAuth2{TokenURL: tokenServer(t, refresh, access, http.StatusBadRequest).URL, RefreshToken: refresh}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := NewAccount(cfg, openStore(t, dir), options(t, dir, nil)).Run(ctx)
		var le *LoginError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "invalid_grant") || strings.Contains(err.Error(), refresh) {
			t.Errorf("Run = %v, want a *LoginError saying invalid_grant, without the token", err)
		}
	})
}
