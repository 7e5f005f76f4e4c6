// Package ops is what an operator sees of a running cvfeed: Prometheus
// metrics, a health endpoint, the Riminder webhook receiver, and the
// systemd notification protocol (readiness, status, watchdog).
//
// It imports no other cvfeed package. The daemon (cmd/cvfeed) feeds it plain
// values and callbacks from its hooks:
//
//	m := ops.NewMetrics(version, queueCounts)        // queueCounts reads state at scrape time
//	h := ops.NewHealth()
//	h.Check("state", store.Err)                       // pulled on every GET /healthz
//	h.Report("uploads", errPaused)                    // pushed by a hook; nil clears it
//	wh, err := ops.NewWebhook(secrets, markParsed, log)
//	srv := ops.NewServer(cfg.HTTP.Listen, ops.Handlers{Metrics: m, Health: h, Webhook: wh}, log)
//	if err := srv.Listen(); err != nil { ... }        // fail at start, before READY=1
//	g.Go(func() error { return srv.Run(ctx) })
//
//	n := ops.NewNotifier(log)
//	var hb ops.Heartbeat                              // the main loop calls hb.Beat()
//	g.Go(func() error { return n.Watchdog(ctx, hb.Alive) })
//	n.Ready(); n.Status("watching 2 folders, 1 mailbox; 0 pending")
//	// SIGHUP: n.Reloading(); reload; n.Ready().  SIGTERM: n.Stopping().
//
// Every piece is optional: a nil *Metrics accepts every call and records
// nothing, and without NOTIFY_SOCKET the Notifier sends nothing.
//
// Files: metrics.go (Metrics), health.go (Health), webhook.go (the /webhook
// handler), signature.go (the three signature schemes of riminder-api.md
// §5.2), notify.go (Notifier, Heartbeat), server.go (the listener). The
// subpackage notifytest is a fake NOTIFY_SOCKET for tests.
package ops
