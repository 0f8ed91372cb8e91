package main

import (
	"context"
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
	format := f.format("(one alert per line)")
	notify := f.Bool("notify", false, "also send the alerts to their receivers")
	notifyTimeout := f.Duration("notify-timeout", 60*time.Second, "with --notify: how long to keep retrying (e.g. after a 429's Retry-After) before giving up")
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
	for _, w := range monitor.LabelWarnings(ctx, db, cfg) {
		fmt.Fprintf(c.stderr, "mlwatch eval: warning: %s\n", w)
	}
	split, initiator := monitor.SplitPairWarnings(ctx, db, cfg, at)
	for _, w := range split {
		fmt.Fprintf(c.stderr, "mlwatch eval: warning: %s\n", w)
	}
	if *notifyTimeout <= 0 {
		fmt.Fprintf(c.stderr, "mlwatch eval: --notify-timeout %s: want a positive duration\n", *notifyTimeout)
		return 2
	}
	// The manager's clock starts at --at and runs with the wall clock, so
	// that retry backoffs and Retry-After waits come due.
	start := time.Now()
	clock := func() time.Time { return at.Add(time.Since(start)) }
	opt := alerts.Options{Config: cfg, Logger: log, OneShot: true, Now: clock}
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
	if err := applyPartials(ctx, db, cfg); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
		return 1
	}
	// Onsets: each alert is dated from the log (JSON "onset"), as the
	// daemon dates the alerts of its first run.
	mon, err := monitor.New(monitor.Options{Config: cfg, Store: db, Alerts: mgr, Onsets: mgr, Logger: log})
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
		return 1
	}
	mon.PairOnInitiator(initiator)
	names := mon.Names()
	var failed []string
	for _, name := range names {
		if _, err := mon.Run(ctx, name, at); err != nil {
			failed = append(failed, name)
			fmt.Fprintf(c.stderr, "mlwatch eval: detector %s failed: %v\n", name, err)
		}
	}
	if len(names) > 0 && len(failed) == len(names) {
		// Nothing was evaluated: "no alerts" would be a lie.
		fmt.Fprintf(c.stderr, "mlwatch eval: every detector failed (%s): nothing was evaluated\n", strings.Join(failed, ", "))
		return 1
	}
	if _, err := mgr.Process(ctx, at); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch eval: %v\n", err)
		return 1
	}
	exit := 0
	if *notify && !deliverAll(ctx, c, mgr, clock, *notifyTimeout) {
		exit = 1
	}
	defer func() {
		if len(failed) > 0 {
			fmt.Fprintf(c.stderr, "mlwatch eval: %d of %d detectors failed: %s (their alerts are missing above)\n", len(failed), len(names), strings.Join(failed, ", "))
		}
	}()
	if len(failed) > 0 {
		exit = 1
	}
	var firing []alerts.View
	for _, v := range mgr.Alerts() {
		if v.State == "firing" {
			firing = append(firing, v)
		}
	}
	sortViews(firing)
	if *format == "json" {
		if !jsonLines(c, "eval", firing) {
			return 1
		}
		return exit
	}
	printAlerts(c.stdout, firing, at)
	return exit
}

// deliverAll sends the outbox of a one-shot run: it retries what may
// still succeed (waiting out backoffs and short Retry-After answers) until
// everything is delivered or the timeout, and names on stderr every
// notification that was not delivered. It reports whether all were.
func deliverAll(ctx context.Context, c *cli, mgr *alerts.Manager, now func() time.Time, timeout time.Duration) bool {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var total alerts.DeliverStats
	for {
		st, _ := mgr.Deliver(dctx)
		total.Sent += st.Sent
		total.Retried += st.Retried
		total.Dead += st.Dead
		total.Fallback += st.Fallback
		pending := mgr.Notifications(alerts.NotificationPending)
		if len(pending) == 0 || dctx.Err() != nil {
			break
		}
		var next time.Time
		for _, n := range pending {
			if n.NextAttemptAt != nil && (next.IsZero() || n.NextAttemptAt.Before(next)) {
				next = *n.NextAttemptAt
			}
		}
		wait := next.Sub(now())
		if dl, _ := dctx.Deadline(); next.IsZero() || time.Until(dl) < wait {
			break // the next try would come after the deadline
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-dctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	fmt.Fprintf(c.stderr, "mlwatch eval: %d notifications sent, %d retries, %d dead (%d handed to a fallback receiver)\n",
		total.Sent, total.Retried, total.Dead, total.Fallback)
	ok := true
	for _, n := range mgr.Notifications("") {
		if n.State == alerts.NotificationSent {
			continue
		}
		ok = false
		why := n.LastError
		if why == "" {
			why = "not tried before --notify-timeout"
		}
		fmt.Fprintf(c.stderr, "mlwatch eval: not delivered (%s): %s notification %s to %s [%s]: %s\n",
			n.State, n.Kind, n.ID, n.Receiver, strings.Join(n.Alerts, "; "), why)
	}
	return ok
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

// sinceText is when an alert's incident began according to the log (its
// onset), as "since 14:02 UTC (58m)", with the date when it is not at's
// day; "-" when the log gave no onset (the alert became active at `at`
// in this one-shot run, which says nothing of when the incident began).
func sinceText(onset *time.Time, at time.Time) string {
	if onset == nil || onset.IsZero() {
		return "-"
	}
	on, at := onset.UTC(), at.UTC()
	layout := "15:04"
	if y, m, d := on.Date(); y != at.Year() || m != at.Month() || d != at.Day() {
		layout = "Jan 2 15:04"
		if y != at.Year() {
			layout = "2006-01-02 15:04"
		}
	}
	return fmt.Sprintf("since %s UTC (%s)", on.Format(layout), alerts.FormatSpan(at.Sub(on)))
}

// printAlerts writes a readable table per owner: each alert's severity,
// class, receiver, detector, since when (its onset in the log), summary
// and cause.
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
			fmt.Fprintln(tw, "SEVERITY\tCLASS\tRECEIVER\tDETECTOR\tONSET\tSUMMARY\tCAUSED BY")
		}
		cause := v.CausedBy
		if cause == "" {
			cause = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Severity, v.Class, v.Receiver, v.Detector, sinceText(v.Onset, at), v.Summary, cause)
	}
	if tw != nil {
		tw.Flush()
	}
}
