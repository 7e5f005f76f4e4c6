// Package cyrustest starts a throwaway Cyrus IMAP server for tests, the
// second real server beside Dovecot (internal/dovecottest): its own
// imapd.conf and cyrus.conf on 127.0.0.1, users in a sasldb, mail spool and
// databases in a short temporary directory, stopped when the test ends.
//
// cyrus-imapd and dovecot-imapd conflict as Debian packages, so Cyrus runs
// from its extracted package: .ci/cyrus.sh installs cyrus-common and
// sasl2-bin and extracts cyrus-imapd into $CVFEED_CYRUS_ROOT (default
// /opt/cvfeed-ci/cyrus). Start fails the test, naming .ci/cyrus.sh, when
// any of it is missing: CI cannot pass without Cyrus.
//
// Cyrus's IDLE learns of new mail from idled, which here takes about a
// minute to notify: tests of prompt pickup on Cyrus rely on the poll.
package cyrustest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/cvfeed/cvfeed/internal/imaptest"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// DefaultRoot is where .ci/cyrus.sh extracts cyrus-imapd when
// $CVFEED_CYRUS_ROOT is not set.
const DefaultRoot = "/opt/cvfeed-ci/cyrus"

// Options configure StartWith.
type Options struct {
	// Users maps user names to passwords; nil: one user, "cvfeed" with
	// password "secret". Each gets an INBOX.
	Users map[string]string
}

// Server is a running Cyrus.
type Server struct {
	// Addr is the IMAP listener (plain; LOGIN and AUTHENTICATE PLAIN).
	Addr string
	// Users are the accounts, name to password.
	Users map[string]string
	// Dir is the server's directory: configuration, spool, databases.
	Dir string

	t        testing.TB
	conf     string
	master   *exec.Cmd
	exited   chan struct{}
	out      bytes.Buffer // master's stdout and stderr
	adminPw  string
	mu       sync.Mutex
	pool     imaptest.Pool
	stopOnce sync.Once
}

// binaries are the programs a Cyrus needs, found in the extracted root or
// installed by cyrus-common / sasl2-bin.
type binaries struct{ master, ctlCyrusdb, imapd, idled, saslpasswd2 string }

func root() string {
	if r := os.Getenv("CVFEED_CYRUS_ROOT"); r != "" {
		return r
	}
	return DefaultRoot
}

func findBinaries() (binaries, error) {
	r := root()
	pick := func(name string) string {
		for _, p := range []string{filepath.Join(r, "usr/lib/cyrus/bin", name), filepath.Join("/usr/lib/cyrus/bin", name)} {
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p
			}
		}
		return ""
	}
	b := binaries{master: pick("master"), ctlCyrusdb: pick("ctl_cyrusdb"), imapd: pick("imapd"), idled: pick("idled")}
	if p, err := exec.LookPath("saslpasswd2"); err == nil {
		b.saslpasswd2 = p
	}
	var missing []string
	for name, p := range map[string]string{"master": b.master, "ctl_cyrusdb": b.ctlCyrusdb, "imapd": b.imapd, "idled": b.idled, "saslpasswd2": b.saslpasswd2} {
		if p == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("Cyrus IMAP is not installed (missing %s under %s, /usr/lib/cyrus/bin or $PATH): run .ci/cyrus.sh (it extracts cyrus-imapd into $CVFEED_CYRUS_ROOT, default %s); the IMAP tests need a real Cyrus beside Dovecot",
			strings.Join(missing, ", "), r, DefaultRoot)
	}
	return b, nil
}

// Start starts a Cyrus with one user, "cvfeed" (password "secret"), and
// stops it when the test ends.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith starts a Cyrus configured by o and stops it when the test ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bins, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	users := o.Users
	if users == nil {
		users = map[string]string{"cvfeed": "secret"}
	}
	// UNIX socket paths stay under ~108 bytes: a short directory straight
	// under the system temp dir, which the cyrus user can traverse.
	dir, err := os.MkdirTemp("", "cy")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{Users: users, Dir: dir, t: t}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = s.start(bins); lastErr == nil {
			break
		}
		s.stopMaster()
	}
	if lastErr != nil {
		t.Fatalf("start cyrus: %v\n%s", lastErr, s.Log())
	}
	for name := range users {
		if err := s.createInbox(name); err != nil {
			t.Fatalf("cyrus: create the INBOX of %s: %v\n%s", name, err, s.Log())
		}
	}
	return s
}

