package uploader

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cvfeed/cvfeed/state"
)

const testSource = "be50e7e57f4ad045ac8c406e7b665d409be9e363"

// fakeAPI is a Riminder API in memory that behaves like the real one where
// exactly-once is concerned: it refuses a reference it already holds. Its
// function fields inject failures.
type fakeAPI struct {
	mu       sync.Mutex
	profiles map[string]int // reference → times stored
	posts    []time.Time
	gets     int
	// before runs before a POST is processed; a non-nil error is returned
	// and nothing is stored.
	before func(n int, u Upload) error
	// after runs after a POST was stored; a non-nil error is returned
	// instead of the 201 (the answer is lost).
	after func(n int, u Upload) error
	// get overrides GET profile.
	get func(ref string) error
}

func newFakeAPI() *fakeAPI { return &fakeAPI{profiles: map[string]int{}} }

func (f *fakeAPI) PostProfile(ctx context.Context, u Upload) (Uploaded, error) {
	f.mu.Lock()
	n := len(f.posts)
	f.posts = append(f.posts, time.Now())
	before, after := f.before, f.after
	f.mu.Unlock()
	if before != nil {
		if err := before(n, u); err != nil {
			return Uploaded{}, err
		}
	}
	f.mu.Lock()
	if f.profiles[u.Reference] > 0 {
		f.mu.Unlock()
		return Uploaded{}, &APIError{Status: 400, Message: "profile_reference already exists"}
	}
	f.profiles[u.Reference]++
	f.mu.Unlock()
	if after != nil {
		if err := after(n, u); err != nil {
			return Uploaded{}, err
		}
	}
	return Uploaded{FileID: "f-" + u.Reference[:8], ProfileReference: u.Reference}, nil
}

func (f *fakeAPI) GetProfile(ctx context.Context, sourceID, ref string) (Profile, error) {
	f.mu.Lock()
	f.gets++
	get := f.get
	held := f.profiles[ref] > 0
	f.mu.Unlock()
	if get != nil {
		if err := get(ref); err != nil {
			return Profile{}, err
		}
	}
	if !held {
		return Profile{}, &APIError{Status: 404, Message: "Profile not found"}
	}
	return Profile{ProfileID: "p", ProfileReference: ref, SourceID: sourceID}, nil
}

func (f *fakeAPI) stored() (distinct, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.profiles {
		distinct++
		total += n
	}
	return
}

func (f *fakeAPI) postCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.posts)
}

// fixture is a state with n claimed files on disk.
type fixture struct {
	store *state.Store
	path  string
	keys  []state.Key
}

func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "state", state.FileName)
	st, err := state.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fx := &fixture{store: st, path: p}
	var cands []state.Candidate
	for i := range n {
		content := fmt.Sprintf("CV number %d\n", i)
		fp := filepath.Join(dir, fmt.Sprintf("cv%04d.pdf", i))
		if err := os.WriteFile(fp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		// A folder file is dated by its mtime when it is sent.
		received := time.Unix(1700000000, 0)
		if err := os.Chtimes(fp, received, received); err != nil {
			t.Fatal(err)
		}
		c := state.Candidate{Source: "inbox", SourceID: testSource, SHA256: sha256.Sum256([]byte(content)),
			Path: fp, FileName: filepath.Base(fp), Size: int64(len(content)), Received: received}
		cands = append(cands, c)
		fx.keys = append(fx.keys, state.Key{SourceID: testSource, SHA256: c.SHA256})
	}
	if _, err := st.Claim(cands); err != nil {
		t.Fatal(err)
	}
	return fx
}

func (fx *fixture) counts(t *testing.T) state.Counts {
	t.Helper()
	c, err := fx.store.Counts()
	if err != nil {
		t.Fatal(err)
	}
	return c["inbox"]
}

