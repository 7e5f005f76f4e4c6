package sandbox

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
)

// injector draws faults: with probability rate, one of codes, uniformly.
type injector struct {
	rate  float64
	codes []Fault

	mu  sync.Mutex
	rng *rand.Rand
}

// decision is the outcome of one draw.
type decision struct {
	hit   bool
	fault Fault
	// after: the request is processed (an upload is accepted and recorded)
	// and only then is the fault injected, so the response is lost.
	after bool
}

func newInjector(rate float64, codes []Fault, seed int64) *injector {
	s1 := uint64(seed)
	if seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		s1 = binary.LittleEndian.Uint64(b[:])
	}
	return &injector{rate: rate, codes: codes, rng: rand.New(rand.NewPCG(s1, 0x5a4e_d0c5_cafe_f00d))}
}

// draw decides the fault for one request. splittable marks POST /profile,
// where 5xx and resets happen half the time before processing and half the
// time after the upload was recorded. 429 and 4xx faults are always before.
func (in *injector) draw(splittable bool) decision {
	if in.rate <= 0 {
		return decision{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.rng.Float64() >= in.rate {
		return decision{}
	}
	f := in.codes[in.rng.IntN(len(in.codes))]
	d := decision{hit: true, fault: f}
	if splittable && (f.Status == 0 || f.Status >= 500) {
		d.after = in.rng.IntN(2) == 1
	}
	return d
}

// inject answers with fault f: a status, or a connection reset.
func (s *Server) inject(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.Status == 0 {
		s.count("reset")
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "fault", "reset")
		resetConn(w)
		return
	}
	rep := fail(f.Status, http.StatusText(f.Status)+" (injected by the sandbox)")
	if f.Status == http.StatusTooManyRequests {
		rep.header = http.Header{"Retry-After": {"1"}}
	}
	s.write(w, r, rep)
}

// resetConn closes the client's connection abruptly: SO_LINGER 0 makes the
// kernel send a RST, so the client sees "connection reset by peer" and no
// response. Without a hijackable connection (HTTP/2, a recorder) it aborts
// the handler, which the http.Server turns into a broken stream or a closed
// connection.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if u, isTLS := raw.(interface{ NetConn() net.Conn }); isTLS {
		raw = u.NetConn() // skip TLS close_notify: reset the TCP connection itself
	}
	if tc, isTCP := raw.(*net.TCPConn); isTCP {
		_ = tc.SetLinger(0)
	}
	_ = raw.Close()
}
