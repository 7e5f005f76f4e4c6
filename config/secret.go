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
	var key string
	switch {
	case raw.APIKey.set && raw.APIKeyFile.set:
		r.probs.addf("api.api_key_file", "cannot be used with api.api_key: set only one")
		return ""
	case raw.APIKey.set:
		s, ok := r.str("api.api_key", raw.APIKey)
		if !ok {
			return ""
		}
		if s == "" {
			r.probs.addf("api.api_key", "empty")
			return ""
		}
		key = s
	case raw.APIKeyFile.set:
		name, ok := r.str("api.api_key_file", raw.APIKeyFile)
		if !ok {
			return ""
		}
		if name == "" {
			r.probs.addf("api.api_key_file", "must not be empty")
			return ""
		}
		s, err := r.keyFile(name)
		if err != nil {
			r.probs.add("api.api_key_file", err)
			return ""
		}
		key = s
	case sandbox:
		return Secret(SandboxURL)
	default:
		r.probs.missing("api.api_key", "required (or api.api_key_file)")
		return ""
	}
	if strings.ContainsFunc(key, unicode.IsControl) {
		r.probs.addf(keySource(raw), "the key contains a control character")
		return ""
	}
	return Secret(key)
}

// keySource names the key the API key came from.
func keySource(raw *rawAPI) string {
	if raw.APIKeyFile.set {
		return "api.api_key_file"
	}
	return "api.api_key"
}

// keyFile reads the API key from a file, trailing white space removed. A
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
