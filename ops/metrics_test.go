package ops

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsValues(t *testing.T) {
	queue := func() (map[string]map[string]int, error) {
		return map[string]map[string]int{
			"inbox": {"pending": 3, "uploaded": 10},
			"jobs":  {"failed": 1},
		}, nil
	}
	m := NewMetrics("1.2.3", queue)
	m.UploadDone("inbox", OutcomeUploaded, 80*time.Millisecond)
	m.UploadDone("inbox", OutcomeUploaded, 3*time.Second)
	m.UploadDone("jobs", OutcomeRetried, 400*time.Second)
	m.UploadDone("inbox", OutcomeDuplicate, 0) // nothing sent: no latency
	m.Retry("jobs")
	m.APIStatus(201)
	m.APIStatus(201)
	m.APIStatus(503)
	m.APIStatus(0)
	m.APINoResponse("reset")
	m.APINoResponse("dns lookup failed")
	m.IMAPReconnect("jobs")
	m.SetWatchMode("inbox", ModeEvents)
	m.SetWatchMode("share", ModeEvents)
	m.SetWatchMode("share", ModePoll) // inotify failed: polled instead
	m.LastSuccess("inbox", time.Unix(1700000000, 500_000_000))

	want := `
# HELP cvfeed_api_responses_total Requests to the Riminder API by HTTP status code, or "network", "reset" or "timeout" when no status came back.
# TYPE cvfeed_api_responses_total counter
cvfeed_api_responses_total{code="201"} 2
cvfeed_api_responses_total{code="503"} 1
cvfeed_api_responses_total{code="network"} 1
cvfeed_api_responses_total{code="other"} 1
cvfeed_api_responses_total{code="reset"} 1
# HELP cvfeed_build_info Always 1; the version label is the running cvfeed's version.
# TYPE cvfeed_build_info gauge
cvfeed_build_info{version="1.2.3"} 1
# HELP cvfeed_imap_reconnects_total IMAP connections opened again after a lost or failed one, by mailbox account.
# TYPE cvfeed_imap_reconnects_total counter
cvfeed_imap_reconnects_total{account="jobs"} 1
# HELP cvfeed_last_success_timestamp_seconds Unix time of the last CV of each source the API confirmed.
# TYPE cvfeed_last_success_timestamp_seconds gauge
cvfeed_last_success_timestamp_seconds{source="inbox"} 1.7000000005e+09
# HELP cvfeed_queue_items Items in state by source and state (pending, uploaded, duplicate, failed...), read at scrape time.
# TYPE cvfeed_queue_items gauge
cvfeed_queue_items{source="inbox",state="pending"} 3
cvfeed_queue_items{source="inbox",state="uploaded"} 10
cvfeed_queue_items{source="jobs",state="failed"} 1
# HELP cvfeed_retries_total Uploads scheduled again after a transient error (network, 408, 425, 429, 5xx), by source.
# TYPE cvfeed_retries_total counter
cvfeed_retries_total{source="jobs"} 1
# HELP cvfeed_upload_duration_seconds Time of one upload attempt, from the first byte sent to the API's answer, whatever the outcome.
# TYPE cvfeed_upload_duration_seconds histogram
cvfeed_upload_duration_seconds_bucket{le="0.05"} 0
cvfeed_upload_duration_seconds_bucket{le="0.1"} 1
cvfeed_upload_duration_seconds_bucket{le="0.25"} 1
cvfeed_upload_duration_seconds_bucket{le="0.5"} 1
cvfeed_upload_duration_seconds_bucket{le="1"} 1
cvfeed_upload_duration_seconds_bucket{le="2.5"} 1
cvfeed_upload_duration_seconds_bucket{le="5"} 2
cvfeed_upload_duration_seconds_bucket{le="10"} 2
cvfeed_upload_duration_seconds_bucket{le="30"} 2
cvfeed_upload_duration_seconds_bucket{le="60"} 2
cvfeed_upload_duration_seconds_bucket{le="120"} 2
cvfeed_upload_duration_seconds_bucket{le="300"} 2
cvfeed_upload_duration_seconds_bucket{le="+Inf"} 3
cvfeed_upload_duration_seconds_sum 403.08
cvfeed_upload_duration_seconds_count 3
# HELP cvfeed_uploads_total Items handled by source and outcome of the attempt (uploaded, duplicate, failed, retried, paused).
# TYPE cvfeed_uploads_total counter
cvfeed_uploads_total{outcome="duplicate",source="inbox"} 1
cvfeed_uploads_total{outcome="retried",source="jobs"} 1
cvfeed_uploads_total{outcome="uploaded",source="inbox"} 2
# HELP cvfeed_watcher_mode How each folder is watched: 1 for its current mode (events, poll), 0 for the others.
# TYPE cvfeed_watcher_mode gauge
cvfeed_watcher_mode{folder="inbox",mode="events"} 1
cvfeed_watcher_mode{folder="inbox",mode="poll"} 0
cvfeed_watcher_mode{folder="share",mode="events"} 0
cvfeed_watcher_mode{folder="share",mode="poll"} 1
`
	names := []string{
		"cvfeed_api_responses_total", "cvfeed_build_info", "cvfeed_imap_reconnects_total",
		"cvfeed_last_success_timestamp_seconds", "cvfeed_queue_items", "cvfeed_retries_total",
		"cvfeed_upload_duration_seconds", "cvfeed_uploads_total", "cvfeed_watcher_mode",
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	m.ForgetSource("share")
	if n, err := testutil.GatherAndCount(m.Registry(), "cvfeed_watcher_mode"); err != nil || n != 2 {
		t.Errorf("cvfeed_watcher_mode series after ForgetSource = %d, %v, want 2", n, err)
	}

	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "cvfeed_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// cvfeed_folder_up is 1 for a folder that is up, 0 for one that is down,
// follows its changes, and goes with the folder on ForgetSource.
func TestMetricsFolderUp(t *testing.T) {
	m := NewMetrics("dev", nil)
	m.SetFolderUp("inbox", true)
	m.SetFolderUp("share", true)
	m.SetFolderUp("share", false) // the share did not mount
	want := `
# HELP cvfeed_folder_up 1 when the folder is there and readable, 0 when it is down: missing, not a directory, unreadable, or an empty mount point (a share that did not mount).
# TYPE cvfeed_folder_up gauge
cvfeed_folder_up{folder="inbox"} 1
cvfeed_folder_up{folder="share"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cvfeed_folder_up"); err != nil {
		t.Error(err)
	}
	m.SetFolderUp("share", true)
	if v := testutil.ToFloat64(m.folderUp.WithLabelValues("share")); v != 1 {
		t.Errorf("cvfeed_folder_up{folder=share} after it came back = %v, want 1", v)
	}
	m.ForgetSource("share")
	if n, err := testutil.GatherAndCount(m.Registry(), "cvfeed_folder_up"); err != nil || n != 1 {
		t.Errorf("cvfeed_folder_up series after ForgetSource(share) = %d, %v, want 1 (inbox)", n, err)
	}
	problems, err := testutil.GatherAndLint(m.Registry(), "cvfeed_folder_up")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A failing queue callback leaves its metric out; the others are served.
func TestMetricsQueueError(t *testing.T) {
	var calls atomic.Int32
	m := NewMetrics("dev", func() (map[string]map[string]int, error) {
		calls.Add(1)
		return nil, errors.New("state closed")
	})
	m.UploadDone("inbox", OutcomeFailed, time.Second)
	srv := httptest.NewServer(m.Handler(nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /metrics = %d, want 200", resp.StatusCode)
	}
	text := string(body)
	for _, want := range []string{`cvfeed_uploads_total{outcome="failed",source="inbox"} 1`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, "cvfeed_queue_items{") || calls.Load() == 0 {
		t.Errorf("queue called %d times; /metrics:\n%s", calls.Load(), text)
	}
}

// The queue is read at every scrape, so it is never stale.
func TestMetricsQueueFresh(t *testing.T) {
	var pending atomic.Int64
	m := NewMetrics("dev", func() (map[string]map[string]int, error) {
		return map[string]map[string]int{"inbox": {"pending": int(pending.Load())}}, nil
	})
	for _, n := range []int64{5, 0, 7} {
		pending.Store(n)
		want := "# HELP cvfeed_queue_items Items in state by source and state (pending, uploaded, duplicate, failed...), read at scrape time.\n" +
			"# TYPE cvfeed_queue_items gauge\n" +
			`cvfeed_queue_items{source="inbox",state="pending"} ` + strconv.FormatInt(n, 10) + "\n"
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cvfeed_queue_items"); err != nil {
			t.Errorf("pending %d: %v", n, err)
		}
	}
}

// A nil *Metrics takes every call.
func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.UploadDone("a", OutcomeUploaded, time.Second)
	m.Retry("a")
	m.APIStatus(200)
	m.APINoResponse("reset")
	m.IMAPReconnect("a")
	m.SetWatchMode("a", ModePoll)
	m.LastSuccess("a", time.Now())
	m.SetFolderUp("a", false)
	m.ForgetSource("a")
	if m.Registry() != nil {
		t.Error("Registry() of nil *Metrics != nil")
	}
	rr := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	if rr.Code != 404 {
		t.Errorf("nil Metrics handler = %d, want 404", rr.Code)
	}
}

// Two registries never clash: nothing is registered globally.
func TestMetricsTwice(t *testing.T) {
	a, b := NewMetrics("a", nil), NewMetrics("b", nil)
	a.Retry("x")
	if n := testutil.ToFloat64(b.retries.WithLabelValues("x")); n != 0 {
		t.Errorf("retries of the second Metrics = %v, want 0", n)
	}
}

// cvfeed_mailbox_up and cvfeed_uploads_paused follow their setters; a
// known source and a started mailbox have their counters at 0 before the
// first event, so increase() sees it.
func TestMetricsMailboxPausedAndZeroCounters(t *testing.T) {
	m := NewMetrics("dev", nil)
	m.KnowSource("inbox")
	m.SetMailboxUp("jobs", true)
	m.SetMailboxUp("hr", true)
	m.SetMailboxUp("hr", false) // its login was refused
	m.SetPaused(true)
	want := `
# HELP cvfeed_imap_reconnects_total IMAP connections opened again after a lost or failed one, by mailbox account.
# TYPE cvfeed_imap_reconnects_total counter
cvfeed_imap_reconnects_total{account="hr"} 0
cvfeed_imap_reconnects_total{account="jobs"} 0
# HELP cvfeed_mailbox_up 1 while the mailbox's account runs (connected or reconnecting), 0 when it stopped by itself (a refused login): it stays stopped until a reload.
# TYPE cvfeed_mailbox_up gauge
cvfeed_mailbox_up{mailbox="hr"} 0
cvfeed_mailbox_up{mailbox="jobs"} 1
# HELP cvfeed_retries_total Uploads scheduled again after a transient error (network, 408, 425, 429, 5xx), by source.
# TYPE cvfeed_retries_total counter
cvfeed_retries_total{source="inbox"} 0
# HELP cvfeed_uploads_paused 1 while uploads are paused because the API refuses the key (401), the quota is spent (402) or the key may not upload (403); 0 otherwise.
# TYPE cvfeed_uploads_paused gauge
cvfeed_uploads_paused 1
# HELP cvfeed_uploads_total Items handled by source and outcome of the attempt (uploaded, duplicate, failed, retried, paused).
# TYPE cvfeed_uploads_total counter
cvfeed_uploads_total{outcome="duplicate",source="inbox"} 0
cvfeed_uploads_total{outcome="failed",source="inbox"} 0
cvfeed_uploads_total{outcome="paused",source="inbox"} 0
cvfeed_uploads_total{outcome="retried",source="inbox"} 0
cvfeed_uploads_total{outcome="uploaded",source="inbox"} 0
`
	names := []string{"cvfeed_imap_reconnects_total", "cvfeed_mailbox_up", "cvfeed_retries_total", "cvfeed_uploads_paused", "cvfeed_uploads_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	m.SetPaused(false)
	if v := testutil.ToFloat64(m.paused); v != 0 {
		t.Errorf("cvfeed_uploads_paused after SetPaused(false) = %v, want 0", v)
	}
	m.ForgetSource("hr")
	if n, err := testutil.GatherAndCount(m.Registry(), "cvfeed_mailbox_up"); err != nil || n != 1 {
		t.Errorf("cvfeed_mailbox_up series after ForgetSource(hr) = %d, %v, want 1 (jobs)", n, err)
	}
}

// cvfeed_state_bytes is read at every scrape; an error leaves it out.
func TestMetricsStateSize(t *testing.T) {
	var size atomic.Int64
	m := NewMetrics("dev", nil)
	m.StateSize(func() (int64, error) {
		if n := size.Load(); n >= 0 {
			return n, nil
		}
		return 0, errors.New("stat state: no such file")
	})
	for _, n := range []int64{4 << 20, 1 << 20} {
		size.Store(n)
		want := "# HELP cvfeed_state_bytes Size of the state file (state_dir/cvfeed.db) in bytes, read at scrape time.\n" +
			"# TYPE cvfeed_state_bytes gauge\n" +
			"cvfeed_state_bytes " + strconv.FormatInt(n, 10) + "\n"
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cvfeed_state_bytes"); err != nil {
			t.Errorf("size %d: %v", n, err)
		}
	}
	size.Store(-1)
	if _, err := m.Registry().Gather(); err == nil {
		t.Error("Gather with the size failing = nil error, want the size's error")
	}
}
