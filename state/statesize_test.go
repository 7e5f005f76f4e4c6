package state

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	stateSizeFiles = flag.Int("statesize.files", 100000, "BenchmarkStateSize: files to claim and upload (1000000 for the issue's figure)")
	stateSizeMove  = flag.Bool("statesize.move", false, "BenchmarkStateSize: after_upload = move (each file has an after-action, done once uploaded), then state compact")
)

// BenchmarkStateSize claims N files the way a backfill does (batches of
// 256 candidates with identities, leases of 128, outcomes in batches of
// 64, file ids as the sandbox gives them) and prints where the bytes go,
// bucket by bucket: keys and values, leaf and branch pages in use and
// allocated (bbolt's BucketStats). Run once:
//
//	go test -run '^$' -bench StateSize -benchtime 1x ./state/ [-args -statesize.files 1000000 -statesize.move]
func BenchmarkStateSize(b *testing.B) {
	n := *stateSizeFiles
	for b.Loop() {
		dir := b.TempDir()
		s, err := Open(filepath.Join(dir, FileName), nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := backfillLike(s, n, *stateSizeMove); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		size, err := s.Size()
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("%d files claimed and uploaded in %v (%.0f files/s), after_upload = %s\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), map[bool]string{false: "keep", true: "move"}[*stateSizeMove])
		if err := printBucketStats(os.Stdout, s, n); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("state file: %d bytes, %.1f MiB, %d bytes per file\n", size, float64(size)/(1<<20), size/int64(n))
		b.ReportMetric(float64(size)/float64(n), "B/file")
		if *stateSizeMove {
			path := s.Path()
			s.Close()
			before, after, err := Compact(path, nil)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Printf("cvfeed state compact: file %d bytes before (%.1f MiB), %d after (%.2f MiB), %d bytes per file\n",
				before, float64(before)/(1<<20), after, float64(after)/(1<<20), after/int64(n))
			b.ReportMetric(float64(after)/float64(n), "B/file-compacted")
			continue
		}
		path := s.Path()
		s.Close()
		rss, took, err := openPeakRSS(path)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("a process that opens this state (the damaged-state check walks every page): open %v, peak RSS %.1f MiB for a %.1f MiB state\n",
			took.Round(time.Millisecond), float64(rss)/(1<<20), float64(size)/(1<<20))
		b.ReportMetric(float64(rss)/(1<<20), "MiB-open-peak-RSS")
	}
}

// openPeakRSS runs this test binary again, as a process that only opens the
// state at path (TestOpenPeakRSSHelper), and returns its peak RSS and how
// long the open took.
func openPeakRSS(path string) (int64, time.Duration, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenPeakRSSHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "CVFEED_OPEN_RSS="+path)
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("open in a child: %w\n%s", err, out)
	}
	var took time.Duration
	for line := range strings.SplitSeq(string(out), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "open-took "); ok {
			took, _ = time.ParseDuration(v)
		}
		if v, ok := strings.CutPrefix(line, "peak-rss "); ok {
			rss, err := strconv.ParseInt(v, 10, 64)
			return rss, took, err
		}
	}
	return 0, 0, fmt.Errorf("open in a child: no peak-rss line in\n%s", out)
}

// TestOpenPeakRSSHelper is the child process of openPeakRSS: it opens the
// state named by $CVFEED_OPEN_RSS read-only, and prints its
// peak RSS (VmHWM). Without the variable it has nothing to do.
func TestOpenPeakRSSHelper(t *testing.T) {
	path := os.Getenv("CVFEED_OPEN_RSS")
	if path == "" {
		t.Skip("the child process of BenchmarkStateSize")
	}
	start := time.Now()
	s, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	took := time.Since(start)
	if _, err := s.Size(); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("open-took %s\npeak-rss %d\n", took, kb<<10)
			return
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
}

// benchPath is a path like bench/backfill's: 500 files per directory.
func benchPath(i int) string {
	return fmt.Sprintf("/srv/cvfeed-bench-1234567890/cvs/d%03d/Candidate %06d CV.pdf", i/500, i)
}

