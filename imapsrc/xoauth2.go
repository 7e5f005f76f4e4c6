package imapsrc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/cvfeed/cvfeed/config"
)

// xoauth2Client is the XOAUTH2 SASL mechanism of Gmail and Microsoft 365
// (go-sasl's sasl.Client): the initial response is
// "user=<user>\x01auth=Bearer <token>\x01\x01". On failure the server
// sends a JSON challenge, answered with an empty response, after which it
// says NO.
type xoauth2Client struct {
	user, token string
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}

// TokenStore keeps the refresh token an OAuth2 endpoint rotated, so that
// it is used after a restart (state.Store; nil in AccountOptions: not
// kept). configured is the token of the config, from which the kept one
// descends: a new one in the config wins.
type TokenStore interface {
	RefreshToken(account, configured string) (string, bool, error)
	SetRefreshToken(account, configured, token string) error
}

// tokenTimeout bounds one request to the token endpoint.
const tokenTimeout = 30 * time.Second

// token returns a valid access token, from the cache or the token
// endpoint by the configured grant. A request the endpoint refuses (an
// HTTP 4xx: invalid_grant for a revoked refresh token, invalid_client or
// an AADSTS error of Entra ID for a wrong secret or certificate) is a
// *LoginError naming the endpoint's error; an unreachable endpoint is
// retried.
func (a *Account) token(ctx context.Context) (string, error) {
	a.tokenOnce.Do(func() { a.tokens, a.tokensErr = a.tokenSource(ctx) })
	if a.tokensErr != nil {
		return "", a.tokensErr
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := a.tokens.Token()
		ch <- result{tok, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	grant := a.cfg.OAuth2.Grant
	if r.err != nil {
		var re *oauth2.RetrieveError
		if errors.As(r.err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
			re.Response.StatusCode != http.StatusTooManyRequests && re.Response.StatusCode != http.StatusRequestTimeout {
			return "", &LoginError{Account: a.cfg.Name, Err: fmt.Errorf("oauth2 token endpoint refused the %s grant (HTTP %d): %s",
				grant, re.Response.StatusCode, describeTokenError(re))}
		}
		var le *LoginError
		if errors.As(r.err, &le) {
			return "", le
		}
		return "", fmt.Errorf("oauth2 token request (%s grant): %w", grant, r.err)
	}
	if r.tok.AccessToken == "" {
		return "", &LoginError{Account: a.cfg.Name, Err: errors.New("oauth2 token endpoint returned no access token")}
	}
	return r.tok.AccessToken, nil
}

// describeTokenError is the endpoint's error code and the first line of
// its description ("invalid_client: AADSTS7000215: Invalid client secret
// provided. ..."): they hold no secret of ours, and say what to fix.
// Entra ID's description goes on with trace and correlation ids.
func describeTokenError(re *oauth2.RetrieveError) string {
	desc, _, _ := strings.Cut(strings.TrimSpace(re.ErrorDescription), "\n")
	desc = strings.TrimSpace(desc)
	if len(desc) > 300 {
		desc = desc[:300] + "…"
	}
	switch {
	case re.ErrorCode != "" && desc != "":
		return re.ErrorCode + ": " + desc
	case re.ErrorCode != "":
		return re.ErrorCode
	case desc != "":
		return desc
	}
	return "no error code in the answer"
}

// tokenSource builds the account's token source. It lives as long as the
// account: the context only carries the HTTP client.
func (a *Account) tokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	o := a.cfg.OAuth2
	hctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, &http.Client{Timeout: tokenTimeout})
	if o.Grant == config.GrantClientCredentials {
		if o.Certificate != "" {
			cert, err := config.ParseClientCertificate([]byte(o.Certificate.Reveal()))
			if err != nil {
				return nil, &LoginError{Account: a.cfg.Name, Err: fmt.Errorf("oauth2 certificate_file: %w", err)}
			}
			return oauth2.ReuseTokenSource(nil, &assertionSource{ctx: hctx, o: o, cert: cert, now: a.now}), nil
		}
		cc := &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret.Reveal(), TokenURL: o.TokenURL,
			Scopes: o.Scopes, AuthStyle: oauth2.AuthStyleInParams}
		return cc.TokenSource(hctx), nil
	}
	configured := o.RefreshToken.Reveal()
	start := configured
	if ts := a.o.Tokens; ts != nil {
		kept, ok, err := ts.RefreshToken(a.cfg.Name, configured)
		if err != nil {
			return nil, err
		}
		if ok {
			start = kept
			a.log.Info("oauth2: using the refresh token kept in the state (the token endpoint rotated the configured one)")
		}
	}
	conf := &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret.Reveal(),
		Endpoint: oauth2.Endpoint{TokenURL: o.TokenURL}, Scopes: o.Scopes}
	src := conf.TokenSource(hctx, &oauth2.Token{RefreshToken: start})
	return oauth2.ReuseTokenSource(nil, &rotatingSource{a: a, src: src, configured: configured, last: start}), nil
}

// rotatingSource notices a refresh token the endpoint rotated and keeps it
// in the state before the access token that came with it is used.
type rotatingSource struct {
	a          *Account
	src        oauth2.TokenSource
	configured string
	last       string
}

func (r *rotatingSource) Token() (*oauth2.Token, error) {
	tok, err := r.src.Token()
	if err != nil || tok.RefreshToken == "" || tok.RefreshToken == r.last {
		return tok, err
	}
	if ts := r.a.o.Tokens; ts != nil {
		if err := ts.SetRefreshToken(r.a.cfg.Name, r.configured, tok.RefreshToken); err != nil {
			return nil, fmt.Errorf("keep the rotated refresh token: %w", err)
		}
		r.a.log.Info("oauth2: the token endpoint rotated the refresh token; the new one is kept in the state")
	}
	r.last = tok.RefreshToken
	return tok, nil
}

// assertionSource is the client-credentials grant with a certificate
// (Entra ID's "certificate credentials", RFC 7523): each request carries a
// fresh JWT signed with the app's private key instead of a secret.
type assertionSource struct {
	ctx  context.Context
	o    *config.OAuth2
	cert *config.ClientCertificate
	now  func() time.Time
}

func (s *assertionSource) Token() (*oauth2.Token, error) {
	jwt, err := clientAssertion(s.o.ClientID, s.o.TokenURL, s.cert, s.now())
	if err != nil {
		return nil, err
	}
	cc := &clientcredentials.Config{ClientID: s.o.ClientID, TokenURL: s.o.TokenURL, Scopes: s.o.Scopes,
		AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {jwt},
		}}
	return cc.Token(s.ctx)
}

// clientAssertion is the signed JWT of Entra ID's certificate credentials:
// header RS256 with x5t (the certificate's SHA-1 thumbprint), claims aud
// (the token URL), iss = sub = client id, a unique jti, valid 10 minutes.
func clientAssertion(clientID, tokenURL string, cert *config.ClientCertificate, now time.Time) (string, error) {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "x5t": enc.EncodeToString(cert.Thumbprint)})
	var jti [16]byte
	rand.Read(jti[:])
	claims, _ := json.Marshal(map[string]any{
		"aud": tokenURL, "iss": clientID, "sub": clientID, "jti": hex.EncodeToString(jti[:]),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	in := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(in))
	sig, err := cert.Key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign the client assertion: %w", err)
	}
	return in + "." + enc.EncodeToString(sig), nil
}
