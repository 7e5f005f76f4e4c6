package imapsrc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/dovecottest"
	"github.com/cvfeed/cvfeed/mailpart"
	"github.com/cvfeed/cvfeed/state"
)

// digests returns the "sha16/size" keys of b: as is, and with CRLF made
// LF (Dovecot serves bare-LF messages with CRLF, so text parts change).
func digests(b []byte) []string {
	key := func(b []byte) string {
		h := sha256.Sum256(b)
		return hex.EncodeToString(h[:8]) + "/" + strconv.Itoa(len(b))
	}
	return []string{key(b), key(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))}
}

// appendFixtures appends every fixture to INBOX, in expected.json's
// order: the fixture of UID n is fixtures[n-1].
func appendFixtures(t *testing.T, s *dovecottest.Server) []fixture {
	fxs := loadFixtures(t)
	for _, fx := range fxs {
		if _, err := s.Append("cvfeed", "INBOX", readFixture(t, fx.File), nil); err != nil {
			t.Fatal(err)
		}
	}
	return fxs
}

func dovecotConfig(s *dovecottest.Server) config.Mailbox {
	cfg := mailboxConfig(s.Addr)
	cfg.Password = config.Secret(s.Users["cvfeed"])
	return cfg
}

// claimedByUID groups the claims by message UID, as digests of the
// spooled files.
func claimedByUID(t *testing.T, st *recStore) map[string][][]string {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := map[string][][]string{}
	for _, c := range st.claims {
		b, err := os.ReadFile(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(c.Origin, "/") // jobs/INBOX/uv/uid/section
		out[parts[3]] = append(out[parts[3]], digests(b))
	}
	return out
}

func TestDovecotBackfillFixtures(t *testing.T) {
	s := dovecottest.Start(t)
	fxs := appendFixtures(t, s)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	cfg := dovecotConfig(s)
	cfg.Accept, cfg.AfterUpload = config.AcceptAll, config.MailSeen
	a := NewAccount(cfg, st, options(t, dir, nil))
	ctx := context.Background()
	if err := a.Backfill(ctx); err != nil {
		t.Fatalf("Backfill: %v\n%s", err, s.Log())
	}
	got := claimedByUID(t, st)
	checkNames(t, st, fxs)
	for i, fx := range fxs {
		uid := strconv.Itoa(i + 1)
		var want []string
		for _, e := range fx.uploads() {
			if e.Size > 0 {
				want = append(want, e.SHA256+"/"+strconv.Itoa(int(e.Size)))
			}
		}
		var have []string
		for _, d := range got[uid] {
			k := d[0]
			if !slices.Contains(want, k) && slices.Contains(want, d[1]) {
				k = d[1]
			}
			have = append(have, k)
		}
		// The same file twice in one message is claimed once.
		slices.Sort(want)
		want = slices.Compact(want)
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("%s (UID %s): claimed %q, want %q", fx.File, uid, have, want)
		}
	}
	// Each distinct content is one new item; repeats are duplicates.
	st.mu.Lock()
	distinct := map[[32]byte]int{}
	for i, c := range st.claims {
		if st.res[i] == state.ClaimNew {
			distinct[c.SHA256]++
		}
	}
	for _, c := range st.claims {
		if distinct[c.SHA256] != 1 {
			t.Errorf("%s: %d new items for its content, want 1", c.Origin, distinct[c.SHA256])
		}
	}
	nClaims := len(st.claims)
	st.mu.Unlock()

	// A second backfill reads nothing new.
	if err := a.Backfill(ctx); err != nil {
		t.Fatal(err)
	}
	if st.mu.Lock(); len(st.claims) != nClaims {
		t.Errorf("second backfill claimed %d more parts, want 0", len(st.claims)-nClaims)
	}
	st.mu.Unlock()

	// Once the items are settled, every message with a CV is \Seen.
	settle(t, st.Store, state.Done)
	if err := a.ActionsNow(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := s.Client("cvfeed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		seen := slices.Contains(m.Flags, imap.FlagSeen)
		if want := len(got[strconv.Itoa(int(m.UID))]) > 0; seen != want {
			t.Errorf("UID %d (%s): \\Seen = %v, want %v", m.UID, fxs[m.UID-1].File, seen, want)
		}
	}
}

// cvDigests returns the digests of the parts of a fixture the default
// policy takes, read locally.
func cvDigests(t *testing.T, msg []byte) []string {
	var out []string
	err := mailpart.ParseMessage(bytes.NewReader(msg), mailpart.Policy{}, func(ref mailpart.PartRef, r io.Reader) error {
		return cvDigest(t, ref, r, &out)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cvDigest adds the digest of a part the default policy takes to out, and
// those of the files inside a TNEF container.
func cvDigest(t *testing.T, ref mailpart.PartRef, r io.Reader, out *[]string) error {
	br := bufio.NewReaderSize(r, mailpart.HeadSize)
	head, _ := br.Peek(mailpart.HeadSize)
	if mailpart.IsTNEF(head) {
		_, err := mailpart.UnpackTNEF(ref, br, t.TempDir(), 0, func(in mailpart.PartRef, r io.Reader) error {
			return cvDigest(t, in, r, out)
		})
		return err
	}
	if ok, _ := (mailpart.Policy{}).AcceptContent(ref, head); !ok {
		return nil
	}
	b, err := io.ReadAll(br)
	if err != nil {
		return err
	}
	*out = append(*out, digests(b)[1])
	return nil
}

func TestDovecotDefaultPolicy(t *testing.T) {
	s := dovecottest.Start(t)
	fxs := appendFixtures(t, s)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	if err := NewAccount(dovecotConfig(s), st, options(t, dir, nil)).Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := claimedByUID(t, st)
	total := 0
	for i, fx := range fxs {
		want := cvDigests(t, readFixture(t, fx.File))
		var have []string
		for _, d := range got[strconv.Itoa(i+1)] {
			have = append(have, d[1])
		}
		slices.Sort(want)
		want = slices.Compact(want)
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("%s: claimed %q, want the CV documents %q", fx.File, have, want)
		}
		total += len(have)
	}
	if total == 0 {
		t.Error("no CV document claimed from the fixtures")
	}
}

func TestDovecotTLS(t *testing.T) {
	s := dovecottest.StartWith(t, dovecottest.Options{TLS: true})
	if _, err := s.Append("cvfeed", "INBOX", message("a@example.com", "CV", "a.pdf", pdf(5000)), nil); err != nil {
		t.Fatal(err)
	}
	wrongCA, err := dovecottest.WriteOtherCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, security, addr, ca, serverName string
		wantErr                              string
	}{
		{"tls", config.SecurityTLS, s.TLSAddr, s.CAFile, "", ""},
		{"starttls", config.SecurityStartTLS, s.Addr, s.CAFile, "", ""},
		{"tls server name", config.SecurityTLS, s.TLSAddr, s.CAFile, "localhost", ""},
		{"wrong CA", config.SecurityTLS, s.TLSAddr, wrongCA, "", "certificate signed by unknown authority"},
		{"wrong CA starttls", config.SecurityStartTLS, s.Addr, wrongCA, "", "certificate signed by unknown authority"},
		{"system roots", config.SecurityTLS, s.TLSAddr, "", "", "certificate"},
		{"wrong name", config.SecurityTLS, s.TLSAddr, s.CAFile, "imap.example.com", "imap.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := &recStore{Store: openStore(t, dir)}
			cfg := dovecotConfig(s)
			cfg.Security, cfg.Address, cfg.CAFile, cfg.TLSServerName = tt.security, tt.addr, tt.ca, tt.serverName
			o := options(t, dir, nil)
			o.Backoff = Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}
			err := NewAccount(cfg, st, o).Backfill(context.Background())
			if tt.wantErr == "" {
				if n, _ := st.counts(); err != nil || n != 1 {
					t.Errorf("Backfill = %v, %d claims; want nil, 1", err, n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Backfill = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestDovecotIdle(t *testing.T) {
	s := dovecottest.Start(t)
	dir := t.TempDir()
	st := &recStore{Store: openStore(t, dir)}
	cfg := dovecotConfig(s)
	cfg.PollInterval = time.Hour
	runAccount(t, NewAccount(cfg, st, options(t, dir, nil)))
	waitFor(t, 5*time.Second, "the cursor", func() bool { _, ok, _ := st.MailCursor("jobs", "INBOX"); return ok })
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if _, err := s.Append("cvfeed", "INBOX", message("a@example.com", "CV", "a.pdf", pdf(30000)), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the CV claimed through IDLE", func() bool { n, _ := st.counts(); return n == 1 })
	t.Logf("picked up %v after APPEND", time.Since(start).Round(time.Millisecond))
}

// checkNames checks the file name of each claim against expected.json's,
// where the fixture names the part and Dovecot reads the name as Python
// does (not for dovecotDiffers).
func checkNames(t *testing.T, st *recStore, fxs []fixture) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, c := range st.claims {
		parts := strings.Split(c.Origin, "/")
		uid, section := parts[3], strings.Join(parts[4:], "/") // "2/tnef-1" inside a winmail.dat
		n, _ := strconv.Atoi(uid)
		fx := fxs[n-1]
		if _, differs := dovecotDiffers[fx.File]; differs {
			continue
		}
		for _, e := range fx.uploads() {
			if e.Part == section && e.name(fx.File) != "" {
				if want := mailpart.SafeName(e.name(fx.File), nil); c.FileName != want {
					t.Errorf("%s part %s: file name %q, want %q", fx.File, section, c.FileName, want)
				}
			}
		}
	}
}
