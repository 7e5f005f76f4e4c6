package ops

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of one upload attempt, the outcome label of
// cvfeed_uploads_total. Other values are accepted; keep them few, as every
// value is a time series per source.
const (
	OutcomeUploaded  = "uploaded"  // the API took the CV (201, or a duplicate reference confirmed)
	OutcomeDuplicate = "duplicate" // the same content was already sent for this source
	OutcomeFailed    = "failed"    // given up: a permanent error or max_attempts reached
	OutcomeRetried   = "retried"   // a transient error; the item will be tried again
	OutcomePaused    = "paused"    // 401/402/403: uploads pause, the item stays pending
)

// Watch modes of a folder, the mode label of cvfeed_watcher_mode.
const (
	ModeEvents = "events"
	ModePoll   = "poll"
)

// uploadBuckets suit uploads from a small PDF on a fast link (50 ms) to a
// large scan on a slow one (5 min).
var uploadBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// QueueFunc returns the number of items per source and state
// (counts[source][state]). It is called on every scrape, possibly from
// several goroutines at once, so it must be safe for concurrent use and
// quick; an error makes the scrape leave cvfeed_queue_items out.
type QueueFunc func() (counts map[string]map[string]int, err error)

// Metrics owns cvfeed's Prometheus registry: the Go and process
// collectors and the cvfeed_ metrics. It uses its own registry, never the
// global default one. The methods are safe for concurrent use, and a nil
// *Metrics accepts every call and records nothing.
type Metrics struct {
	reg *prometheus.Registry

	uploads     *prometheus.CounterVec
	duration    prometheus.Histogram
	retries     *prometheus.CounterVec
	api         *prometheus.CounterVec
	reconnects  *prometheus.CounterVec
	quarantined *prometheus.CounterVec
	watchMode   *prometheus.GaugeVec
	folderUp    *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	mailboxUp   *prometheus.GaugeVec
	paused      prometheus.Gauge

	mu    sync.Mutex
	modes map[string]map[string]bool // folder → every mode label it has had
}

// NewMetrics builds the registry. version is the value of
// cvfeed_build_info{version}; queue, if not nil, gives cvfeed_queue_items
// at scrape time, so the value is never stale.
func NewMetrics(version string, queue QueueFunc) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvfeed_uploads_total",
			Help: "Items handled by source and outcome of the attempt (uploaded, duplicate, failed, retried, paused).",
		}, []string{"source", "outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cvfeed_upload_duration_seconds",
			Help:    "Time of one upload attempt, from the first byte sent to the API's answer, whatever the outcome.",
			Buckets: uploadBuckets,
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvfeed_retries_total",
			Help: "Uploads scheduled again after a transient error (network, 408, 425, 429, 5xx), by source.",
		}, []string{"source"}),
		api: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvfeed_api_responses_total",
			Help: `Requests to the Riminder API by HTTP status code, or "network", "reset" or "timeout" when no status came back.`,
		}, []string{"code"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvfeed_imap_reconnects_total",
			Help: "IMAP connections opened again after a lost or failed one, by mailbox account.",
		}, []string{"account"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvfeed_mail_quarantined_total",
			Help: "Messages given up after repeated failures (listed by cvfeed failed), by mailbox account.",
		}, []string{"account"}),
		watchMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvfeed_watcher_mode",
			Help: "How each folder is watched: 1 for its current mode (events, poll), 0 for the others.",
		}, []string{"folder", "mode"}),
		folderUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvfeed_folder_up",
			Help: "1 when the folder is there and readable, 0 when it is down: missing, not a directory, unreadable, or an empty mount point (a share that did not mount).",
		}, []string{"folder"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvfeed_last_success_timestamp_seconds",
			Help: "Unix time of the last CV of each source the API confirmed.",
		}, []string{"source"}),
		mailboxUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvfeed_mailbox_up",
			Help: "1 while the mailbox's account runs (connected or reconnecting), 0 when it stopped by itself (a refused login): it stays stopped until a reload.",
		}, []string{"mailbox"}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cvfeed_uploads_paused",
			Help: "1 while uploads are paused because the API refuses the key (401), the quota is spent (402) or the key may not upload (403); 0 otherwise.",
		}),
		modes: make(map[string]map[string]bool),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cvfeed_build_info",
		Help: "Always 1; the version label is the running cvfeed's version.",
	}, []string{"version"})
	build.WithLabelValues(version).Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.uploads, m.duration, m.retries, m.api, m.reconnects, m.quarantined, m.watchMode, m.folderUp, m.lastSuccess,
		m.mailboxUp, m.paused,
	)
	if queue != nil {
		m.reg.MustRegister(&queueCollector{fn: queue, desc: prometheus.NewDesc(
			"cvfeed_queue_items",
			"Items in state by source and state (pending, uploaded, duplicate, failed...), read at scrape time.",
			[]string{"source", "state"}, nil,
		)})
	}
	return m
}

// Registry returns the registry, for tests or for collectors of other
// packages. Nil for a nil *Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails (the queue callback) is logged and left out; the
// other metrics are still served.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg, // counts promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// UploadDone records the outcome (OutcomeUploaded, ...) of a source's
// item and how long its upload attempt took; d <= 0 means nothing was
// sent (a duplicate), which the latency histogram leaves out.
func (m *Metrics) UploadDone(source, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.uploads.WithLabelValues(source, outcome).Inc()
	if d > 0 {
		m.duration.Observe(d.Seconds())
	}
}

