package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"unicode"
)

// apiKey reads the API key from api_key or api_key_file, exactly one of
// which must be set; the sandbox needs neither. Errors never show the key.
func (r *reader) apiKey(raw *rawAPI, sandbox bool) Secret {
	key, set := r.secret("api.api_key", raw.APIKey, "api.api_key_file", raw.APIKeyFile, "key")
	switch {
	case set:
		return key
	case sandbox:
		return Secret(SandboxURL)
	default:
		r.probs.missing("api.api_key", "required (or api.api_key_file)")
		return ""
	}
}

// secret reads a secret given either as the value of key (${VAR}
// expanded) or in the file named by fileKey (see keyFile); at most one of
// the two may be set. set reports whether either is, even when a problem
// was reported and the secret is empty. what names the secret in
// messages, which never show its value.
func (r *reader) secret(key string, v rawValue, fileKey string, fv rawValue, what string) (s Secret, set bool) {
	var val, from string
	switch {
	case v.set && fv.set:
		r.probs.addf(fileKey, "cannot be used with %s: set only one", key)
		return "", true
	case r.skipSecrets && v.set:
		r.unread(key, v, false)
		return "", true
	case r.skipSecrets && fv.set:
		r.unread(fileKey, fv, true)
		return "", true
	case v.set:
		s, ok := r.str(key, v)
		if !ok {
			return "", true
		}
		if s == "" {
			r.probs.addf(key, "empty")
			return "", true
		}
		val, from = s, key
	case fv.set:
		name, ok := r.str(fileKey, fv)
		if !ok {
			return "", true
		}
		if name == "" {
			r.probs.addf(fileKey, "must not be empty")
			return "", true
		}
		s, err := r.keyFile(name)
		if err != nil {
			r.probs.add(fileKey, err)
			return "", true
		}
		val, from = s, fileKey
	default:
		return "", false
	}
	if strings.ContainsFunc(val, unicode.IsControl) {
		r.probs.addf(from, "the %s contains a control character", what)
		return "", true
	}
	return Secret(val), true
}

// keyFile reads a secret (the API key, a password, a token) from a file,
// trailing white space removed. A
// bare name (no slash) is looked up first in $CREDENTIALS_DIRECTORY, where
// systemd's LoadCredential= puts it, then beside the config file.
func (r *reader) keyFile(name string) (string, error) {
	var paths []string
	if dir, ok := r.lookupEnv("CREDENTIALS_DIRECTORY"); ok && dir != "" && !strings.Contains(name, "/") {
		paths = append(paths, filepath.Join(dir, name))
	}
	paths = append(paths, r.resolve(name))
	var (
		data []byte
		err  error
		p    string
	)
	for _, p = range paths {
		data, err = r.readFile(p)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	switch {
	case err != nil:
		return "", err
	case len(data) > maxKeyFile:
		return "", fmt.Errorf("%s: larger than %d bytes", p, maxKeyFile)
	}
	key := strings.TrimRightFunc(string(data), unicode.IsSpace)
	if key == "" {
		return "", fmt.Errorf("%s is empty", p)
	}
	return key, nil
}

// unread checks the shape of a secret value, or of a secret file's name,
// without resolving it (LoadOptions.SkipSecrets): a string, with
// well-formed ${...}, and for a file name not empty. Variables are not
// looked up and the file is not read.
func (r *reader) unread(key string, v rawValue, isFile bool) {
	raw, ok := v.v.(string)
	if !ok {
		r.probs.addf(key, "expected a string, got %s", typeName(v.v))
		return
	}
	if _, err := expand(raw, func(string) (string, bool) { return "", true }); err != nil {
		r.probs.add(key, err)
		return
	}
	if raw == "" {
		if isFile {
			r.probs.addf(key, "must not be empty")
		} else {
			r.probs.addf(key, "empty")
		}
	}
}
