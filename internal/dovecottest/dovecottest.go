// Package dovecottest starts a throwaway Dovecot IMAP server for tests: its
// own configuration on 127.0.0.1, passwd-file users, Maildirs and runtime
// files in a short temporary directory, stopped when the test ends.
//
// Dovecot must be installed (Debian: apt-get install dovecot-imapd); Start
// fails the test when it is not, so that CI cannot pass without it.
package dovecottest

import (
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
)

// Options configure Start.
type Options struct {
	// Users maps user names to passwords; nil: one user, "cvfeed" with
	// password "secret".
	Users map[string]string
	// TLS adds an implicit-TLS listener (TLSAddr) and STARTTLS on Addr,
	// with a certificate for 127.0.0.1 signed by a throwaway CA (CAFile).
	TLS bool
	// OAuth2Introspect, when set, adds XOAUTH2 and OAUTHBEARER logins
	// checked by Dovecot's oauth2 passdb against this introspection URL
	// (POST; the answer {"active": true, "username": NAME} admits NAME).
	OAuth2Introspect string
}

// Server is a running Dovecot.
type Server struct {
	// Addr is the IMAP listener (plain, or STARTTLS with Options.TLS).
	Addr string
	// TLSAddr is the implicit-TLS listener; empty without Options.TLS.
	TLSAddr string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate; empty without Options.TLS.
	CAFile string
	// Users are the accounts, name to password.
	Users map[string]string
	// Dir is the server's directory: configuration, Maildirs, log.
	Dir string

	t         testing.TB
	conf      string
	mu        sync.Mutex
	pool      imaptest.Pool
	delivered int
	stopOnce  sync.Once
}

// Binary returns the path of the dovecot binary, or "" when none is
// installed.
func Binary() string {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/dovecot"); err == nil {
		return "/usr/sbin/dovecot"
	}
	return ""
}

// Start starts a Dovecot with one user, "cvfeed" (password "secret"), and
// stops it when the test ends.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith starts a Dovecot configured by o and stops it when the test
// ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "dovecot is not installed: install dovecot-imapd (apt-get install -y dovecot-imapd); the IMAP integration tests need a real Dovecot"
		if os.Getenv("CI") != "" {
			t.Fatal("CI: " + msg)
		}
		t.Fatal(msg)
	}
	users := o.Users
	if users == nil {
		users = map[string]string{"cvfeed": "secret"}
	}
	// UNIX socket paths must stay under ~108 bytes, and as root the mail
	// user (nobody) must be able to traverse the directory: a short 0755
	// directory straight under the system temp dir.
	dir, err := os.MkdirTemp("", "dv")
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
		if lastErr = s.start(bin, o); lastErr == nil {
			return s
		}
		s.stopDovecot()
	}
	t.Fatalf("start dovecot: %v\n%s", lastErr, s.Log())
	return nil
}

