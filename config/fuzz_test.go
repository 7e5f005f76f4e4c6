package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that an error
// always names the file and a config always has its defaults filled. It
// is seeded with every testdata/*.toml, mailboxes included.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("training_metadata = [{a = 1}, {b = 2}]\nfolder = [{name = 'x', training_metadata = [{stage = 'NEW'}]}]"))
	f.Add([]byte("[api]\nurl = \"\ufeff${A}$${\"\n[[folder]]\n[[folder.training_metadata]]\n[[folder]]\n"))
	f.Add([]byte("[api]\nurl='sandbox'\n[[mailbox]]\nname='m'\naddress='[::1]:143'\nsecurity='plain'\nusername='u'\n" +
		"source_id='0123456789abcdef0123456789abcdef01234567'\nsince=2024-01-15\naccept=['all']\n" +
		"oauth2={token_url='http://localhost/t',client_id='c',refresh_token_file='refresh_token'}\n"))
	f.Add([]byte("mailbox = [{name='a', oauth2=[{}], training_metadata={}}, {since='1h', folders=['INBOX','inbox']}]"))

	env := fakeEnv(map[string]string{"A": "a", "KEY_DIR": "/keys", "CREDENTIALS_DIRECTORY": "/creds"})
	// Key files come from a fake: input must not make the test read, or
	// block on, whatever file it names.
	readFile := func(name string) ([]byte, error) {
		if strings.HasSuffix(name, "/api_key") || strings.HasSuffix(name, "/refresh_token") {
			return []byte("key\n"), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse(data, "f.toml", env, readFile, LoadOptions{})
		if err != nil {
			if cfg != nil {
				t.Errorf("parse returned a config and an error %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.toml") {
					t.Errorf("error line %q does not start with the file name", line)
				}
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %v holds no *Error", err)
			}
			return
		}
		if cfg.API.Workers < 1 || cfg.API.MaxAttempts < 1 || cfg.API.Timeout <= 0 || len(cfg.Folders)+len(cfg.Mailboxes) == 0 {
			t.Errorf("parse(%q) = %+v: defaults missing", data, cfg)
		}
		for _, fo := range cfg.Folders {
			if fo.Name == "" || fo.SourceID == "" || !filepath.IsAbs(fo.Path) || len(fo.Include) == 0 {
				t.Errorf("parse(%q): folder %+v is incomplete", data, fo)
			}
		}
		for _, m := range cfg.Mailboxes {
			credentials := 0
			if m.Password != "" {
				credentials++
			}
			if m.OAuth2 != nil {
				credentials++
				if m.OAuth2.TokenURL == "" || m.OAuth2.ClientID == "" || m.OAuth2.RefreshToken == "" {
					t.Errorf("parse(%q): oauth2 %+v is incomplete", data, m.OAuth2)
				}
			}
			if m.Name == "" || m.Address == "" || m.Username == "" || m.SourceID == "" || credentials != 1 ||
				len(m.Folders) == 0 || m.Security == "" || m.AfterUpload == "" || m.NoCVAction == "" ||
				m.Accept == "" || m.PollInterval <= 0 || m.SinceAge < 0 ||
				(m.AfterUpload == MailMove || m.NoCVAction == MailMove) && m.MoveTo == "" {
				t.Errorf("parse(%q): mailbox %+v is incomplete", data, m)
			}
		}
	})
}
