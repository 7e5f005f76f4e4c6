package state

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRefreshToken: a rotated refresh token is kept across a reopen, and
// a new token in the config wins over the kept one.
func TestRefreshToken(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.RefreshToken("jobs", "rt-config"); ok || err != nil {
		t.Fatalf("RefreshToken of a new state = %v, %v; want none", ok, err)
	}
	if err := s.SetRefreshToken("jobs", "rt-config", "rt-rotated-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRefreshToken("jobs", "rt-config", "rt-rotated-2"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(filepath.Join(dir, FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tok, ok, err := s.RefreshToken("jobs", "rt-config"); tok != "rt-rotated-2" || !ok || err != nil {
		t.Errorf("RefreshToken after a reopen = %q, %v, %v; want rt-rotated-2", tok, ok, err)
	}
	if _, ok, _ := s.RefreshToken("jobs", "rt-new-in-config"); ok {
		t.Error("a kept token was returned for another configured token: the config's new token must win")
	}
	if _, ok, _ := s.RefreshToken("other", "rt-config"); ok {
		t.Error("a kept token was returned for another account")
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state mode %v (%v), want 0600: it holds a refresh token", st.Mode().Perm(), err)
	}
	if probs, err := s.Check(); err != nil || len(probs) != 0 {
		t.Errorf("state check with a kept token: %v, %v", probs, err)
	}
}
