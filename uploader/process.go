package uploader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

// process uploads one item and says what became of it. auth is the API's
// refusal of the key (401, 402, 403), which concerns every item, not this
// one: the item is released unchanged.
func (p *Pool) process(ctx context.Context, it state.Item) (res state.Result, auth error) {
	res = state.Result{Key: it.Key}
	log := &itemLog{base: p.log, it: &it}
	release := func(maybeSent bool) (state.Result, error) {
		res.Outcome, res.MaybeSent, res.Next = state.Release, maybeSent, time.Time{}
		return res, nil
	}
	md, err := p.metadata(it)
	if err != nil {
		return p.fail(log, it, res, false, err), nil
	}
	up := Upload{
		SourceID: it.SourceID, Path: it.Path, FileName: it.FileName, Size: it.Size, SHA256: it.SHA256,
		Reference: ReferenceFor(it.SHA256), Received: it.Received, ReceivedFromFile: !p.spooled(it.Path),
		TrainingMetadata: md,
	}

	if it.MaybeSent && p.read.Load() {
		// The last process stopped while this upload was in flight: ask
		// before sending it again.
		found, err := p.lookup(ctx, it)
		switch {
		case ctx.Err() != nil:
			return release(true)
		case err == nil && found:
			log.Info("upload interrupted by the last stop was received by the API", "reference", up.Reference)
			res.Outcome = state.Done
			return res, nil
		case err != nil && !IsAuth(err):
			return p.retry(log, it, res, true, true, err), nil
		}
		// Not there, or the key may not read: send it; a duplicate
		// reference answer still keeps it exactly-once.
	}

	if err := p.limiter.Wait(ctx); err != nil {
		return release(it.MaybeSent)
	}
	out, err := p.dyn.Load().api.PostProfile(ctx, up)
	switch {
	case err == nil:
		log.Debug("uploaded", "file_id", out.FileID, "attempt", it.Attempts+1)
		res.Outcome, res.Attempted, res.FileID = state.Done, true, out.FileID
		return res, nil
	case ctx.Err() != nil:
		// Stopped mid-request: the API may or may not have it.
		return release(true)
	case IsDuplicateReference(err):
		return p.duplicate(ctx, log, it, res, err), nil
	case IsAuth(err):
		res, _ = release(it.MaybeSent)
		return res, err
	case StatusOf(err) == http.StatusTooManyRequests:
		// Rate limited: the API asks us to come back; not a failure.
		return p.retry(log, it, res, false, false, err), nil
	case IsTransient(err):
		return p.retry(log, it, res, true, false, err), nil
	default:
		return p.fail(log, it, res, StatusOf(err) != 0, err), nil
	}
}

// duplicate handles "profile_reference already exists": the reference is
// derived from the content, so the API already holds this CV, most likely
// from an attempt whose answer was lost. GET profile confirms it when the
// key may read; a write-only key has to trust the answer.
func (p *Pool) duplicate(ctx context.Context, log logger, it state.Item, res state.Result, dupErr error) state.Result {
	res.Attempted = true
	if p.read.Load() {
		found, err := p.lookup(ctx, it)
		switch {
		case ctx.Err() != nil:
			res.Outcome, res.MaybeSent = state.Release, true
			return res
		case err != nil && !IsAuth(err):
			return p.retry(log, it, res, true, true, fmt.Errorf("confirm existing reference: %w", err))
		case err == nil && !found && p.read.Load():
			return p.retry(log, it, res, true, true, fmt.Errorf("the API says the reference exists (%v) but GET profile finds no profile", dupErr))
		}
	}
	log.Info("already in the API (profile_reference exists): counted as uploaded", "reference", ReferenceFor(it.SHA256))
	res.Outcome = state.Done
	return res
}