func (s *Server) start(bin string, o Options) error {
	mailUID, mailGID, internal, group, err := mailUser()
	if err != nil {
		return err
	}
	var passwd strings.Builder
	for name, pass := range s.Users {
		home := filepath.Join(s.Dir, "home", name)
		if err := os.MkdirAll(home, 0o755); err != nil {
			return err
		}
		if err := os.Chown(home, mailUID, mailGID); err != nil && os.Geteuid() == 0 {
			return err
		}
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s:%d:%d::%s::\n", name, pass, mailUID, mailGID, home)
	}
	usersFile := filepath.Join(s.Dir, "users")
	if err := os.WriteFile(usersFile, []byte(passwd.String()), 0o644); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := config(s.Dir, usersFile, port, internal, group)
	if o.OAuth2Introspect != "" {
		oauthFile := filepath.Join(s.Dir, "oauth2.conf")
		oauthConf := fmt.Sprintf("introspection_mode = post\nintrospection_url = %s\nusername_attribute = username\n"+
			"active_attribute = active\nactive_value = true\n", o.OAuth2Introspect)
		if err := os.WriteFile(oauthFile, []byte(oauthConf), 0o644); err != nil {
			return err
		}
		// The oauth2 passdb comes first; a password login falls through to
		// the passwd-file one.
		conf = strings.Replace(conf, "auth_mechanisms = plain login\n", "auth_mechanisms = plain login xoauth2 oauthbearer\n", 1)
		conf = strings.Replace(conf, "passdb {\n", fmt.Sprintf("passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = %s\n}\npassdb {\n", oauthFile), 1)
	}
	if o.TLS {
		caFile, certFile, keyFile, err := writeCerts(s.Dir)
		if err != nil {
			return err
		}
		tlsPort, err := freePort()
		if err != nil {
			return err
		}
		s.CAFile = caFile
		s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
		conf += fmt.Sprintf("ssl = yes\nssl_cert = <%s\nssl_key = <%s\n"+
			"service imap-login {\n  inet_listener imaps {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n}\n",
			certFile, keyFile, tlsPort)
	} else {
		conf += "ssl = no\n"
	}
	s.conf = filepath.Join(s.Dir, "dovecot.conf")
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	// Dovecot forks into the background and keeps its output open: a
	// file, not a pipe, or waiting for the command would never end.
	outFile := filepath.Join(s.Dir, "start.out")
	out, err := os.Create(outFile)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-c", s.conf)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	out.Close()
	if err != nil {
		b, _ := os.ReadFile(outFile)
		return fmt.Errorf("%s -c %s: %v: %s", bin, s.conf, err, b)
	}
	addrs := []string{s.Addr}
	if s.TLSAddr != "" {
		addrs = append(addrs, s.TLSAddr)
	}
	for _, a := range addrs {
		if err := waitPort(a, 15*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// config is the Dovecot configuration, without the ssl settings.
func config(dir, usersFile string, port int, internal, group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "instance_name = cvfeed-%s\n", filepath.Base(dir))
	fmt.Fprintf(&b, "base_dir = %s/run\nstate_dir = %s/state\n", dir, dir)
	fmt.Fprintf(&b, "log_path = %s/log\ninfo_log_path = %s/log\ndebug_log_path = %s/log\n", dir, dir, dir)
	b.WriteString("listen = 127.0.0.1\nprotocols = imap\n")
	b.WriteString("disable_plaintext_auth = no\nauth_failure_delay = 0\nauth_mechanisms = plain login\n")
	b.WriteString("mail_max_userip_connections = 200\n")
	fmt.Fprintf(&b, "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN %s\n}\n", usersFile)
	fmt.Fprintf(&b, "userdb {\n  driver = passwd-file\n  args = %s\n}\n", usersFile)
	b.WriteString("mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\n")
	if internal != "" {
		// Not root: every service runs as this user, without chroot.
		fmt.Fprintf(&b, "default_internal_user = %s\ndefault_login_user = %s\ndefault_internal_group = %s\n", internal, internal, group)
		b.WriteString("service anvil {\n  chroot =\n}\n")
		b.WriteString("service imap-login {\n  chroot =\n}\n")
	}
	fmt.Fprintf(&b, "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n}\n", port)
	b.WriteString("service doveadm {\n  inet_listener {\n    port = 0\n  }\n}\n")
	b.WriteString("service stats {\n  inet_listener http {\n    port = 0\n  }\n}\n")
	return b.String()
}

// mailUser returns the owner of the Maildirs: nobody when root (Dovecot
// refuses mail uid 0), else the current user, who then also runs
// Dovecot's internal services (internal and group are its names).
func mailUser() (uid, gid int, internal, group string, err error) {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return 0, 0, "", "", err
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		return uid, gid, "", "", nil
	}
	u, err := user.Current()
	if err != nil {
		return 0, 0, "", "", err
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return 0, 0, "", "", err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, u.Username, g.Name, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitPort(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecot does not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns Dovecot's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	return string(b)
}

// Stop stops Dovecot and waits for its processes to exit. The test's
// cleanup calls it; calling it again does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.pool.Close()
		s.stopDovecot()
	})
}

func (s *Server) stopDovecot() {
	if s.conf == "" {
		return
	}
	pidb, _ := os.ReadFile(filepath.Join(s.Dir, "run", "master.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
	exec.Command(Binary(), "-c", s.conf, "stop").Run()
	if pid <= 0 {
		return
	}
	// "dovecot stop" returns before the master has stopped its children.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}
