package imapsrc

import (
	"strings"
	"testing"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/internal/dovecottest"
)

func TestCheckAgainstDovecot(t *testing.T) {
	dv := dovecottest.Start(t)
	if _, err := dv.Append("cvfeed", "INBOX", []byte("Subject: x\r\n\r\nhello\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	cfg := config.Mailbox{Name: "jobs", Address: dv.Addr, Security: config.SecurityPlain, Username: "cvfeed",
		Password: config.Secret(dv.Users["cvfeed"]), Folders: []string{"INBOX"}, SourceID: "x", AfterUpload: config.MailNone}
	if errs := NewAccount(cfg, nil, AccountOptions{}).Check(t.Context()); len(errs) != 0 {
		t.Errorf("Check of a good mailbox = %v", errs)
	}
	cfg.Folders = []string{"INBOX", "Nope"}
	errs := NewAccount(cfg, nil, AccountOptions{}).Check(t.Context())
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `"Nope"`) {
		t.Errorf("Check with a missing folder = %v", errs)
	}
	cfg.Password = "wrong"
	errs = NewAccount(cfg, nil, AccountOptions{}).Check(t.Context())
	if len(errs) != 1 || strings.Contains(errs[0].Error(), "wrong") {
		t.Errorf("Check with a wrong password = %v (and it must not print the password)", errs)
	}
}
