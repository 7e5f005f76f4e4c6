// Command backfill measures cvfeed's backfill against a sandbox running in
// another process, and compares it, in the same run, with
//
//   - the sandbox's capacity: a plain Go client posting pre-built multipart
//     bodies at the same concurrency (no files, no hashing, no state);
//   - the reading-and-hashing baseline: a plain Go client that, per file,
//     opens, reads and hashes it, builds the body cvfeed sends, posts it and
//     parses the answer (what any correct uploader must do; no state);
//   - `find DIR -type f | xargs -P4 curl -F ...`, the shell way;
//
// and reports cvfeed's peak RSS while uploading one large file (and,
// optionally, while backfilling many files). See bench/README.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "", "cvfeed binary (required)")
	dir := flag.String("dir", "", "work directory (default: a new temp dir, removed at the end)")
	files := flag.Int("files", 20000, "small files for the throughput comparison")
	workers := flag.Int("workers", 4, "concurrency of cvfeed (api.workers) and of the plain Go client")
	curlFiles := flag.Int("curl-files", 2000, "files posted by xargs -P4 curl (a subset, to keep the run short)")
	big := flag.Int64("big", 1<<30, "size of the large file for the RSS measure (0: skip)")
	many := flag.Int("many", 0, "also measure peak RSS while backfilling this many files (0: skip)")
	rounds := flag.Int("rounds", 2, "alternating capacity and cvfeed runs")
	latency := flag.Duration("latency", 0, "sandbox -latency: 0 makes the comparison CPU-bound, a few ms makes it latency-bound like a remote API")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: backfill -bin PATH/TO/cvfeed [flags]")
		os.Exit(2)
	}
	if err := run(*bin, *dir, *files, *workers, *curlFiles, *big, *many, *latency, max(*rounds, 1)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin, dir string, n, workers, curlN int, big int64, many int, latency time.Duration, rounds int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "cvfeed-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cvDir := filepath.Join(dir, "cvs")
	fmt.Printf("writing %d small files…\n", n)
	paths, err := writeFiles(cvDir, n)
	if err != nil {
		return err
	}
	// Each measure gets a sandbox of its own (a sandbox that already
	// holds tens of thousands of profiles is slower), and the capacity and
	// cvfeed runs alternate, so that the machine's drift hits both alike.
	var caps, bases, cvs []float64
	var cliCPU, capSbCPU, baseCPU, baseSbCPU, cvCPU, cvSbCPU time.Duration
	var lastRSS int64
	var lastElapsed time.Duration
	for round := range rounds {
		sb, err := startSandbox(bin, latency)
		if err != nil {
			return err
		}
		sb0 := sb.cpu()
		c, cli, err := capacity(sb.url, paths, workers, sourceID(1))
		sbCPU := sb.cpu() - sb0
		sb.stop()
		if err != nil {
			return err
		}
		caps, cliCPU, capSbCPU = append(caps, c), cliCPU+cli, capSbCPU+sbCPU

		sb, err = startSandbox(bin, latency)
		if err != nil {
			return err
		}
		sb0 = sb.cpu()
		b, bcpu, err := baseline(sb.url, paths, workers, sourceID(3))
		sbCPU = sb.cpu() - sb0
		if err == nil {
			if got, cerr := sb.count(sourceID(3)); cerr != nil || got != n {
				err = fmt.Errorf("sandbox holds %d profiles of the baseline run, want %d (%v)", got, n, cerr)
			}
		}
		sb.stop()
		if err != nil {
			return err
		}
		bases, baseCPU, baseSbCPU = append(bases, b), baseCPU+bcpu, baseSbCPU+sbCPU

		sb, err = startSandbox(bin, latency)
		if err != nil {
			return err
		}
		sb0 = sb.cpu()
		cv, err := cvfeedBackfill(bin, dir, fmt.Sprint("small", round), sb.url, cvDir, workers, sourceID(2), 0, true)
		if err != nil {
			sb.stop()
			return err
		}
		sbCPU = sb.cpu() - sb0
		got, err := sb.count(sourceID(2))
		sb.stop()
		if err != nil || got != n {
			return fmt.Errorf("sandbox holds %d profiles of the cvfeed run, want %d (%v)", got, n, err)
		}
		cvs, cvCPU, cvSbCPU = append(cvs, cv.rate), cvCPU+cv.cpu, cvSbCPU+sbCPU
		lastRSS, lastElapsed = max(lastRSS, cv.maxRSS), cv.elapsed
		fmt.Printf("round %d: capacity %.0f files/s, baseline %.0f files/s, cvfeed %.0f files/s; CPU per file: baseline %.0f µs, cvfeed %.0f µs\n",
			round+1, c, b, cv.rate, perFileUS(bcpu, n), perFileUS(cv.cpu, n))
	}
	sb, err := startSandbox(bin, latency)
	if err != nil {
		return err
	}
	defer sb.stop()
	curlN = min(curlN, n)
	curl, err := curlXargs(sb.url, paths[:curlN], sourceID(4))
	if err != nil {
		return err
	}
	capMean, baseMean, cvMean := mean(caps), mean(bases), mean(cvs)
	perFile := func(d time.Duration) string {
		return fmt.Sprintf("%4.0f µs", perFileUS(d, n*rounds))
	}
	fmt.Printf("\n%-44s %10s\n", "", "files/s")
	fmt.Printf("%-44s %10.0f   (mean of %d, each against a fresh sandbox)\n", fmt.Sprintf("sandbox capacity, plain Go client, %d conns", workers), capMean, rounds)
	fmt.Printf("%-44s %10.0f   (mean of %d, each against a fresh sandbox)\n", fmt.Sprintf("reading-and-hashing Go client, %d conns", workers), baseMean, rounds)
	fmt.Printf("%-44s %10.0f   (%d files, last in %s, peak RSS %s)\n", fmt.Sprintf("cvfeed backfill, workers = %d", workers), cvMean, n, lastElapsed.Round(time.Millisecond), mib(lastRSS))
	fmt.Printf("%-44s %10.0f   (%d files)\n", "find | xargs -P4 curl -F", curl, curlN)
	fmt.Printf("\nCPU per file (this machine has %d cores shared by both sides):\n", runtime.NumCPU())
	fmt.Printf("  plain client %s, sandbox %s   (pre-built bodies)\n", perFile(cliCPU), perFile(capSbCPU))
	fmt.Printf("  baseline     %s, sandbox %s   (reads, hashes, builds, posts, parses)\n", perFile(baseCPU), perFile(baseSbCPU))
	fmt.Printf("  cvfeed       %s, sandbox %s\n", perFile(cvCPU), perFile(cvSbCPU))
	fmt.Printf("\ncvfeed / baseline = %.2fx CPU per file   (target <= 1.5x)\n", float64(cvCPU)/float64(baseCPU))
	fmt.Printf("\ncvfeed / capacity = %.0f%%   (target ≥ 90%%)\n", 100*cvMean/capMean)
	fmt.Printf("cvfeed / curl     = %.1fx  (target ≥ 5x)\n", cvMean/curl)

	if big > 0 {
		fmt.Printf("\nwriting a %s file…\n", mib(big))
		bigDir := filepath.Join(dir, "big")
		if err := writeBig(filepath.Join(bigDir, "scan.pdf"), big); err != nil {
			return err
		}
		r, err := cvfeedBackfill(bin, dir, "big", sb.url, bigDir, workers, sourceID(5), big*2, true)
		if err != nil {
			return err
		}
		if got, err := sb.count(sourceID(5)); err != nil || got != 1 {
			return fmt.Errorf("sandbox holds %d profiles of the large file, want 1 (%v)", got, err)
		}
		fmt.Printf("cvfeed backfill of one %s file: %s, peak RSS %s (target < 64 MiB)\n", mib(big), r.elapsed.Round(time.Millisecond), mib(r.maxRSS))
		os.RemoveAll(bigDir)
	}
	if many > 0 {
		fmt.Printf("\nwriting %d files…\n", many)
		manyDir := filepath.Join(dir, "many")
		if _, err := writeFiles(manyDir, many); err != nil {
			return err
		}
		r, err := cvfeedBackfill(bin, dir, "many", sb.url, manyDir, workers, sourceID(6), 0, true)
		if err != nil {
			return err
		}
		fmt.Printf("cvfeed backfill of %d files: %s (%.0f files/s), peak RSS %s (target <= 256 MiB at 1,000,000 files; DESIGN.md: < 64 MiB)\n", many, r.elapsed.Round(time.Millisecond), r.rate, mib(r.maxRSS))
		if sz, err := fileSize(filepath.Join(dir, "state-many", "cvfeed.db")); err == nil {
			fmt.Printf("state: %s, %d bytes per file (target <= 300)\n", mib(sz), sz/int64(many))
		}
		r, err = cvfeedBackfill(bin, dir, "many", sb.url, manyDir, workers, sourceID(6), 0, false)
		if err != nil {
			return err
		}
		fmt.Printf("second backfill of the same %d files (nothing to upload): %s, peak RSS %s (targets at 1,000,000 files: <= 4 s, <= 256 MiB)\n", many, r.elapsed.Round(time.Millisecond), mib(r.maxRSS))
	}
	return nil
}

