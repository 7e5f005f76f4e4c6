package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// maxKeyFile bounds the size of api_key_file: a key is short, and reading
// a wrong path such as /dev/zero must not exhaust memory.
const maxKeyFile = 64 << 10

// Load reads the config file at path and parses it with Parse, taking
// ${VAR} values from the process environment.
func Load(path string) (*Config, error) { return LoadWith(path, LoadOptions{}) }

// LoadOptions changes what LoadWith and ParseWith read.
type LoadOptions struct {
	// SkipSecrets reads the config without its secrets, for the commands
	// that only read the state (status, failed, retry, report, state):
	// an admin's shell may lack the daemon's environment, and a secret
	// file may be readable by systemd alone. The secret keys (api_key,
	// password, webhook secret, OAuth2 client secret and refresh token,
	// and their _file forms) are still checked for their shape (a string,
	// well-formed ${...}, not both forms), but ${VAR} in them is not looked
	// up and their files are not read; every Secret of the Config is
	// empty (the sandbox's key aside). Every other key is validated as
	// usual.
	SkipSecrets bool
}

// LoadWith is Load with options.
func LoadWith(path string, o LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseWith(data, path, os.LookupEnv, o)
}

// Parse decodes and validates a config file. path is the file's name: it
// prefixes error messages as given, and relative paths in the file are
// resolved against its directory. lookupEnv supplies ${VAR} values and
// $CREDENTIALS_DIRECTORY (nil means an empty environment). api_key_file is
// read from disk.
//
// The error, if any, joins one *Error per problem, in file order.
func Parse(data []byte, path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	return ParseWith(data, path, lookupEnv, LoadOptions{})
}

// ParseWith is Parse with options.
func ParseWith(data []byte, path string, lookupEnv func(string) (string, bool), o LoadOptions) (*Config, error) {
	return parse(data, path, lookupEnv, readKeyFile, o)
}

// readKeyFile reads at most maxKeyFile+1 bytes of a file.
func readKeyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxKeyFile+1))
}

// parse is ParseWith with the file reader injected, for the fuzz test.
func parse(data []byte, file string, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error), o LoadOptions) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	probs := &problems{file: file}
	src := string(data)

	// Decode once into a generic tree: syntax errors, and the keys in file
	// order for the error lines.
	var tree map[string]any
	md, err := toml.Decode(src, &tree)
	if err != nil {
		return nil, decodeError(file, err)
	}
	probs.pos = newPositions(md.Keys(), tree, src)
	if !checkShape(tree, probs) {
		return nil, probs.err()
	}

	// Then into the raw struct, which cannot fail once the tables have
	// the right shape, to learn which keys it does not know.
	var raw rawConfig
	md, err = toml.Decode(src, &raw)
	if err != nil {
		return nil, decodeError(file, err)
	}
	unknownKeys(&md, probs)

	base, abs, err := baseDir(file)
	if err != nil {
		return nil, &Error{File: file, Err: err}
	}
	r := &reader{probs: probs, lookupEnv: lookupEnv, readFile: readFile, base: base, skipSecrets: o.SkipSecrets}
	cfg := r.config(&raw)
	cfg.File = abs
	if err := probs.err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// baseDir returns the directory relative paths are resolved against and
// the absolute path of the config file (empty if file is).
func baseDir(file string) (dir, abs string, err error) {
	if file == "" {
		dir, err = filepath.Abs(".")
		return dir, "", err
	}
	abs, err = filepath.Abs(file)
	if err != nil {
		return "", "", fmt.Errorf("resolve path: %w", err)
	}
	return filepath.Dir(abs), abs, nil
}

// decodeError turns an error of the TOML decoder into an *Error.
func decodeError(file string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.Position.Line, Err: fmt.Errorf("invalid TOML: %s", pe.Message)}
	}
	return &Error{File: file, Err: errors.New(strings.TrimPrefix(err.Error(), "toml: "))}
}

// checkShape checks that the tables are tables and the arrays of tables
// arrays of tables, so that decoding into rawConfig cannot fail halfway.
func checkShape(tree map[string]any, probs *problems) bool {
	ok := true
	for _, key := range []string{"api", "http"} {
		if v, found := tree[key]; found {
			if _, isTable := v.(map[string]any); !isTable {
				probs.addf(key, "expected a table ([%s]), got %s", key, typeName(v))
				ok = false
			}
		}
	}
	folders, good := tableArray("folder", tree["folder"], probs)
	ok = ok && good
	for i, f := range folders {
		key := fmt.Sprintf("folder[%d].training_metadata", i)
		_, good := tableArray(key, f["training_metadata"], probs)
		ok = ok && good
	}
	mailboxes, good := tableArray("mailbox", tree["mailbox"], probs)
	ok = ok && good
	for i, m := range mailboxes {
		key := fmt.Sprintf("mailbox[%d].training_metadata", i)
		_, good := tableArray(key, m["training_metadata"], probs)
		ok = ok && good
		if v, found := m["oauth2"]; found {
			if _, isTable := v.(map[string]any); !isTable {
				probs.addf(fmt.Sprintf("mailbox[%d].oauth2", i), "expected a table ([mailbox.oauth2]), got %s", typeName(v))
				ok = false
			}
		}
	}
	return ok
}

// tableArray returns the tables of an array of tables ([[key]] or an
// array of inline tables), reporting any other shape.
func tableArray(key string, v any, probs *problems) ([]map[string]any, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case []map[string]any:
		return v, true
	case []any:
		tables := make([]map[string]any, 0, len(v))
		for i, e := range v {
			t, ok := e.(map[string]any)
			if !ok {
				probs.addf(fmt.Sprintf("%s[%d]", key, i), "expected a table, got %s", typeName(e))
				return nil, false
			}
			tables = append(tables, t)
		}
		return tables, true
	case map[string]any:
		name := key[strings.LastIndexByte(key, '.')+1:]
		probs.addf(key, "expected an array of tables: write [[%s]], not [%s]", name, name)
		return nil, false
	default:
		probs.addf(key, "expected an array of tables, got %s", typeName(v))
		return nil, false
	}
}

// unknownKeys reports each key the schema does not have, once: not the
// keys inside an unknown table, nor those inside a value of the wrong type
// (validation reports that). Keys are case-sensitive: the decoder would
// take "URL" for "url", this does not.
func unknownKeys(md *toml.MetaData, probs *problems) {
	known := schema()
	undecoded := make(map[string]bool)
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	for _, kp := range probs.pos.keys {
		name := kp.key.String()
		parent := kp.key[:len(kp.key)-1].String()
		_, isKnown := known[name]
		if isKnown && !undecoded[name] || !known[parent] {
			continue
		}
		if s := suggest(known, parent, kp.key[len(kp.key)-1]); s != "" {
			probs.addf(kp.path, "unknown key (did you mean %s?)", s)
		} else {
			probs.addf(kp.path, "unknown key")
		}
	}
}
