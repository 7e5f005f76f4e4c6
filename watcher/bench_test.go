package watcher

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

var (
	benchFiles = flag.Int("rescan.files", 100000, "files of BenchmarkRestartRescan")
	benchDir   = flag.String("rescan.dir", "", "tree of BenchmarkRestartRescan, kept between runs (default: a temp dir)")
)

// BenchmarkRestartRescan measures what a restart of cvfeed run costs over a
// tree whose files are all in state already: the start rescan of the
// folder (watches added, every file stat'ed and checked against state, none
// read), against `find DIR -type f | wc -l` over the same tree, in turns.
// DESIGN.md's target: under 2x find.
//
//	go test -run '^$' -bench RestartRescan -benchtime 5x ./watcher/ [-args -rescan.files 100000]
func BenchmarkRestartRescan(b *testing.B) {
	dir := *benchDir
	if dir == "" {
		dir = b.TempDir()
	}
	root := filepath.Join(dir, "cvs")
	if err := makeTree(root, *benchFiles); err != nil {
		b.Fatal(err)
	}
	st, err := state.Open(filepath.Join(b.TempDir(), state.FileName), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	f := folder(root)
	f.Settle, f.RescanInterval, f.MaxSize = 0, time.Hour, 0
	if err := NewScanner(st, ScannerOptions{}).Scan(context.Background(), []config.Folder{f}); err != nil {
		b.Fatal(err)
	}
	if _, err := timeFind(root); err != nil { // warm the caches
		b.Fatal(err)
	}
	// As cmd/cvfeed does for every command.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var finds, rescans []time.Duration
	for b.Loop() {
		d, err := timeFind(root)
		if err != nil {
			b.Fatal(err)
		}
		finds = append(finds, d)
		rescans = append(rescans, restartOnce(b, st, f))
	}
	find, rescan := median(finds), median(rescans)
	ratio := float64(rescan) / float64(find)
	b.ReportMetric(float64(rescan.Microseconds())/1000, "rescan-ms")
	b.ReportMetric(float64(find.Microseconds())/1000, "find-ms")
	b.ReportMetric(ratio, "x-find")
	fmt.Printf("restart rescan of %d unchanged files: %v; find -type f | wc -l: %v; ratio %.2fx (target <= 2x); medians of %d\n",
		*benchFiles, rescan.Round(time.Millisecond), find.Round(time.Millisecond), ratio, len(finds))
}

// restartOnce starts a Watch, waits for its start rescan and stops it; it
// returns the time from Run to the end of the rescan.
func restartOnce(b *testing.B, st *state.Store, f config.Folder) time.Duration {
	co := &countingOpen{}
	w := NewWatch(st, WatchOptions{Open: co.open})
	walked := make(chan struct{}, 1)
	w.hooks.walked = func(_ string, k jobKind, _ time.Duration) {
		if k == jobRescan {
			walked <- struct{}{}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- w.Run(ctx, []config.Folder{f}) }()
	<-walked
	took := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if c := w.Stats().Snapshot(); co.n.Load() != 0 || c.Unchanged != int64(*benchFiles) {
		b.Fatalf("restart read %d files, %d unchanged of %d", co.n.Load(), c.Unchanged, *benchFiles)
	}
	return took
}

func timeFind(dir string) (time.Duration, error) {
	start := time.Now()
	out, err := exec.Command("sh", "-c", `find "$1" -type f | wc -l`, "sh", dir).Output()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("find: %w", err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n != *benchFiles {
		return 0, fmt.Errorf("find counted %d files, want %d", n, *benchFiles)
	}
	return took, nil
}

// makeTree writes n small files, 500 per directory, unless there already.
func makeTree(root string, n int) error {
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%04d", i/500), fmt.Sprintf("cv%06d.pdf", i))
		if i%500 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
		}
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "%%PDF-1.4 cv %d", i), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
