package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/cvfeed/cvfeed/sandbox"
)

// cmdSandbox runs the fake Riminder API (package sandbox) on -listen until
// ctx ends. The first line on stdout is the base URL, so scripts can use
// -listen 127.0.0.1:0 and read the port back.
func cmdSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts    sandbox.Options
		rawKeys []string // parsed after fs.Parse, so that errors never echo a key
	)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	fs.Func("api-key", "accepted API key `KEY`, repeatable: KEY (read and write), KEY:r (read-only), KEY:w (write-only)"+
		"\n(default: any non-empty key, with both permissions)", func(v string) error {
		rawKeys = append(rawKeys, v)
		return nil
	})
	fs.Func("source", "existing source id `ID`, repeatable (default: any 40-hex id)", func(v string) error {
		opts.Sources = append(opts.Sources, v)
		return nil
	})
	fs.Func("filter", "existing filter reference `REF`, repeatable (default: any non-empty reference)", func(v string) error {
		opts.Filters = append(opts.Filters, v)
		return nil
	})
	fs.StringVar(&opts.Dir, "dir", "", "store accepted files in `DIR` as DIR/<sha256> (default: keep only metadata)")
	fs.Float64Var(&opts.FailRate, "fail-rate", 0, "probability (0..1) of a fault on each API request")
	failCodes := fs.String("fail-codes", "500,503,429,reset", "faults to inject: statuses and/or reset")
	fs.DurationVar(&opts.Latency, "latency", 0, "delay added before each API response")
	fs.StringVar(&opts.WebhookURL, "webhook", "", "send a signed profile.parse.success event to `URL` after each upload")
	fs.StringVar(&opts.WebhookSecret, "webhook-secret", "", "webhook secret key used to sign events")
	fs.Int64Var(&opts.Seed, "seed", 0, "seed of the fault injector (0: random)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.String("config", "", "ignored: the sandbox reads no config")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sandbox: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for i, v := range rawKeys {
		k, err := sandbox.ParseKey(v)
		if err != nil {
			fmt.Fprintf(stderr, "sandbox: -api-key #%d: %v\n", i+1, err)
			return 2
		}
		opts.Keys = append(opts.Keys, k)
	}
	faults, err := sandbox.ParseFaults(*failCodes)
	if err != nil {
		fmt.Fprintf(stderr, "sandbox: -fail-codes: %v\n", err)
		return 2
	}
	opts.FailCodes = faults
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "sandbox: -log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts.Logger = log

	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			log.Error("create -dir", "err", err)
			return 1
		}
	}
	l, err := sandbox.Listen(*listen, opts)
	if err != nil {
		log.Error("start", "addr", *listen, "err", err)
		return 1
	}
	fmt.Fprintln(stdout, l.URL)
	log.Info("sandbox listening on "+l.URL, "keys", len(opts.Keys), "sources", len(opts.Sources),
		"fail_rate", opts.FailRate, "latency", opts.Latency, "webhook", opts.WebhookURL != "")
	select {
	case err := <-l.Served():
		log.Error("serve", "err", err)
		l.Close()
		return 1
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Shutdown(shutCtx); err != nil {
		log.Warn("shutdown: closed the remaining connections", "err", err)
	}
	log.Info("sandbox stopped")
	return 0
}