// runUntilDone runs the pool until nothing is pending, or fails the test
// after the deadline (fake time inside synctest).
func runUntilDone(t *testing.T, p *Pool, st *state.Store, deadline time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	limit := time.After(deadline)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-limit:
			cancel()
			<-done
			t.Fatalf("not done after %v", deadline)
		case <-tick.C:
			if n, _ := st.Pending(nil); n == 0 && p.InFlight() == 0 {
				cancel()
				return <-done
			}
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	lo := Backoff{Initial: time.Second, Max: time.Minute, Rand: func() float64 { return 0 }}
	hi := Backoff{Initial: time.Second, Max: time.Minute, Rand: func() float64 { return 0.999999 }}
	for _, tc := range []struct {
		n          int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{1, 0, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, 2 * time.Second},
		{4, 0, 4 * time.Second, 8 * time.Second},
		{10, 0, 30 * time.Second, time.Minute},                 // capped
		{40, 0, 30 * time.Second, time.Minute},                 // no overflow
		{1, 7 * time.Second, 7 * time.Second, 7 * time.Second}, // Retry-After wins
	} {
		if got := lo.Delay(tc.n, tc.retryAfter); got != tc.lo {
			t.Errorf("Delay(%d, %v) with rand 0 = %v, want %v", tc.n, tc.retryAfter, got, tc.lo)
		}
		if got := hi.Delay(tc.n, tc.retryAfter); got < tc.hi-time.Millisecond || got > tc.hi {
			t.Errorf("Delay(%d, %v) with rand 1 = %v, want ~%v", tc.n, tc.retryAfter, got, tc.hi)
		}
	}
}

func TestPoolRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 1)
		api := newFakeAPI()
		api.before = func(n int, _ Upload) error {
			if n < 3 {
				return &APIError{Status: 503, Message: "Service Unavailable"}
			}
			return nil
		}
		p := NewPool(PoolConfig{Workers: 2, MaxAttempts: 10, ReadAccess: true,
			Backoff: Backoff{Initial: time.Second, Max: time.Minute, Rand: func() float64 { return 0 }}}, fx.store, api)
		if err := runUntilDone(t, p, fx.store, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := fx.counts(t); got.Uploaded != 1 || got.Failed != 0 {
			t.Fatalf("counts = %+v, want 1 uploaded", got)
		}
		// Equal jitter with rand 0: waits of 0.5s, 1s, 2s.
		var gaps []time.Duration
		for i := 1; i < len(api.posts); i++ {
			gaps = append(gaps, api.posts[i].Sub(api.posts[i-1]))
		}
		if fmt.Sprint(gaps) != "[500ms 1s 2s]" {
			t.Errorf("gaps between attempts = %v, want [500ms 1s 2s]", gaps)
		}
		it, _, _ := fx.store.Get(fx.keys[0])
		if it.Attempts != 4 || it.FileID == "" {
			t.Errorf("item attempts = %d, file_id %q; want 4 and a file_id", it.Attempts, it.FileID)
		}
	})
}

func TestPoolHonoursRetryAfterAnd429IsNotAnAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 1)
		api := newFakeAPI()
		api.before = func(n int, _ Upload) error {
			if n < 3 {
				return &APIError{Status: 429, Message: "Too Many Requests", RetryAfter: 7 * time.Second}
			}
			return nil
		}
		p := NewPool(PoolConfig{MaxAttempts: 2, Backoff: Backoff{Initial: 10 * time.Millisecond, Max: time.Second}}, fx.store, api)
		if err := runUntilDone(t, p, fx.store, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := fx.counts(t); got.Uploaded != 1 {
			t.Fatalf("counts = %+v, want uploaded although 3 × 429 > max_attempts 2", got)
		}
		for i := 1; i < len(api.posts); i++ {
			if gap := api.posts[i].Sub(api.posts[i-1]); gap < 7*time.Second {
				t.Errorf("attempt %d came %v after the previous, before Retry-After 7s", i+1, gap)
			}
		}
	})
}

func TestPoolGivesUpAfterMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 2)
		api := newFakeAPI()
		api.before = func(int, Upload) error { return &APIError{Status: 500, Message: "boom"} }
		p := NewPool(PoolConfig{MaxAttempts: 5}, fx.store, api)
		if err := runUntilDone(t, p, fx.store, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := fx.counts(t); got.Failed != 2 || got.Pending != 0 {
			t.Fatalf("counts = %+v, want 2 failed", got)
		}
		if n := api.postCount(); n != 10 {
			t.Errorf("%d POSTs, want 5 per item", n)
		}
		it, _, _ := fx.store.Get(fx.keys[0])
		if it.Attempts != 5 || !strings.Contains(it.LastError, "giving up after 5 attempts") || !strings.Contains(it.LastError, "boom") {
			t.Errorf("failed item: attempts %d, last error %q", it.Attempts, it.LastError)
		}
	})
}

func TestPoolPermanentFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 1)
		api := newFakeAPI()
		api.before = func(int, Upload) error { return &APIError{Status: 422, Message: "Invalid file"} }
		p := NewPool(PoolConfig{}, fx.store, api)
		if err := runUntilDone(t, p, fx.store, time.Hour); err != nil {
			t.Fatal(err)
		}
		it, _, _ := fx.store.Get(fx.keys[0])
		if it.Status != state.Failed || it.Attempts != 1 || !strings.Contains(it.LastError, "Invalid file") {
			t.Errorf("item = %v, %d attempts, %q; want failed after 1 with the API's message", it.Status, it.Attempts, it.LastError)
		}
	})
}

