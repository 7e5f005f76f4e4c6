package watcher

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

func testTime() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

func errCanceled() error { return context.Canceled }

// testLogger sends the log to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
