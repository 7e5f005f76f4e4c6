package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/mailpart"
	"github.com/cvfeed/cvfeed/state"
)

// Store is what an account needs of *state.Store.
type Store interface {
	ClaimMail([]state.MailClaim) ([][]state.ClaimResult, error)
	MailCursor(account, mailbox string) (state.MailCursor, bool, error)
	SetMailCursor(account, mailbox string, c state.MailCursor) error
	DueMessages(account string) ([]state.Message, error)
	MessageDone(id state.MessageID) error
	NoBinary(id state.MessageID) (bool, error)
	SetNoBinary(id state.MessageID) error
	RetriedMessages(account string) ([]state.MessageID, error)
	ForgetMessage(id state.MessageID) error
}

// AccountOptions are an account's dependencies; zero values are defaults.
type AccountOptions struct {
	// Logger receives the account's log lines (nil: none).
	Logger *slog.Logger
	// SpoolDir is where parts are spooled (state_dir/spool); created 0700.
	SpoolDir string
	// Dial opens the TCP connection to the server (tests: counting or
	// cutting proxies); nil: a net.Dialer with a 30 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Stats receives the account's counters; nil: the account's own.
	Stats *Stats
	// Backoff is the reconnect delay policy (zero: 1 s doubling to 5 min).
	Backoff Backoff
	// Tokens keeps the refresh tokens an OAuth2 endpoint rotates (the
	// state); nil: a rotated token lives only as long as the process.
	Tokens TokenStore
	// WireLog, when set, receives the IMAP conversation with credentials
	// redacted (LOGIN and AUTHENTICATE lines, SASL responses, literals of
	// a login). A debugging aid, off by default: it shows mail contents.
	WireLog func(line string)
}

// Account is one [[mailbox]] source: an IMAP account whose folders are
// read for CV attachments. Run (cvfeed run) or Backfill then ActionsNow
// (cvfeed backfill) drive it; they must not run at the same time.
type Account struct {
	cfg    config.Mailbox
	store  Store
	o      AccountOptions
	log    *slog.Logger
	stats  *Stats
	policy mailpart.Policy
	now    func() time.Time
	// notify is signalled by Notify; mail by the server's EXISTS.
	notify chan struct{}
	mail   chan struct{}

	tokenOnce sync.Once
	tokens    oauth2.TokenSource
	tokensErr error

	// failures counts, per message, the connections lost while reading it:
	// the first makes it avoid BINARY, the second fetches it whole (a
	// message whose structure or decoding breaks the server or the client
	// must not stop the folder forever).
	mu       sync.Mutex
	failures map[state.MessageID]int
	// chunkFailures counts the connections lost while fetching the
	// metadata of several messages at once from a folder: then they are
	// fetched one by one, which isolates a poison message.
	chunkFailures map[string]int
	warnedExpunge bool
	// progress counts the messages recorded (read or quarantined): a
	// session that moved it earns the reconnect budget back.
	progress atomic.Int64
}

// LoginError is a login the server refused (NO, AUTHENTICATIONFAILED) or
// an OAuth2 refresh token the token endpoint refused: retrying cannot
// help until the configuration changes.
type LoginError struct {
	Account string
	Err     error
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("mailbox %s: login refused: %v", e.Account, e.Err)
}

func (e *LoginError) Unwrap() error { return e.Err }

