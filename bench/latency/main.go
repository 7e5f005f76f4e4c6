// Command latency measures how long `cvfeed run` takes from the moment a
// file is closed in a watched folder to the moment its upload reaches the
// sandbox, with files arriving at a steady rate. See bench/README.md.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "", "cvfeed binary (required)")
	rate := flag.Int("rate", 100, "files per second")
	dur := flag.Duration("duration", 30*time.Second, "how long files arrive")
	settle := flag.Duration("settle", time.Second, "the folder's settle")
	watch := flag.String("watch", "events", "the folder's watch mode")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: latency -bin PATH/TO/cvfeed [flags]")
		os.Exit(2)
	}
	if err := run(*bin, *rate, *dur, *settle, *watch); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func run(bin string, rate int, dur, settle time.Duration, watch string) error {
	dir, err := os.MkdirTemp("", "cvfeed-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	share := filepath.Join(dir, "share")
	if err := os.MkdirAll(share, 0o755); err != nil {
		return err
	}

	sb := exec.Command(bin, "sandbox", "-listen", "127.0.0.1:0", "-log-level", "error")
	out, _ := sb.StdoutPipe()
	if err := sb.Start(); err != nil {
		return err
	}
	defer func() { sb.Process.Kill(); sb.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return err
	}
	go io.Copy(io.Discard, out)
	url := strings.TrimSpace(line)

	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state_dir = %q
[api]
url = %q
api_key = "bench"
workers = 4
[[folder]]
name = "share"
path = %q
source_id = "be50e7e57f4ad045ac8c406e7b665d409be9e363"
settle = %q
watch = %q
`, filepath.Join(dir, "state"), url, share, settle, watch)), 0o644)
	d := exec.Command(bin, "run", "-config", cfg, "-log-level", "warn")
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		return err
	}
	defer func() { d.Process.Signal(syscall.SIGTERM); d.Wait() }()
	time.Sleep(time.Second)

	// Files arrive at a steady rate; each one's close time is noted.
	closed := map[string]time.Time{}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	n := int(dur.Seconds() * float64(rate))
	fmt.Printf("writing %d files at %d/s for %v, settle %v, %s mode…\n", n, rate, dur, settle, watch)
	for i := range n {
		<-tick.C
		content := fmt.Sprintf("%%PDF-1.4 CV %d %s\n", i, strings.Repeat("x", 2000+i%1000))
		sum := sha256.Sum256([]byte(content))
		p := filepath.Join(share, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("cv%05d.pdf", i))
		if i < 20 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		f.WriteString(content)
		f.Close()
		closed[hex.EncodeToString(sum[:])] = time.Now()
	}
	// Wait for the last uploads.
	var profiles []struct {
		SHA256     string    `json:"sha256"`
		ReceivedAt time.Time `json:"received_at"`
	}
	deadline := time.Now().Add(settle + 30*time.Second)
	for {
		resp, err := http.Get(url + "/_sandbox/profiles")
		if err != nil {
			return err
		}
		profiles = profiles[:0]
		err = json.NewDecoder(resp.Body).Decode(&profiles)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if len(profiles) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(profiles) != n {
		return fmt.Errorf("the sandbox holds %d profiles, want %d", len(profiles), n)
	}
	lat := make([]time.Duration, 0, n)
	for _, p := range profiles {
		c, ok := closed[p.SHA256]
		if !ok {
			return fmt.Errorf("a profile of unknown content")
		}
		lat = append(lat, p.ReceivedAt.Sub(c))
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))].Round(time.Millisecond) }
	fmt.Printf("close → upload received, %d files: p50 %v, p90 %v, p99 %v, max %v\n", n, pct(0.5), pct(0.9), pct(0.99), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Printf("target: p99 ≤ settle + 200ms = %v → %s\n", settle+200*time.Millisecond, map[bool]string{true: "met", false: "NOT met"}[pct(0.99) <= settle+200*time.Millisecond])
	return nil
}