func sourceID(i int) string { return fmt.Sprintf("%040x", 0xbe50e7e5+i) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// writeFiles writes n small files of 2 to 16 KiB of pseudo-random bytes,
// 500 per directory, and returns their paths.
func writeFiles(dir string, n int) ([]string, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	buf := make([]byte, 16<<10)
	paths := make([]string, n)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/500), fmt.Sprintf("Candidate %06d CV.pdf", i))
		if i%500 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
		}
		size := 2<<10 + rng.IntN(14<<10)
		for j := range size / 8 {
			v := rng.Uint64()
			for k := range 8 {
				buf[j*8+k] = byte(v >> (8 * k))
			}
		}
		copy(buf, fmt.Sprintf("%%PDF-1.4 %d\n", i))
		// With -dir, a tree written by an earlier run is reused: the
		// same seed gives the same files, so one of the right size is
		// the one this run would write.
		if fi, err := os.Stat(p); err == nil && fi.Size() == int64(size) {
			paths[i] = p
			continue
		}
		if err := os.WriteFile(p, buf[:size], 0o644); err != nil {
			return nil, err
		}
		paths[i] = p
	}
	return paths, nil
}

func writeBig(p string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for written := int64(0); written < size; {
		for j := 0; j+8 <= len(buf); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		chunk := min(int64(len(buf)), size-written)
		if _, err := f.Write(buf[:chunk]); err != nil {
			return err
		}
		written += chunk
	}
	return f.Close()
}

