package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/monitor"
)

func evalCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("eval", c)
	atFlag := f.String("at", "", "evaluation time, RFC 3339 (default: now)")
	format := f.String("format", "text", "output: text or json (one alert per line)")
	notify := f.Bool("notify", false, "also send the alerts to their receivers")
	if code, ok := f.parse(args); !ok {
		return code
	}
	at := time.Now().UTC().Truncate(time.Second)
	if *atFlag != "" {
		t, err := time.Parse(time.RFC3339, *atFlag)
		if err != nil {
			fmt.Fprintf(c.stderr, "mlwatch eval: --at %q: want an RFC 3339 time\n", *atFlag)
			return 2
		}
		at = t.UTC()
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(c.stderr, "mlwatch eval: --format %q: want text or json\n", *format)
		return 2
	}
	cfg, log, db, code := c.setup(ctx, f)
	if code != 0 {
		return code
	}
	defer db.Close()
	if err := monitor.CheckColumns(ctx, db, cfg); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch eval: %s: %v\n", cfg.Path, err)
		return 1
	}
	for _, w := range monitor.ModelRowWarnings(ctx, db, cfg, at) {
		fmt.Fprintf(c.stderr, "mlwatch eval: warning: %s\n", w)
	}
	opt := alerts.Options{Config: cfg, Logger: log, OneShot: true, Now: func() time.Time { return at }}
	if !*notify {
		// Without --notify every receiver is a no-op: eval only prints.
		opt.Notifiers = map[string]alerts.Notifier{}
		for _, r := range cfg.Receivers {
			opt.Notifiers[r.Name] = alerts.NotifierFunc(func(context.Context, *alerts.Notification) (string, bool, error) { return "", false, nil })
		}
	}
	mgr, err := alerts.New(opt)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
		return 1
	}
	mon, err := monitor.New(monitor.Options{Config: cfg, Store: db, Alerts: mgr, Logger: log})
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
		return 1
	}
	for _, name := range mon.Names() {
		if _, err := mon.Run(ctx, name, at); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
		}
	}
	if _, err := mgr.Process(ctx, at); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
		return 1
	}
	if *notify {
		st, err := mgr.Deliver(ctx)
		if err != nil {
			fmt.Fprintf(c.stderr, "mlwatch eval: deliver: %v\n", err)
			return 1
		}
		fmt.Fprintf(c.stderr, "mlwatch eval: %d notifications sent, %d to retry, %d failed\n", st.Sent, st.Retried, st.Dead)
	}
	var firing []alerts.View
	for _, v := range mgr.Alerts() {
		if v.State == "firing" {
			firing = append(firing, v)
		}
	}
	sortViews(firing)
	if *format == "json" {
		enc := json.NewEncoder(c.stdout)
		for _, v := range firing {
			if err := enc.Encode(v); err != nil {
				fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
				return 1
			}
		}
		return 0
	}
	printAlerts(c.stdout, firing, at)
	return 0
}

// sortViews orders alerts by owner, then severity (pages first), then
// detector and slice, so output is stable.
func sortViews(vs []alerts.View) {
	rank := map[string]int{"page": 0, "ticket": 1, "info": 2}
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if a.Owner != b.Owner {
			return a.Owner < b.Owner
		}
		if rank[a.Severity] != rank[b.Severity] {
			return rank[a.Severity] < rank[b.Severity]
		}
		if a.Detector != b.Detector {
			return a.Detector < b.Detector
		}
		return a.Summary < b.Summary
	})
}

// printAlerts writes a readable table per owner.
func printAlerts(w io.Writer, vs []alerts.View, at time.Time) {
	fmt.Fprintf(w, "%d alerts at %s\n", len(vs), at.Format(time.RFC3339))
	owner := ""
	var tw *tabwriter.Writer
	for _, v := range vs {
		if v.Owner != owner {
			if tw != nil {
				tw.Flush()
			}
			owner = v.Owner
			fmt.Fprintf(w, "\n== %s ==\n", strings.ToUpper(owner))
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEVERITY\tCLASS\tRECEIVER\tDETECTOR\tSUMMARY\tCAUSED BY")
		}
		cause := v.CausedBy
		if cause == "" {
			cause = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Severity, v.Class, v.Receiver, v.Detector, v.Summary, cause)
	}
	if tw != nil {
		tw.Flush()
	}
}
