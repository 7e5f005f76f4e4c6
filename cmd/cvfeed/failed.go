package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cvfeed/cvfeed/control"
	"github.com/cvfeed/cvfeed/internal/termsafe"
	"github.com/cvfeed/cvfeed/state"
)

// cmdFailed lists the failed items with their last error.
func cmdFailed(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := newAdminCommand("failed", stderr)
	asJSON := c.fs.Bool("json", false, "print JSON")
	if code, ok := c.start(args); !ok {
		return code
	}
	return c.withState(false, func(sr control.Reader) int { return printFailed(sr, *asJSON, stdout, stderr) })
}

func printFailed(sr control.Reader, asJSON bool, stdout, stderr io.Writer) int {
	items, err := sr.Failed()
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	if asJSON {
		if items == nil {
			items = []control.FailedItem{}
		}
		return printJSON(items, stdout, stderr)
	}
	if len(items) == 0 {
		fmt.Fprintln(stdout, "no failed items")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tFILE\tATTEMPTS\tFAILED AT\tERROR")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", termsafe.Escape(it.ID), termsafe.Escape(it.Source), termsafe.Escape(it.File),
			it.Attempts, it.Updated.Local().Format(time.DateTime), termsafe.Escape(it.Error))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d failed; fix the cause, then: cvfeed retry ID... (or -all)\n", len(items))
	return exitOK
}

// cmdRetry queues failed items again with a fresh attempt count.
func cmdRetry(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := newAdminCommand("retry", stderr)
	c.args = true
	all := c.fs.Bool("all", false, "queue every failed item again")
	c.fs.Usage = func() {
		fmt.Fprintln(c.fs.Output(), "usage: cvfeed retry [-config PATH] (-all | ID...)\n\nIDs are those cvfeed failed prints (SOURCE_ID/SHA256).")
		c.fs.PrintDefaults()
	}
	if code, ok := c.start(args); !ok {
		return code
	}
	ids, err := control.ParseIDs(c.fs.Args())
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "cvfeed retry:", err)
		return exitUsage
	case *all == (len(ids) > 0):
		fmt.Fprintln(stderr, "cvfeed retry: give either -all or item IDs")
		return exitUsage
	}
	return c.withState(true, func(sr control.Reader) int { return retry(sr, ids, stdout, stderr) })
}

func retry(sr control.Reader, ids []state.Key, stdout, stderr io.Writer) int {
	n, err := sr.RetryFailed(ids) // no ids: all of them
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	where := "by the next cvfeed run or backfill"
	if _, remote := sr.(*control.Client); remote {
		where = "by the running cvfeed"
	}
	fmt.Fprintf(stdout, "%d items queued again; they will be uploaded %s\n", n, where)
	return exitOK
}

// cmdReport prints the activity per source and day, as the Reports view
// of the Riminder dashboard does.
func cmdReport(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := newAdminCommand("report", stderr)
	asJSON := c.fs.Bool("json", false, "print JSON")
	sinceS := c.fs.String("since", "", "only days on or after DATE (YYYY-MM-DD)")
	if code, ok := c.start(args); !ok {
		return code
	}
	var since time.Time
	if *sinceS != "" {
		t, err := time.Parse(time.DateOnly, *sinceS)
		if err != nil {
			fmt.Fprintf(stderr, "cvfeed report: -since %q: want YYYY-MM-DD\n", *sinceS)
			return exitUsage
		}
		since = t
	}
	return c.withState(false, func(sr control.Reader) int { return printReport(sr, since, *asJSON, stdout, stderr) })
}

func printReport(sr control.Reader, since time.Time, asJSON bool, stdout, stderr io.Writer) int {
	rows, err := sr.Report(since)
	if err != nil {
		fmt.Fprintln(stderr, "cvfeed:", safe(err))
		return exitFailed
	}
	if asJSON {
		if rows == nil {
			rows = []state.ReportRow{}
		}
		return printJSON(map[string]any{"rows": rows}, stdout, stderr)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDAY\tSEEN\tUPLOADED\tDUPLICATES\tFAILED\tPARSED\tPARSE ERRORS")
	for _, r := range rows {
		day := r.Day
		if day == "" {
			day = "(earlier)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", termsafe.Escape(r.Source), termsafe.Escape(day), r.Seen, r.Uploaded, r.Duplicates, r.Failed, r.Parsed, r.ParseErrors)
	}
	tw.Flush()
	return exitOK
}

// failedItem is one line of cvfeed failed -json.
type failedItem = control.FailedItem
