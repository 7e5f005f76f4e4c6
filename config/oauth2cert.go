package config

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ClientCertificate is the certificate an app registration (Microsoft
// Entra ID) authenticates with instead of a client secret: the token
// request carries a JWT signed with Key whose header names Thumbprint.
type ClientCertificate struct {
	// Thumbprint is the SHA-1 of the certificate's DER bytes (the "x5t"
	// Entra ID expects; it is what the portal shows).
	Thumbprint []byte
	// Key is the certificate's private key (RSA, as Entra ID requires).
	Key crypto.Signer
}

// ParseClientCertificate reads a PEM file holding a certificate and its
// private key (PKCS #8 or PKCS #1), in any order, as Azure's tools write
// them. Errors never show the key.
func ParseClientCertificate(data []byte) (*ClientCertificate, error) {
	var cert *x509.Certificate
	var key crypto.Signer
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if cert != nil {
				continue // a chain: the first is the app's
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("the certificate does not parse: %v", err)
			}
			cert = c
		case "PRIVATE KEY", "RSA PRIVATE KEY":
			k, err := parseKey(b)
			if err != nil {
				return nil, err
			}
			key = k
		}
	}
	switch {
	case cert == nil:
		return nil, errors.New("no CERTIFICATE block (want a PEM file with the certificate and its private key)")
	case key == nil:
		return nil, errors.New("no PRIVATE KEY block (want a PEM file with the certificate and its private key)")
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return nil, errors.New("the private key is not RSA (Entra ID signs client assertions with RS256)")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("the private key does not belong to the certificate")
	}
	sum := sha1.Sum(cert.Raw)
	return &ClientCertificate{Thumbprint: sum[:], Key: key}, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	if b.Type == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, errors.New("the RSA private key does not parse")
		}
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("the private key does not parse")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the private key cannot sign")
	}
	return s, nil
}
