package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"
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

// token returns a valid access token, refreshed with the refresh token
// when the cached one has expired. A refresh the token endpoint refuses
// (an HTTP 4xx, such as invalid_grant for a revoked token) is a
// *LoginError; an unreachable endpoint is retried.
func (a *Account) token(ctx context.Context) (string, error) {
	a.tokenOnce.Do(func() {
		o := a.cfg.OAuth2
		conf := &oauth2.Config{
			ClientID:     o.ClientID,
			ClientSecret: o.ClientSecret.Reveal(),
			Endpoint:     oauth2.Endpoint{TokenURL: o.TokenURL},
			Scopes:       o.Scopes,
		}
		// The token source lives as long as the account: the context only
		// carries the HTTP client, each refresh is bounded below.
		src := conf.TokenSource(context.WithoutCancel(ctx), &oauth2.Token{RefreshToken: o.RefreshToken.Reveal()})
		a.tokens = oauth2.ReuseTokenSource(nil, src)
	})
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
	if r.err != nil {
		var re *oauth2.RetrieveError
		if errors.As(r.err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
			re.Response.StatusCode != http.StatusTooManyRequests && re.Response.StatusCode != http.StatusRequestTimeout {
			// RetrieveError's text includes the endpoint's body, which
			// holds no secret of ours; the error code says why.
			return "", &LoginError{Account: a.cfg.Name, Err: fmt.Errorf("oauth2 token refresh refused (HTTP %d %s)", re.Response.StatusCode, re.ErrorCode)}
		}
		return "", fmt.Errorf("oauth2 token refresh: %w", r.err)
	}
	if r.tok.AccessToken == "" {
		return "", &LoginError{Account: a.cfg.Name, Err: errors.New("oauth2 token endpoint returned no access token")}
	}
	return r.tok.AccessToken, nil
}
