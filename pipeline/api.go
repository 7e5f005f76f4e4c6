package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/sandbox"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/uploader"
)

// APIClient is what the pipeline and cvfeed check need of either API
// flavour's client.
type APIClient interface {
	uploader.API
	Sources(ctx context.Context) ([]uploader.Source, error)
	Source(ctx context.Context, id string) (uploader.Source, error)
}

// API is a client to the configured API, and the embedded sandbox behind
// it when api.url is "sandbox".
type API struct {
	Client APIClient
	// URL is the base URL the client uses (the embedded sandbox's own
	// when api.url is "sandbox").
	URL   string
	close func()
	// files opens the files of uploads; set it on reload.
	files *itemOpener
}

// Close stops the embedded sandbox, if any, once the client is done.
func (a *API) Close() { a.close() }

// OpenAPI makes the client of the configured flavour; with url = "sandbox"
// it first starts the sandbox in this process on a loopback port. observe,
// if set, sees every status (or why there was none).
func OpenAPI(cfg *config.Config, log *slog.Logger, observe func(int, error), userAgent string) (*API, error) {
	a := &API{URL: cfg.API.URL, close: func() {}, files: newItemOpener(cfg)}
	if cfg.API.Sandbox() {
		l, err := sandbox.Listen("127.0.0.1:0", sandbox.Options{Logger: log.With("component", "sandbox")})
		if err != nil {
			return nil, fmt.Errorf("start sandbox: %w", err)
		}
		a.URL = l.URL
		if cfg.API.Flavor == config.FlavorHrFlow {
			a.URL += "/v1" // the sandbox serves HrFlow's v1 paths there
		}
		a.close = l.Close // once the client is done with the API
		log.Info("using the embedded sandbox API (api.url = \"sandbox\"): nothing leaves this machine", "url", a.URL)
	}
	var (
		c   APIClient
		err error
	)
	switch cfg.API.Flavor {
	case config.FlavorHrFlow:
		c, err = uploader.NewHrFlowClient(uploader.HrFlowOptions{
			BaseURL:   a.URL,
			Key:       cfg.API.Key.Reveal(),
			UserEmail: cfg.API.UserEmail,
			Timeout:   cfg.API.Timeout,
			MaxConns:  cfg.API.Workers,
			UserAgent: userAgent,
			Observe:   observe,
			Open:      a.files.open,
			Logger:    log,
		})
	default:
		c, err = uploader.NewClient(uploader.ClientOptions{
			BaseURL:   a.URL,
			Key:       cfg.API.Key.Reveal(),
			Timeout:   cfg.API.Timeout,
			MaxConns:  cfg.API.Workers,
			UserAgent: userAgent,
			Observe:   observe,
			Open:      a.files.open,
			Logger:    log,
		})
	}
	if err != nil {
		a.close()
		return nil, err
	}
	a.Client = c
	return a, nil
}

// ProbeRead finds out whether the key may read (GET sources). Only a 403
// means a write-only key: cvfeed still works, relying on the
// duplicate-reference answer, and says so once. A 401 (the key is wrong or
// revoked) and a 402 (the quota is spent) concern every request: they are
// logged as what they are, and the uploads pause on them (or a backfill
// stops) until the key works; read access is then assumed, as when the
// API cannot be reached.
func ProbeRead(ctx context.Context, c APIClient, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.Sources(ctx)
	switch uploader.StatusOf(err) {
	case http.StatusForbidden:
		log.Warn("the API key has no read access (GET sources: 403): running without read access, uploads are confirmed by their profile_reference", "err", err)
		return false
	case http.StatusUnauthorized:
		log.Error("the API refused the key (GET sources: 401: wrong or revoked key; check api_key): uploads will pause until it is fixed", "err", err)
		return true
	case http.StatusPaymentRequired:
		log.Error("the API quota is spent (GET sources: 402): uploads will pause until it is renewed", "err", err)
		return true
	}
	if err != nil {
		log.Warn("cannot reach the API to check the key; uploads will be retried", "err", err)
	}
	return true
}

// APIIdentity names the API the config uploads to, as the state records
// it: the flavour and the base URL normalised (scheme and host in lower
// case, no default port, no trailing slash, no user:password), or
// "sandbox" for the embedded sandbox, which is an API of its own.
func APIIdentity(cfg *config.Config) string {
	if cfg.API.Sandbox() {
		return cfg.API.Flavor + " sandbox"
	}
	return cfg.API.Flavor + " " + normalizeAPIURL(cfg.API.URL)
}

func normalizeAPIURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an invalid URL)" // config validation refuses it
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		port = ""
	}
	if port != "" || strings.Contains(host, ":") {
		host = net.JoinHostPort(host, port)
		host = strings.TrimSuffix(host, ":")
	}
	u.Host = host
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	return u.String()
}

// BindAPI makes sure the state belongs to the config's API before run or
// backfill upload anything: a state with items uploaded to another API is
// refused (one line naming both and the ways forward). A state of an older
// cvfeed, which did not record it, is bound to the configured API.
func BindAPI(store *state.Store, cfg *config.Config, log *slog.Logger) error {
	id := APIIdentity(cfg)
	b, err := store.BindAPI(id)
	if err != nil {
		return err
	}
	switch {
	case b.Changed && b.Previous == "" && !b.Empty:
		log.Info("the state did not record which API its uploads went to (an older cvfeed wrote it): it is now bound to the configured API", "api", id)
	case b.Changed && b.Previous != "":
		log.Info("the state held no items: it is now bound to the configured API", "api", id, "was", b.Previous)
	case b.Changed:
		log.Debug("state bound to the configured API", "api", id)
	}
	return nil
}
