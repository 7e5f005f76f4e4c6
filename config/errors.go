package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem found in a config file. Load and Parse return all
// the problems of a file at once, as *Error values joined with
// errors.Join (one per line, in file order).
type Error struct {
	// File is the name of the config file as given to Load or Parse.
	File string
	// Line is the 1-based line of the key, or 0 when it is not known (a
	// missing key, or a problem of the file as a whole).
	Line int
	// Key is the key path with array indices, such as folder[1].settle;
	// empty for TOML syntax errors.
	Key string
	// Err is the problem. It never holds the value of a secret.
	Err error
}

// Error returns "file:line: key: problem", leaving out what is unknown,
// on one line: a newline in the problem (from the TOML decoder, or a path)
// is written \n.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(strings.ReplaceAll(e.Err.Error(), "\n", `\n`))
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error { return e.Err }

// problems collects the errors of one file, so that all of them are
// reported rather than the first.
type problems struct {
	file string
	pos  *positions
	list []*Error
}

// add records a problem with the value of a key present in the file.
func (p *problems) add(key string, err error) {
	p.list = append(p.list, &Error{File: p.file, Line: p.pos.line(key), Key: key, Err: err})
}

// addf is add with fmt.Errorf.
func (p *problems) addf(key, format string, args ...any) {
	p.add(key, fmt.Errorf(format, args...))
}

// missing records a problem with a key absent from the file: no line.
func (p *problems) missing(key, msg string) {
	p.list = append(p.list, &Error{File: p.file, Key: key, Err: errors.New(msg)})
}

// err returns the problems joined, in file order, or nil. A problem with
// no line of its own sorts at the line of its nearest enclosing table.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	order := make(map[*Error]int, len(p.list))
	for _, e := range p.list {
		order[e] = e.Line
		if e.Line == 0 {
			order[e] = p.pos.order(e.Key)
		}
	}
	sort.SliceStable(p.list, func(i, j int) bool { return order[p.list[i]] < order[p.list[j]] })
	errs := make([]error, len(p.list))
	for i, e := range p.list {
		errs[i] = e
	}
	return errors.Join(errs...)
}
