package imapsrc

import (
	"context"
	"crypto/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cvfeed/cvfeed/internal/dovecottest"
)

// BenchmarkDovecotBackfill is the bandwidth target of the design: a
// Dovecot mailbox where every message carries a small CV PDF and half of
// them also a large non-CV attachment (a 1 MiB video), read by Backfill
// with the default policy. It reports messages/s and the bytes read from
// IMAP (at the connection) per byte of CV spooled: the target is <= 1.2.
//
//	go test -run '^$' -bench DovecotBackfill -benchtime 1x ./imapsrc/
//
// IMAPSRC_BENCH_MESSAGES sets the number of messages (default 5000).
func BenchmarkDovecotBackfill(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("IMAPSRC_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	s := dovecottest.Start(b)
	big := make([]byte, 1<<20)
	rand.Read(big)
	copy(big, "\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom")
	var cvBytes int64
	for i := range n {
		// CVs of 48 to 176 KiB, each distinct.
		cv := pdf(48<<10 + i%8*16<<10)
		cvBytes += int64(len(cv))
		files := []any{"cv-" + strconv.Itoa(i) + ".pdf", cv}
		if i%2 == 0 {
			files = append(files, "interview.mp4", big)
		}
		if err := s.Deliver("cvfeed", message("applicant@example.com", "Application", files...)); err != nil {
			b.Fatal(err)
		}
	}
	// Dovecot parses the messages on their first FETCH BODYSTRUCTURE: a
	// STATUS first only makes it see the new files.
	c, err := s.Client("cvfeed")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		st := openStoreTB(b, dir)
		stats := new(Stats)
		cfg := mailboxConfig(s.Addr)
		cfg.Password = "secret"
		o := AccountOptions{SpoolDir: dir + "/spool", Stats: stats}
		start := time.Now()
		if err := NewAccount(cfg, st, o).Backfill(context.Background()); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		if got := stats.Parts.Load(); got != int64(n) {
			b.Fatalf("claimed %d parts, want %d CVs", got, n)
		}
		if stats.PartBytes.Load() != cvBytes {
			b.Fatalf("spooled %d CV bytes, want %d", stats.PartBytes.Load(), cvBytes)
		}
		ratio := float64(stats.BytesRead.Load()) / float64(stats.PartBytes.Load())
		b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
		b.ReportMetric(ratio, "imap-bytes/cv-byte")
		b.ReportMetric(float64(stats.BytesRead.Load())/(1<<20), "imap-MiB")
		b.ReportMetric(float64(stats.PartBytes.Load())/(1<<20), "cv-MiB")
		if ratio > 1.2 {
			b.Errorf("read %.3f IMAP bytes per CV byte, target <= 1.2", ratio)
		}
	}
}
