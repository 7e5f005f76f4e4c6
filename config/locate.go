package config

import (
	"math"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// positions maps key paths with array indices (folder[1].settle) to the
// line that defines them.
//
// The TOML decoder keeps one position per key name without indices, the
// last one: with two [[folder]] tables, "folder.settle" points at the
// second folder's settle, so a bad value in the first would be reported on
// the wrong line. MetaData.Keys, though, lists every key in file order;
// with the decoded tree, which tells [[tables]] from inline arrays, that
// gives the indices. The line is then the next one, from where the
// previous key ends, that defines that name. This is not a TOML parser: it
// only finds lines in a file the decoder has already accepted, and a key
// it cannot find is reported without a line rather than with a wrong one
// (a multi-line string holding "name = ..." could still mislead it).
type positions struct {
	keys  []keyPos // every key, in file order
	lines map[string]int
}

// keyPos is one key definition of the file.
type keyPos struct {
	key  toml.Key // as the decoder names it, without indices
	path string   // with indices: folder[0].training_metadata[1].stage
	line int      // 1-based; 0 if not found
}

// newPositions indexes the keys of a file, given its keys in order
// (MetaData.Keys), the tree it decodes to, and its text.
func newPositions(keys []toml.Key, tree map[string]any, data string) *positions {
	p := &positions{lines: make(map[string]int)}
	src := strings.Split(strings.TrimPrefix(data, "\ufeff"), "\n")
	tables := make(map[string]int)          // [[array]] path -> tables seen
	inline := make(map[string]*inlineTable) // inline array path -> table being read
	line, col := 0, 0                       // where the previous key ends
	for _, k := range keys {
		kp := keyPos{key: k, path: indexedPath(k, tree, tables, inline)}
		for l := line; l < len(src); l++ {
			from := 0
			if l == line {
				from = col
			}
			if end := keyAt(src[l][from:], k[len(k)-1]); end >= 0 {
				kp.line, line, col = l+1, l, from+end
				break
			}
		}
		p.keys = append(p.keys, kp)
		if _, ok := p.lines[kp.path]; !ok && kp.line > 0 {
			p.lines[kp.path] = kp.line
		}
	}
	return p
}

// inlineTable is the table of an inline array of tables that keys are
// being read from, and the keys read from it so far.
type inlineTable struct {
	n    int
	seen map[string]bool
}

// indexedPath returns the path of key k with array indices, following
// the decoded tree: a [[k]] header opens the next table of its array. In
// an inline array of tables, where Keys shows no boundary between tables,
// a key seen already in the current table, or that it lacks, belongs to
// the next table that has it.
func indexedPath(k toml.Key, tree map[string]any, tables map[string]int, inline map[string]*inlineTable) string {
	var b strings.Builder
	node := tree
	for i, part := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(keyPart(part))
		last := i == len(k)-1
		var v any
		if node != nil {
			v = node[part]
		}
		node = nil
		switch v := v.(type) {
		case map[string]any:
			node = v
		case []map[string]any: // [[part]] tables
			at := b.String()
			if last {
				tables[at]++
			}
			n := max(tables[at]-1, 0)
			b.WriteString(index(n))
			if n < len(v) {
				node = v[n]
			}
		case []any: // an array, maybe of inline tables
			if last {
				break
			}
			at := b.String()
			cur := inline[at]
			if cur == nil {
				cur = &inlineTable{seen: make(map[string]bool)}
				inline[at] = cur
			}
			if child := k[i+1]; i+1 == len(k)-1 {
				has := func(n int) bool {
					t, _ := v[n].(map[string]any)
					_, ok := t[child]
					return ok
				}
				if cur.seen[child] || cur.n < len(v) && !has(cur.n) {
					for cur.n++; cur.n < len(v) && !has(cur.n); cur.n++ {
					}
					clear(cur.seen)
				}
				cur.seen[child] = true
			}
			b.WriteString(index(cur.n))
			if cur.n < len(v) {
				node, _ = v[cur.n].(map[string]any)
			}
		}
	}
	return b.String()
}

// index formats an array index, [n], never negative.
func index(n int) string { return "[" + strconv.Itoa(max(n, 0)) + "]" }

// keyPart returns one part of a key path, quoted unless it is a bare key.
func keyPart(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return strconv.Quote(s)
		}
	}
	return s
}

// keyAt returns where, in line, the first definition of the key name
// ends, or -1. A definition is "name =", after a dot (dotted keys), "{" or
// "," (inline tables), or the last part of a [table] or [[array]] header;
// bare or quoted.
func keyAt(line, name string) int {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' || name == "" {
		return -1
	}
	for _, form := range []string{name, `"` + name + `"`, "'" + name + "'"} {
		for i := 0; i < len(line); {
			j := strings.Index(line[i:], form)
			if j < 0 {
				break
			}
			j += i
			before := strings.TrimRight(line[:j], " \t")
			after := strings.TrimLeft(line[j+len(form):], " \t")
			if (before == "" || strings.ContainsAny(before[len(before)-1:], ".{,[")) &&
				(strings.HasPrefix(after, "=") || strings.HasPrefix(after, "]")) {
				return j + len(form)
			}
			i = j + 1
		}
	}
	return -1
}

// line returns the line of a key path, or of the array holding it for an
// array element (folder[0].include[2]); 0 if unknown.
func (p *positions) line(path string) int {
	if p == nil {
		return 0
	}
	if l, ok := p.lines[path]; ok {
		return l
	}
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i > 0 {
			return p.lines[path[:i]]
		}
	}
	return 0
}

// order returns the line of a key path or of its nearest enclosing key
// with a known line, to sort problems in file order; past the end if none.
func (p *positions) order(path string) int {
	if p == nil {
		return math.MaxInt
	}
	for path != "" {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return math.MaxInt
}