func fileSize(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

type sandbox struct {
	url string
	cmd *exec.Cmd
}

func startSandbox(bin string, latency time.Duration) (*sandbox, error) {
	cmd := exec.Command(bin, "sandbox", "-listen", "127.0.0.1:0", "-log-level", "error", "-latency", latency.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	go io.Copy(io.Discard, out)
	return &sandbox{url: strings.TrimSpace(line), cmd: cmd}, nil
}

// cpu returns the sandbox's CPU time so far (user + system), from /proc.
func (s *sandbox) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses; utime and stime are
	// the 14th and 15th fields of the line.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *sandbox) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

func (s *sandbox) count(source string) (int, error) {
	resp, err := http.Get(s.url + "/_sandbox/profiles")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var ps []struct {
		SourceID string `json:"source_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps {
		if p.SourceID == source {
			n++
		}
	}
	return n, nil
}

// capacity posts a pre-built body per file with `workers` goroutines and
// returns the requests per second: the sandbox's capacity at that
// concurrency, with the client doing as little as possible.
func capacity(url string, paths []string, workers int, source string) (float64, time.Duration, error) {
	type body struct {
		b           []byte
		contentType string
	}
	bodies := make([]body, len(paths))
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return 0, 0, err
		}
		sum := sha256.Sum256(data)
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		w.WriteField("source_id", source)
		w.WriteField("profile_reference", hex.EncodeToString(sum[:]))
		w.WriteField("timestamp_reception", "1700000000")
		// The same training metadata cvfeed sends (see cvfeedBackfill).
		w.WriteField("training_metadata", `[{"filter_reference":"bench","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null}]`)
		fw, _ := w.CreateFormFile("file", filepath.Base(p))
		fw.Write(data)
		w.Close()
		bodies[i] = body{buf.Bytes(), w.FormDataContentType()}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers * 2
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	cpu0 := selfCPU()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/profile", bytes.NewReader(bodies[i].b))
				req.Header.Set("Content-Type", bodies[i].contentType)
				req.Header.Set("X-API-Key", "bench")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	cpu := selfCPU() - cpu0
	tr.CloseIdleConnections()
	if failed.Load() > 0 {
		return 0, 0, fmt.Errorf("plain client: %d of %d requests failed", failed.Load(), len(bodies))
	}
	return float64(len(bodies)) / el.Seconds(), cpu, nil
}

// baseline uploads every file the way a plain, correct Go client would,
// with `workers` goroutines: open it, read it, SHA-256 it (the reference is
// the hash, as cvfeed's), build the multipart body with the fields cvfeed
// sends (timestamp_reception from the file's mtime), post it, and read and
// parse the JSON answer. It keeps no state. Each worker reuses its buffers
// (the file's bytes, the body, the answer), as a careful client does, so
// that the baseline is not made slow by allocation cvfeed would be spared.
// It returns the files per second and its own CPU time (getrusage, as
// capacity's).
func baseline(url string, paths []string, workers int, source string) (float64, time.Duration, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers * 2
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	cpu0 := selfCPU()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			var b baseBuffers
			for {
				i := int(next.Add(1)) - 1
				if i >= len(paths) {
					return
				}
				if err := b.post(client, url, paths[i], source); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	cpu := selfCPU() - cpu0
	tr.CloseIdleConnections()
	if failed.Load() > 0 {
		return 0, 0, fmt.Errorf("baseline client: %d of %d uploads failed, first: %v", failed.Load(), len(paths), firstErr.Load())
	}
	return float64(len(paths)) / el.Seconds(), cpu, nil
}

// baseBuffers are one baseline worker's buffers, reused from file to file.
type baseBuffers struct {
	data []byte
	body bytes.Buffer
	resp bytes.Buffer
}

// post is the baseline's upload of one file.
func (b *baseBuffers) post(client *http.Client, url, path, source string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if int64(cap(b.data)) < fi.Size()+1 {
		b.data = make([]byte, fi.Size()+1)
	}
	n, err := io.ReadFull(f, b.data[:cap(b.data)])
	f.Close()
	if err != nil && err != io.ErrUnexpectedEOF {
		return err
	}
	data := b.data[:n]
	sum := sha256.Sum256(data)
	ref := hex.EncodeToString(sum[:])
	b.body.Reset()
	w := multipart.NewWriter(&b.body)
	w.WriteField("source_id", source)
	w.WriteField("profile_reference", ref)
	w.WriteField("timestamp_reception", strconv.FormatInt(fi.ModTime().Unix(), 10))
	w.WriteField("training_metadata", `[{"filter_reference":"bench","stage":"NEW","stage_timestamp":null,"rating":null,"rating_timestamp":null}]`)
	fw, err := w.CreateFormFile("file", filepath.Base(path))
	if err != nil {
		return err
	}
	fw.Write(data)
	w.Close()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/profile", bytes.NewReader(b.body.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("X-API-Key", "bench")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	b.resp.Reset()
	_, err = b.resp.ReadFrom(resp.Body)
	resp.Body.Close() // the body's buffer may be reused from here on
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", path, err)
	}
	var env struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			ProfileReference string `json:"profile_reference"`
			FileID           string `json:"file_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b.resp.Bytes(), &env); err != nil {
		return fmt.Errorf("%s: answer %d: %w", path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusCreated || env.Data.ProfileReference != ref || env.Data.FileID == "" {
		return fmt.Errorf("%s: answer %d %q", path, resp.StatusCode, env.Message)
	}
	return nil
}

func perFileUS(d time.Duration, files int) float64 {
	return float64(d.Microseconds()) / float64(files)
}

type cvResult struct {
	elapsed time.Duration
	rate    float64
	maxRSS  int64
	cpu     time.Duration
}

// cvfeedBackfill runs `cvfeed backfill` on a folder, with a fresh state
// when fresh is set (else the state of the last run of that name), and
// returns its wall time, files/s, peak RSS (VmHWM) and CPU time.
func cvfeedBackfill(bin, dir, name, url, cvDir string, workers int, source string, maxSize int64, fresh bool) (cvResult, error) {
	stateDir := filepath.Join(dir, "state-"+name)
	if fresh {
		// A new state: with -dir, one of an earlier run is there.
		if err := os.RemoveAll(stateDir); err != nil {
			return cvResult{}, err
		}
	}
	cfg := fmt.Sprintf(`state_dir = %q
[api]
url = %q
api_key = "bench"
workers = %d
[[folder]]
name = %q
path = %q
source_id = %q
max_size = %d
[[folder.training_metadata]]
filter_reference = "bench"
stage = "NEW"
`, stateDir, url, workers, name, cvDir, source, maxSize)
	cfgPath := filepath.Join(dir, "config-"+name+".toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return cvResult{}, err
	}
	cmd := exec.Command(bin, "backfill", "-config", cfgPath, "-no-progress", "-log-level", "warn")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return cvResult{}, err
	}
	// Peak RSS from /proc (VmHWM, the high-water mark since exec): the
	// child's getrusage would count the pages of this process, which
	// holds the plain client's bodies, from before the exec.
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmHWM(cmd.Process.Pid); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	el := time.Since(start)
	if err != nil {
		return cvResult{}, fmt.Errorf("cvfeed backfill %s: %v\n%s%s", name, err, stdout.String(), stderr.String())
	}
	var rss int64
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	_ = rss
	var uploaded int
	fmt.Sscanf(stdout.String(), "uploaded %d", &uploaded)
	return cvResult{elapsed: el, rate: float64(uploaded) / el.Seconds(), maxRSS: peak.Load(), cpu: cpu}, nil
}

// vmHWM reads the peak resident set size of a process, in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb * 1024
		}
	}
	return 0
}

// curlXargs posts the files the shell way, four curl processes at a time.
func curlXargs(url string, paths []string, source string) (float64, error) {
	script := fmt.Sprintf(`xargs -d '\n' -P4 -I{} curl -s -o /dev/null -w '%%{http_code}\n' -H 'X-API-Key: bench' -F source_id=%s -F 'file=@{}' %s/profile`, source, url)
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin = strings.NewReader(strings.Join(paths, "\n") + "\n")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("xargs curl: %w", err)
	}
	el := time.Since(start)
	if ok := strings.Count(out.String(), "201"); ok != len(paths) {
		return 0, fmt.Errorf("xargs curl: %d of %d uploads got 201", ok, len(paths))
	}
	return float64(len(paths)) / el.Seconds(), nil
}

func mean(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}
