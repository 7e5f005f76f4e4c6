package state

import (
	"bytes"
	"crypto/sha256"

	bolt "go.etcd.io/bbolt"
)

// A token endpoint that rotates refresh tokens (Microsoft Entra ID may,
// many others do) answers a refresh with a new refresh token; the one in
// the config may then stop working. The newest is kept in the meta bucket,
// with the SHA-256 of the configured token it descends from:
//
//	meta
//	  "oauth2" 0x00 account  → sha256(configured token)[32] refresh token
//
// so that a new token written into the config by the admin wins over a
// kept one. The file is 0600 (Open), like the configured secret itself.

func oauthKey(account string) []byte {
	return append([]byte("oauth2\x00"), account...)
}

// RefreshToken returns the refresh token kept for account, if one was kept
// since configured was the configured token.
func (s *Store) RefreshToken(account, configured string) (string, bool, error) {
	var tok string
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(oauthKey(account))
		sum := sha256.Sum256([]byte(configured))
		if len(v) > len(sum) && bytes.Equal(v[:len(sum)], sum[:]) {
			tok, ok = string(v[len(sum):]), true
		}
		return nil
	})
	return tok, ok, err
}

// SetRefreshToken keeps token, the refresh token the endpoint issued last
// for account, whose configured token is configured.
func (s *Store) SetRefreshToken(account, configured, token string) error {
	sum := sha256.Sum256([]byte(configured))
	v := append(sum[:], token...)
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(oauthKey(account), v) })
}