// Retry records that an item of source is scheduled for another attempt.
func (m *Metrics) Retry(source string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(source).Inc()
}

// APIStatus records a response of the API by its status code. A code
// outside 100..599 counts as "other".
func (m *Metrics) APIStatus(code int) {
	if m == nil {
		return
	}
	label := "other"
	if code >= 100 && code <= 599 {
		label = strconv.Itoa(code)
	}
	m.api.WithLabelValues(label).Inc()
}

// APINoResponse records a request that got no status: reason is "reset"
// (connection reset or closed), "timeout", or anything else, counted as
// "network".
func (m *Metrics) APINoResponse(reason string) {
	if m == nil {
		return
	}
	if reason != "reset" && reason != "timeout" {
		reason = "network"
	}
	m.api.WithLabelValues(reason).Inc()
}

// IMAPReconnect records a new connection to a mailbox account after a lost
// or failed one.
func (m *Metrics) IMAPReconnect(account string) {
	if m == nil {
		return
	}
	m.reconnects.WithLabelValues(account).Inc()
}

// MailQuarantined records a message of a mailbox account given up after
// repeated failures.
func (m *Metrics) MailQuarantined(account string) {
	if m == nil {
		return
	}
	m.quarantined.WithLabelValues(account).Inc()
}

// SetWatchMode sets folder's current mode (ModeEvents, ModePoll): its
// series is 1, and every other mode the folder has had, or a known mode,
// is 0.
func (m *Metrics) SetWatchMode(folder, mode string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.modes[folder]
	if seen == nil {
		seen = map[string]bool{ModeEvents: true, ModePoll: true}
		m.modes[folder] = seen
	}
	seen[mode] = true
	for other := range seen {
		v := 0.0
		if other == mode {
			v = 1
		}
		m.watchMode.WithLabelValues(folder, other).Set(v)
	}
}

// SetFolderUp sets whether folder is up (1) or down (0).
func (m *Metrics) SetFolderUp(folder string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.folderUp.WithLabelValues(folder).Set(v)
}

// LastSuccess records when the API last confirmed a CV of source.
func (m *Metrics) LastSuccess(source string, t time.Time) {
	if m == nil {
		return
	}
	m.lastSuccess.WithLabelValues(source).Set(float64(t.UnixNano()) / 1e9)
}

// SetMailboxUp sets whether the account of mailbox runs (1) or stopped by
// itself (0). It also starts the mailbox's cvfeed_imap_reconnects_total at
// 0, so that an alert on its increase sees the first reconnect.
func (m *Metrics) SetMailboxUp(mailbox string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.mailboxUp.WithLabelValues(mailbox).Set(v)
	m.reconnects.WithLabelValues(mailbox)
}

// SetPaused sets whether uploads are paused by the API's refusal of the
// key (401, 402, 403).
func (m *Metrics) SetPaused(paused bool) {
	if m == nil {
		return
	}
	v := 0.0
	if paused {
		v = 1
	}
	m.paused.Set(v)
}

// KnowSource starts the counters of a source at 0 (cvfeed_uploads_total
// for each outcome, cvfeed_retries_total), so that a rule over their
// increase sees the first event instead of a series that appears at 1.
func (m *Metrics) KnowSource(source string) {
	if m == nil {
		return
	}
	for _, o := range []string{OutcomeUploaded, OutcomeDuplicate, OutcomeFailed, OutcomeRetried, OutcomePaused} {
		m.uploads.WithLabelValues(source, o)
	}
	m.retries.WithLabelValues(source)
}

// ForgetSource drops the gauges of a source removed by a reload (its
// watcher mode, whether it is up, its last success and whether its
// mailbox runs), so they no
// longer show a stale value.
// Counters stay: Prometheus expects them not to vanish.
func (m *Metrics) ForgetSource(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.modes, name)
	m.mu.Unlock()
	m.watchMode.DeletePartialMatch(prometheus.Labels{"folder": name})
	m.folderUp.DeleteLabelValues(name)
	m.lastSuccess.DeleteLabelValues(name)
	m.mailboxUp.DeleteLabelValues(name)
}

// StateSize serves cvfeed_state_bytes, the size of the state file, read
// by size at scrape time (it shrinks after cvfeed state compact). An error
// of size leaves it out of that scrape.
func (m *Metrics) StateSize(size func() (int64, error)) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&sizeCollector{fn: size, desc: prometheus.NewDesc(
		"cvfeed_state_bytes",
		"Size of the state file (state_dir/cvfeed.db) in bytes, read at scrape time.",
		nil, nil,
	)})
}

// sizeCollector turns a size function into cvfeed_state_bytes.
type sizeCollector struct {
	fn   func() (int64, error)
	desc *prometheus.Desc
}

func (c *sizeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sizeCollector) Collect(ch chan<- prometheus.Metric) {
	n, err := c.fn()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("read the state size: %w", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}

// queueCollector turns a QueueFunc into cvfeed_queue_items at scrape time.
type queueCollector struct {
	fn   QueueFunc
	desc *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.fn()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("read queue counts: %w", err))
		return
	}
	for source, states := range counts {
		for st, n := range states {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), source, st)
		}
	}
}

// promLogger adapts slog to promhttp's Println logger.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	if l.log != nil {
		l.log.Warn("metrics scrape", "err", fmt.Sprint(v...))
	}
}