// NewAccount returns the source of one [[mailbox]]. It does no I/O.
func NewAccount(cfg config.Mailbox, store Store, o AccountOptions) *Account {
	a := &Account{
		cfg: cfg, store: store, o: o, log: o.Logger, stats: o.Stats, now: o.Now,
		policy:        mailpart.Policy{All: cfg.Accept == config.AcceptAll, MaxSize: cfg.MaxAttachmentSize},
		notify:        make(chan struct{}, 1),
		mail:          make(chan struct{}, 1),
		failures:      map[state.MessageID]int{},
		chunkFailures: map[string]int{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.stats == nil {
		a.stats = new(Stats)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if len(a.cfg.Folders) == 0 {
		a.cfg.Folders = []string{"INBOX"}
	}
	if a.cfg.PollInterval <= 0 {
		a.cfg.PollInterval = time.Minute
	}
	if a.cfg.AfterUpload == "" {
		a.cfg.AfterUpload = config.MailNone
	}
	if a.cfg.NoCVAction == "" {
		a.cfg.NoCVAction = config.MailNone
	}
	return a
}

// Stats returns the account's counters.
func (a *Account) Stats() *Stats { return a.stats }

// Notify says an item was uploaded or failed: within Run, the account then
// runs the after-actions that are due. It never blocks.
func (a *Account) Notify() {
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// tracks reports whether messages are recorded for an after-action.
func (a *Account) tracks() bool {
	return a.cfg.AfterUpload != config.MailNone || a.cfg.NoCVAction != config.MailNone
}

// Run reads new mail until ctx ends: it connects, logs in, catches up
// every folder from its cursor, runs the after-actions that are due, then
// waits in IDLE on the first folder (or polls every PollInterval when the
// server has no IDLE; and polls every folder anyway every PollInterval, as
// a safety net). Network errors reconnect with backoff and jitter. It
// returns nil when ctx ends, a *LoginError at once when the login is
// refused, and another error only for a configuration it cannot use.
//
// On the first run for a folder (no cursor) only mail that arrives from
// then on is read, unless since is set: then the mail since that date is
// read first. cvfeed backfill reads the existing mail.
func (a *Account) Run(ctx context.Context) error {
	streak := 0
	for {
		connected, err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if isRetryNow(err) {
			continue // dealt with: no backoff, not a reconnect
		}
		var le *LoginError
		var pe *permanentError
		switch {
		case errors.As(err, &le):
			return le
		case errors.As(err, &pe):
			return pe.err
		}
		if connected {
			streak = 0
		}
		streak++
		a.stats.Reconnects.Add(1)
		if streak == 1 {
			a.log.Warn("mailbox connection lost; will retry", "err", err)
		} else {
			a.log.Debug("mailbox still unreachable; will retry", "err", err, "attempt", streak)
		}
		if !sleepCtx(ctx, a.o.Backoff.delay(streak)) {
			return nil
		}
	}
}

// Backfill reads every folder once, from its cursor (from the start when
// there is none) up to the newest message there, and returns (cvfeed
// backfill). A lost connection is retried with backoff a few times. A
// folder that cannot be read is logged and reported in the error; the
// others are read. After-actions are left to ActionsNow.
func (a *Account) Backfill(ctx context.Context) error {
	done := map[string]error{}
	for attempt := 1; ; attempt++ {
		before := a.progress.Load()
		err := a.backfillSession(ctx, done)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isRetryNow(err) {
			attempt-- // dealt with: no backoff, nothing counted
			continue
		}
		if a.progress.Load() > before {
			attempt = 1 // the budget is for sessions that get nowhere
		}
		var le *LoginError
		var pe *permanentError
		switch {
		case err == nil:
			var errs []error
			for _, f := range a.cfg.Folders {
				if done[f] != nil {
					errs = append(errs, done[f])
				}
			}
			return errors.Join(errs...)
		case errors.As(err, &le):
			return le
		case errors.As(err, &pe):
			return pe.err
		case attempt >= maxBackfillAttempts:
			return fmt.Errorf("mailbox %s: %w", a.cfg.Name, err)
		}
		a.stats.Reconnects.Add(1)
		a.log.Warn("mailbox connection lost during backfill; will retry", "err", err, "attempt", attempt)
		if !sleepCtx(ctx, a.o.Backoff.delay(attempt)) {
			return ctx.Err()
		}
	}
}

// maxBackfillAttempts bounds the connections in a row, without a message
// read or quarantined in between, that a backfill opens.
const maxBackfillAttempts = 6

func (a *Account) backfillSession(ctx context.Context, done map[string]error) (err error) {
	cn, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close()
	defer func() { err = cn.explain(err) }()
	for _, f := range a.cfg.Folders {
		if _, ok := done[f]; ok {
			continue
		}
		err := a.syncFolder(ctx, cn, f, true)
		var fe *folderError
		if err != nil && !errors.As(err, &fe) {
			return err
		}
		if fe != nil {
			err = fe
		}
		done[f] = err
	}
	return cn.logout()
}

// ActionsNow connects if an after-action is due and runs every due
// after-action once (cvfeed backfill calls it at its end).
func (a *Account) ActionsNow(ctx context.Context) error {
	due, err := a.store.DueMessages(a.cfg.Name)
	if err != nil || !anyActionable(due) {
		return err
	}
	cn, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close()
	if err := a.runActions(ctx, cn); err != nil {
		return err
	}
	return cn.logout()
}

// permanentError is a configuration the account cannot use (plain text
// to a remote host, an unreadable CA file): no retry helps.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

// folderError is a folder that cannot be selected: logged, the other
// folders go on, it is tried again at the next poll.
type folderError struct {
	account, folder string
	err             error
}

func (e *folderError) Error() string {
	return fmt.Sprintf("mailbox %s: folder %q: %v", e.account, e.folder, e.err)
}

func (e *folderError) Unwrap() error { return e.err }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