// backfillLike claims n files and uploads them as a backfill does. With
// move, every file has an after-action, done (the file moved to done_dir)
// once its item is uploaded.
func backfillLike(s *Store, n int, move bool) error {
	const sourceID = "0123456789abcdef0123456789abcdef01234567"
	batch := make([]Candidate, 0, 256)
	ids := make([]Identity, 256)
	mtime := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).UnixNano()
	var fileID [20]byte
	drain := func(all bool) error {
		for {
			items, _, err := s.Lease(128, nil)
			if err != nil {
				return err
			}
			for len(items) > 0 {
				k := min(64, len(items))
				rs := make([]Result, k)
				for j, it := range items[:k] {
					binary.BigEndian.PutUint64(fileID[:], uint64(j)^binary.BigEndian.Uint64(it.SHA256[:]))
					h := sha256.Sum256(fileID[:])
					rs[j] = Result{Key: it.Key, Outcome: Done, Attempted: true, FileID: fmt.Sprintf("%x", h[:20])}
				}
				if err := s.Complete(rs); err != nil {
					return err
				}
				if move {
					for _, it := range items[:k] {
						acts, err := s.ActionsFor(it.Key)
						if err != nil {
							return err
						}
						for _, a := range acts {
							if err := s.ActionDone(a, "/srv/done"+a.Path[len("/srv/cvfeed-bench-1234567890/cvs"):]); err != nil {
								return err
							}
						}
					}
				}
				items = items[k:]
			}
			if !all {
				return nil
			}
			p, err := s.Pending(nil)
			if err != nil || p == 0 {
				return err
			}
		}
	}
	for i := range n {
		p := benchPath(i)
		var content [8]byte
		binary.BigEndian.PutUint64(content[:], uint64(i))
		id := &ids[len(batch)]
		*id = Identity{Dev: 2049, Ino: uint64(1_000_000 + i), Size: int64(2048 + i%14336), MTime: mtime + int64(i)*1_000_003}
		batch = append(batch, Candidate{
			Source: "inbox", SourceID: sourceID, SHA256: sha256.Sum256(content[:]),
			Path: p, FileName: filepath.Base(p), Size: id.Size, Received: time.Unix(0, id.MTime), Identity: id, Action: move,
		})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.Claim(batch); err != nil {
				return err
			}
			batch = batch[:0]
			if err := drain(false); err != nil {
				return err
			}
		}
	}
	return drain(true)
}

// printBucketStats prints, per top-level bucket, what its keys, values and
// pages cost, and per file of n.
func printBucketStats(w io.Writer, s *Store, n int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bucket\tkeys\tkey B\tvalue B\tleaf pages\tleaf inuse\tleaf alloc\tbranch alloc\tB/file\t")
	var total int
	err := s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			var keyB, valB int
			var count func(*bolt.Bucket)
			count = func(bk *bolt.Bucket) {
				c := bk.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					keyB += len(k)
					if v == nil {
						if sub := bk.Bucket(k); sub != nil {
							count(sub)
						}
						continue
					}
					valB += len(v)
				}
			}
			count(bk)
			st := bk.Stats()
			alloc := st.LeafAlloc + st.BranchAlloc
			total += alloc
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t\n", name, st.KeyN, keyB, valB, st.LeafPageN+st.LeafOverflowN, st.LeafInuse, st.LeafAlloc, st.BranchAlloc, float64(alloc)/float64(n))
			return nil
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "all buckets\t\t\t\t\t\t%d\t\t%.1f\t\n", total, float64(total)/float64(n))
	if err := tw.Flush(); err != nil {
		return err
	}
	st := s.db.Stats()
	fmt.Fprintf(w, "free pages: %d free and %d pending, %d bytes, %.1f bytes per file\n", st.FreePageN, st.PendingPageN, st.FreeAlloc, float64(st.FreeAlloc)/float64(n))
	return nil
}
