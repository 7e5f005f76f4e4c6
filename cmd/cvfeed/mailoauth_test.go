package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cvfeed/cvfeed/internal/dovecottest"
)

// tokenEndpoint is a local OAuth2 authorization server as Entra ID and
// Google behave for cvfeed: /token grants client_credentials (client id and
// secret) and refresh_token with rotation (each refresh token works once;
// the answer carries the next), and /introspect answers Dovecot's oauth2
// passdb for the access tokens it issued.
type tokenEndpoint struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string
	mu           sync.Mutex
	n            int
	refresh      map[string]bool // live refresh tokens
	access       map[string]bool
	grants       []string // grant_type of each request that succeeded
}

func startTokenEndpoint(t *testing.T, clientID, clientSecret, refresh string) *tokenEndpoint {
	e := &tokenEndpoint{clientID: clientID, clientSecret: clientSecret, refresh: map[string]bool{refresh: true}, access: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", e.token)
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		e.mu.Lock()
		ok := e.access[r.Form.Get("token")]
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"active": ok, "username": "cvfeed"})
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *tokenEndpoint) fail(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (e *tokenEndpoint) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	e.mu.Lock()
	defer e.mu.Unlock()
	grant := r.Form.Get("grant_type")
	answer := map[string]any{"token_type": "Bearer", "expires_in": 3600}
	switch grant {
	case "client_credentials":
		if r.Form.Get("client_id") != e.clientID || r.Form.Get("client_secret") != e.clientSecret {
			e.fail(w, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 0d8f\r\nCorrelation ID: 77aa\r\nTimestamp: 2026-12-01 10:00:00Z")
			return
		}
		if r.Form.Get("scope") != "https://outlook.office365.com/.default" {
			e.fail(w, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
			return
		}
	case "refresh_token":
		rt := r.Form.Get("refresh_token")
		if !e.refresh[rt] {
			e.fail(w, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.")
			return
		}
		delete(e.refresh, rt) // rotation: each refresh token works once
		e.n++
		next := fmt.Sprintf("rt-rotated-%d", e.n)
		e.refresh[next] = true
		answer["refresh_token"] = next
	default:
		e.fail(w, "unsupported_grant_type", grant)
		return
	}
	e.n++
	at := fmt.Sprintf("at-%d", e.n)
	e.access[at] = true
	answer["access_token"] = at
	e.grants = append(e.grants, grant)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer)
}

func (e *tokenEndpoint) granted() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.grants...)
}

// oauthConfig is mailConfig with [mailbox.oauth2] in place of the
// password, reading the IMAP folder folder.
func oauthConfig(t *testing.T, dir, url, addr, folder, oauth string) string {
	t.Helper()
	p := mailConfig(t, dir, url, addr, "")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "password = \"${JOBS_IMAP_PASSWORD}\"\n", "", 1)
	cfg = strings.Replace(cfg, `folders = ["INBOX"]`, fmt.Sprintf("folders = [%q]", folder), 1) + "[mailbox.oauth2]\n" + oauth
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMailboxOAuth2: XOAUTH2 against a real Dovecot (oauth2 passdb) and a
// local token endpoint. With grant = "client_credentials" (Microsoft 365's
// app-only access) and with a refresh token the endpoint rotates on every
// use, a backfill, a new mail, and a second backfill (a restart: the
// rotated token must come from the state) upload each CV once. A wrong
// client secret is named, with Entra ID's AADSTS code, by cvfeed check.
func TestMailboxOAuth2(t *testing.T) {
	const secret = "app-secret-Xq81"
	tok := startTokenEndpoint(t, "cvfeed-app", secret, "rt-initial")
	dv := dovecottest.StartWith(t, dovecottest.Options{
		Users:            map[string]string{"cvfeed": mailPassword},
		OAuth2Introspect: tok.srv.URL + "/introspect",
	})
	grants := map[string]string{
		"client_credentials": fmt.Sprintf("grant = \"client_credentials\"\ntoken_url = %q\nclient_id = \"cvfeed-app\"\nclient_secret = \"${APP_SECRET}\"\nscopes = [\"https://outlook.office365.com/.default\"]\n", tok.srv.URL+"/token"),
		"refresh_token":      fmt.Sprintf("token_url = %q\nclient_id = \"cvfeed-app\"\nrefresh_token = \"rt-initial\"\nscopes = [\"https://mail.google.com/\"]\n", tok.srv.URL+"/token"),
	}
	env := []string{"APP_SECRET=" + secret}
	n := 0
	for _, grant := range []string{"client_credentials", "refresh_token"} {
		t.Run(grant, func(t *testing.T) {
			sb := startSandbox(t)
			dir := t.TempDir()
			cfg := oauthConfig(t, dir, sb.url, dv.Addr, grant, grants[grant])
			want := map[string]string{}
			for pass := 1; pass <= 2; pass++ {
				n++
				raw, sha := cvMessage(n, 2000)
				want[fmt.Sprintf("cv-%d.pdf", n)] = sha
				if _, err := dv.Append("cvfeed", grant, raw, nil); err != nil {
					t.Fatal(err)
				}
				r := runCvfeed(t, env, "backfill", "-config", cfg, "-no-progress")
				if r.code != 0 {
					t.Fatalf("backfill %d: exit %d\n%s", pass, r.code, tail(r.stderr, 20))
				}
				for _, s := range []string{secret, "rt-initial", "rt-rotated", "at-"} {
					if strings.Contains(r.stdout+r.stderr, s) {
						t.Errorf("backfill %d shows the secret or token %q", pass, s)
					}
				}
				if pass == 2 && grant == "refresh_token" && !strings.Contains(r.stderr, "kept in the state") {
					t.Errorf("backfill after a restart does not say it uses the kept refresh token:\n%s", tail(r.stderr, 20))
				}
			}
			exactlyOnce(t, sb.profiles(t), want)
			if grant == "refresh_token" {
				st, err := os.Stat(filepath.Join(dir, "state", "cvfeed.db"))
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("the state holding the refresh token: %v, %v; want mode 0600", st.Mode(), err)
				}
			}
		})
	}
	if g := tok.granted(); strings.Count(strings.Join(g, " "), "refresh_token") != 2 || strings.Count(strings.Join(g, " "), "client_credentials") != 2 {
		t.Errorf("grants served %q, want two of each (one per backfill)", g)
	}
	t.Run("check names the endpoint's error", func(t *testing.T) {
		sb := startSandbox(t)
		cfg := oauthConfig(t, t.TempDir(), sb.url, dv.Addr, "INBOX", grants["client_credentials"])
		r := runCvfeed(t, []string{"APP_SECRET=wrong-secret"}, "check", "-config", cfg)
		if r.code != 1 {
			t.Errorf("check with a wrong client secret: exit %d, want 1", r.code)
		}
		out := r.stdout + r.stderr
		for _, want := range []string{"invalid_client", "AADSTS7000215", "client_credentials"} {
			if !strings.Contains(out, want) {
				t.Errorf("check does not name %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Trace ID") || strings.Contains(out, "wrong-secret") {
			t.Errorf("check shows the trace lines or the secret:\n%s", out)
		}
	})
}