// TestPoolLostAnswersExactlyOnce: the API stores the profile and the answer
// is lost (5xx, reset); the retry meets "reference already exists" and
// counts the file as uploaded — with and without read access.
func TestPoolLostAnswersExactlyOnce(t *testing.T) {
	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprintf("read=%v", read), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fx := newFixture(t, 50)
				api := newFakeAPI()
				api.after = func(n int, _ Upload) error {
					if n%2 == 0 {
						return errors.New("read tcp 127.0.0.1:1234: connection reset by peer")
					}
					return nil
				}
				if !read {
					api.get = func(string) error { return &APIError{Status: 403, Message: "no read permission"} }
				}
				p := NewPool(PoolConfig{Workers: 4, ReadAccess: read}, fx.store, api)
				if err := runUntilDone(t, p, fx.store, time.Hour); err != nil {
					t.Fatal(err)
				}
				if got := fx.counts(t); got.Uploaded != 50 || got.Failed != 0 {
					t.Fatalf("counts = %+v, want 50 uploaded", got)
				}
				if distinct, total := api.stored(); distinct != 50 || total != 50 {
					t.Errorf("API holds %d profiles from %d stores, want 50 from 50", distinct, total)
				}
				if !read && api.gets != 0 {
					t.Errorf("%d GETs with read access off, want 0", api.gets)
				}
			})
		})
	}
}

func TestPoolDuplicateNotConfirmedIsRetriedThenFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 1)
		api := newFakeAPI()
		api.before = func(int, Upload) error {
			return &APIError{Status: 400, Message: "profile_reference already exists"}
		}
		p := NewPool(PoolConfig{MaxAttempts: 3, ReadAccess: true}, fx.store, api)
		if err := runUntilDone(t, p, fx.store, time.Hour); err != nil {
			t.Fatal(err)
		}
		it, _, _ := fx.store.Get(fx.keys[0])
		if it.Status != state.Failed || !strings.Contains(it.LastError, "GET profile finds no profile") {
			t.Errorf("item = %v %q; want failed: the API contradicts itself", it.Status, it.LastError)
		}
	})
}

// TestPoolConfirmsInterruptedUploadBeforeSending: an item left leased by a
// dead process is looked up with GET profile; if the API has it, nothing is
// sent again.
func TestPoolConfirmsInterruptedUploadBeforeSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 3)
		api := newFakeAPI()
		// A previous process leased all three, sent the first, and died.
		items, _, _ := fx.store.Lease(10, nil)
		if _, err := api.PostProfile(t.Context(), Upload{Reference: ReferenceFor(items[0].SHA256)}); err != nil {
			t.Fatal(err)
		}
		if n, err := fx.store.Recover(); err != nil || n != 3 {
			t.Fatalf("Recover = %d, %v", n, err)
		}
		p := NewPool(PoolConfig{ReadAccess: true}, fx.store, api)
		if err := runUntilDone(t, p, fx.store, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := fx.counts(t); got.Uploaded != 3 {
			t.Fatalf("counts = %+v, want 3 uploaded", got)
		}
		if posts := api.postCount(); posts != 3 { // 1 before the crash + 2
			t.Errorf("%d POSTs, want 3: the interrupted upload must not be sent again", posts)
		}
		if api.gets != 3 {
			t.Errorf("%d GETs, want 3 (one per interrupted item)", api.gets)
		}
	})
}

func TestPoolStopsOnAuthLeavingItemsPending(t *testing.T) {
	for _, status := range []int{401, 402, 403} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fx := newFixture(t, 20)
				api := newFakeAPI()
				api.before = func(int, Upload) error {
					return &APIError{Status: status, Message: "Unauthorized. Invalid secret key: [redacted] for permission: write"}
				}
				p := NewPool(PoolConfig{Workers: 4, StopOnAuth: true}, fx.store, api)
				err := p.Run(t.Context())
				var ae *AuthError
				if !errors.As(err, &ae) || StatusOf(err) != status {
					t.Fatalf("Run = %v, want *AuthError with %d", err, status)
				}
				if got := fx.counts(t); got.Pending != 20 || got.Failed != 0 {
					t.Errorf("counts = %+v, want 20 pending, none failed", got)
				}
				if n := api.postCount(); n > 4 {
					// One per worker at most: each may have been sending
					// when the first refusal came.
					t.Errorf("%d POSTs after the first refusal, want at most one per worker", n)
				}
				for _, k := range fx.keys {
					if it, _, _ := fx.store.Get(k); it.Attempts != 0 {
						t.Fatalf("item %s has %d attempts, want 0: a refused key burns nothing", k, it.Attempts)
					}
				}
			})
		})
	}
}

func TestPoolPausesOnAuthAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 10)
		api := newFakeAPI()
		var mu sync.Mutex
		keyOK := false
		api.before = func(int, Upload) error {
			mu.Lock()
			defer mu.Unlock()
			if !keyOK {
				return &APIError{Status: 401, Message: "Unauthorized"}
			}
			return nil
		}
		p := NewPool(PoolConfig{Workers: 4, AuthRetry: time.Minute}, fx.store, api)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		time.Sleep(10*time.Minute + time.Second)
		synctest.Wait()
		if p.Paused() == nil {
			t.Fatal("pool not paused after 401s")
		}
		// At most one POST per worker before the pause, then one a minute.
		if n := api.postCount(); n > 4+10 {
			t.Errorf("%d POSTs in 10 minutes of refusal, want ≤ 14", n)
		}
		if got := fx.counts(t); got.Failed != 0 || got.Pending != 10 {
			t.Errorf("counts while paused = %+v, want 10 pending", got)
		}
		mu.Lock()
		keyOK = true
		mu.Unlock()
		p.Resume()
		deadline := time.Now().Add(time.Hour)
		for time.Now().Before(deadline) {
			time.Sleep(time.Second)
			if fx.counts(t).Uploaded == 10 {
				break
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := fx.counts(t); got.Uploaded != 10 {
			t.Fatalf("counts after the key was fixed = %+v, want 10 uploaded", got)
		}
		if p.Paused() != nil {
			t.Error("pool still paused")
		}
	})
}

// TestPoolGraceLetsInFlightUploadsFinish: a stop lets a running upload
// finish and records it.
func TestPoolGraceLetsInFlightUploadsFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 1)
		api := newFakeAPI()
		started := make(chan struct{})
		api.before = func(int, Upload) error {
			close(started)
			time.Sleep(5 * time.Second)
			return nil
		}
		p := NewPool(PoolConfig{Grace: 30 * time.Second}, fx.store, api)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		<-started
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := fx.counts(t); got.Uploaded != 1 {
			t.Errorf("counts = %+v, want the in-flight upload recorded as uploaded", got)
		}
	})
}

// TestPoolAbortMarksMaybeSent: without grace, a stop mid-request leaves the
// item pending and marked maybe-sent, to be confirmed before sending again.
func TestPoolAbortMarksMaybeSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 1)
		api := newFakeAPI()
		started := make(chan struct{})
		api.before = func(int, Upload) error {
			close(started)
			time.Sleep(5 * time.Second)
			return nil
		}
		slow := &ctxAPI{fakeAPI: api}
		p := NewPool(PoolConfig{}, fx.store, slow)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		<-started
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		it, _, _ := fx.store.Get(fx.keys[0])
		if it.Status != state.Pending || !it.MaybeSent {
			t.Errorf("item = %v maybeSent=%v, want pending and maybe sent", it.Status, it.MaybeSent)
		}
		time.Sleep(10 * time.Second) // let the fake server's goroutine end
	})
}

// ctxAPI makes a fake request end when its context does, as HTTP does.
type ctxAPI struct{ *fakeAPI }

func (c *ctxAPI) PostProfile(ctx context.Context, u Upload) (Uploaded, error) {
	type res struct {
		u   Uploaded
		err error
	}
	ch := make(chan res, 1)
	go func() { r, err := c.fakeAPI.PostProfile(ctx, u); ch <- res{r, err} }()
	select {
	case r := <-ch:
		return r.u, r.err
	case <-ctx.Done():
		return Uploaded{}, ctx.Err()
	}
}

func TestPoolMetadataErrorFailsItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, 1)
		api := newFakeAPI()
		p := NewPool(PoolConfig{Metadata: func(state.Item) ([]byte, error) {
			return nil, errors.New(`source "old" is no longer in the config`)
		}}, fx.store, api)
		if err := runUntilDone(t, p, fx.store, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := fx.counts(t); got.Failed != 1 || api.postCount() != 0 {
			t.Errorf("counts = %+v, %d POSTs; want 1 failed and nothing sent", got, api.postCount())
		}
	})
}

var _ = http.StatusOK