// adminUser is Cyrus's admin (admins: in imapd.conf), who creates INBOXes.
const adminUser = "cyrus"

func (s *Server) start(b binaries) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for _, sub := range []string{"conf", "part", "run"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, sub), 0o750); err != nil {
			return err
		}
	}
	runAs := ""
	if os.Geteuid() != 0 {
		// Not root: Cyrus runs as this user instead of "cyrus".
		u, err := user.Current()
		if err != nil {
			return err
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return err
		}
		runAs = fmt.Sprintf("cyrus_user: %s\ncyrus_group: %s\n", u.Username, g.Name)
	}
	s.conf = filepath.Join(s.Dir, "imapd.conf")
	d := s.Dir
	imapdConf := fmt.Sprintf(`configdirectory: %[1]s/conf
partition-default: %[1]s/part
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: %[1]s/sasldb2
sasl_mech_list: PLAIN
allowplaintext: yes
unixhierarchysep: yes
altnamespace: yes
admins: %[2]s
lmtpsocket: %[1]s/run/lmtp
idlesocket: %[1]s/run/idle
notifysocket: %[1]s/run/notify
%[3]s`, d, adminUser, runAs)
	cyrusConf := fmt.Sprintf(`START {
  recover cmd="%[2]s -r -C %[1]s/imapd.conf"
}
SERVICES {
  imap cmd="%[3]s -C %[1]s/imapd.conf" listen="%[5]s" prefork=0
}
EVENTS {
}
DAEMON {
  idled cmd="%[4]s -C %[1]s/imapd.conf"
}
`, d, b.ctlCyrusdb, b.imapd, b.idled, s.Addr)
	if err := os.WriteFile(s.conf, []byte(imapdConf), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "cyrus.conf"), []byte(cyrusConf), 0o644); err != nil {
		return err
	}
	if s.adminPw == "" {
		var rb [12]byte
		rand.Read(rb[:])
		s.adminPw = hex.EncodeToString(rb[:])
		pws := map[string]string{adminUser: s.adminPw}
		for n, p := range s.Users {
			pws[n] = p
		}
		for n, p := range pws {
			cmd := exec.Command(b.saslpasswd2, "-p", "-c", "-f", filepath.Join(d, "sasldb2"), "-u", "", n)
			cmd.Stdin = strings.NewReader(p)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("saslpasswd2 %s: %v: %s", n, err, out)
			}
		}
	}
	if os.Geteuid() == 0 {
		if err := chownTree(d, "cyrus", "mail"); err != nil {
			return err
		}
	}
	s.out.Reset()
	s.master = exec.Command(b.master, "-C", s.conf, "-M", filepath.Join(d, "cyrus.conf"), "-p", filepath.Join(d, "run", "master.pid"))
	s.master.Stdout, s.master.Stderr = &lockedWriter{s: s}, &lockedWriter{s: s}
	s.master.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.master.Start(); err != nil {
		return fmt.Errorf("start %s: %w", b.master, err)
	}
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(s.master, s.exited)
	return waitPort(s.Addr, 15*time.Second, s.exited)
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(p)
}

func chownTree(dir, userName, groupName string) error {
	u, err := user.Lookup(userName)
	if err != nil {
		return fmt.Errorf("cyrus user: %w (is cyrus-common installed? run .ci/cyrus.sh)", err)
	}
	g, err := user.LookupGroup(groupName)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// createInbox creates user/NAME as the admin: Cyrus makes no INBOX at login.
func (s *Server) createInbox(name string) error {
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(adminUser, s.adminPw).Wait(); err != nil {
		return fmt.Errorf("login %s: %w", adminUser, err)
	}
	err = c.Create("user/"+name, nil).Wait()
	var ie *imap.Error
	if err != nil && errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		err = nil
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitPort waits until addr accepts connections, or the master exits.
func waitPort(addr string, d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("cyrus master exited before listening on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cyrus does not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what Cyrus's master printed (Cyrus logs the rest to syslog).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// Stop stops Cyrus and waits for its processes to exit. The test's cleanup
// calls it; calling it again does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.pool.Close()
		s.stopMaster()
	})
}

func (s *Server) stopMaster() {
	if s.master == nil || s.master.Process == nil {
		return
	}
	pgid := s.master.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
	// The services master started (imapd, idled) are in its group.
	syscall.Kill(-pgid, syscall.SIGKILL)
	s.master = nil
}