// lookup asks GET profile for the item's reference, retrying a transient
// failure twice at once. A key without read access (401/403) turns read
// access off for the pool: found is false and err is the refusal.
func (p *Pool) lookup(ctx context.Context, it state.Item) (found bool, err error) {
	ref := ReferenceFor(it.SHA256)
	for try := range 3 {
		if err = p.limiter.Wait(ctx); err != nil {
			return false, err
		}
		_, err = p.dyn.Load().api.GetProfile(ctx, it.SourceID, ref)
		switch s := StatusOf(err); {
		case err == nil:
			return true, nil
		case s == http.StatusNotFound || s == http.StatusBadRequest:
			return false, nil
		case IsAuth(err):
			p.noRead(err)
			return false, err
		case !IsTransient(err) || ctx.Err() != nil:
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Duration(try+1) * 250 * time.Millisecond):
		}
	}
	return false, err
}

// noRead records that the key may not read: from now on the pool relies on
// the duplicate-reference answer to stay exactly-once.
func (p *Pool) noRead(err error) {
	if p.read.Swap(false) {
		p.log.Warn("the API key has no read access: uploads are confirmed by their profile_reference instead of GET profile", "err", err)
	}
}

// retry queues the item again after a backoff, or fails it when the
// attempts are spent. counted says whether this try counts as an attempt
// (a 429 does not).
func (p *Pool) retry(log logger, it state.Item, res state.Result, counted, maybeSent bool, err error) state.Result {
	var ae *APIError
	var after time.Duration
	if errors.As(err, &ae) {
		after = ae.RetryAfter
	}
	n := it.Attempts
	if counted {
		n++
		res.Attempted = true
	}
	dyn := p.dyn.Load()
	if counted && n >= dyn.maxAttempts {
		return p.fail(log, it, res, true, fmt.Errorf("giving up after %d attempts: %w", n, err))
	}
	res.Outcome = state.Retry
	res.Err = err.Error()
	res.MaybeSent = maybeSent
	delay := dyn.backoff.Delay(max(n, 1), after)
	res.Next = p.cfg.Now().Add(delay)
	log.Warn("upload failed, will retry", "err", err, "attempt", n, "retry_in", delay.Round(time.Millisecond))
	return res
}

// fail records a permanent failure.
func (p *Pool) fail(log logger, it state.Item, res state.Result, attempted bool, err error) state.Result {
	res.Outcome = state.Fail
	res.Attempted = res.Attempted || attempted
	res.Err = err.Error()
	log.Error("upload failed, giving up", "err", err)
	return res
}

// spooled reports whether path is a spool file of a mailbox source.
func (p *Pool) spooled(path string) bool {
	dir := p.cfg.SpoolDir
	return dir != "" && strings.HasPrefix(filepath.Clean(path), filepath.Clean(dir)+string(filepath.Separator))
}

func (p *Pool) metadata(it state.Item) ([]byte, error) {
	md := p.dyn.Load().metadata
	if md == nil {
		return nil, nil
	}
	return md(it)
}

// itemLog is the logger of one item's upload: the base logger with the
// item's source, file and hash. It is made at the first line written, not
// for every upload: most uploads write none (Debug is usually off).
type itemLog struct {
	base *slog.Logger
	it   *state.Item
	l    *slog.Logger
}

func (l *itemLog) logger() *slog.Logger {
	if l.l == nil {
		name := l.it.Origin
		if name == "" {
			name = l.it.Path
		}
		l.l = l.base.With("source", l.it.Source, "file", name, "sha256", l.it.Hex()[:16])
	}
	return l.l
}

func (l *itemLog) log(level slog.Level, msg string, args []any) {
	if !l.base.Enabled(context.Background(), level) {
		return
	}
	l.logger().Log(context.Background(), level, msg, args...)
}

func (l *itemLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }
func (l *itemLog) Info(msg string, args ...any)  { l.log(slog.LevelInfo, msg, args) }
func (l *itemLog) Warn(msg string, args ...any)  { l.log(slog.LevelWarn, msg, args) }
func (l *itemLog) Error(msg string, args ...any) { l.log(slog.LevelError, msg, args) }

// logger is the part of *slog.Logger process uses.
type logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}
