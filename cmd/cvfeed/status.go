package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/control"
	"github.com/cvfeed/cvfeed/internal/termsafe"
	"github.com/cvfeed/cvfeed/state"
)

// statusJSON is the contract's status -json document.
type statusJSON struct {
	Sources map[string]state.Counts `json:"sources"`
	Total   state.Counts            `json:"total"`
}

// cmdStatus prints the counts per source and status.
func cmdStatus(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := newAdminCommand("status", stderr)
	asJSON := c.fs.Bool("json", false, "print JSON")
	if code, ok := c.start(args); !ok {
		return code
	}
	return c.withState(false, func(sr control.Reader) int { return printStatus(sr, c.cfg, *asJSON, stdout, stderr) })
}

// printStatus prints the counts of every configured source (and of any
// source still in the state).
func printStatus(sr control.Reader, cfg *config.Config, asJSON bool, stdout, stderr io.Writer) int {
	doc := statusJSON{Sources: map[string]state.Counts{}}
	for _, f := range cfg.Folders {
		doc.Sources[f.Name] = state.Counts{}
	}
	for _, m := range cfg.Mailboxes {
		doc.Sources[m.Name] = state.Counts{}
	}
	counts, err := sr.Counts()
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	for name, c := range counts {
		doc.Sources[name] = c
	}
	for _, c := range doc.Sources {
		doc.Total = doc.Total.Add(c)
	}
	if asJSON {
		return printJSON(doc, stdout, stderr)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tPENDING\tUPLOADED\tFAILED\tDUPLICATE\tPARSED\tPARSE ERRORS\t")
	names := make([]string, 0, len(doc.Sources))
	for n := range doc.Sources {
		names = append(names, n)
	}
	slices.Sort(names)
	row := func(n string, c state.Counts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", termsafe.Escape(n), c.Pending, c.Uploaded, c.Failed, c.Duplicate, c.Parsed, c.ParseError)
	}
	for _, n := range names {
		row(n, doc.Sources[n])
	}
	row("total", doc.Total)
	tw.Flush()
	return exitOK
}

// printJSON prints v as one line of JSON, with the characters a terminal
// may act upon escaped (termsafe.JSON): names come from the shares.
func printJSON(v any, stdout, stderr io.Writer) int {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	if _, err := stdout.Write(append(termsafe.JSON(b), '\n')); err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	return exitOK
}
