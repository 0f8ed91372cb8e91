package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"text/tabwriter"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/monitor"
)

func backtestCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("backtest", c)
	fromFlag := f.String("from", "", "start, RFC 3339 (required)")
	toFlag := f.String("to", "", "end, RFC 3339 (required)")
	step := f.duration("step", 0, time.Minute, "evaluate every detector every STEP (e.g. 1h); default: each detector's schedule")
	format := f.format("(one object per line)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	from, err1 := time.Parse(time.RFC3339, *fromFlag)
	to, err2 := time.Parse(time.RFC3339, *toFlag)
	if err1 != nil || err2 != nil {
		fmt.Fprintln(c.stderr, "mlwatch backtest: --from and --to are required RFC 3339 times")
		return 2
	}
	cfg, log, db, code := c.setup(ctx, f)
	if code != 0 {
		return code
	}
	defer db.Close()
	if _, err := applyTables(ctx, db, cfg); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch backtest: %v\n", err)
		return 1
	}
	if err := monitor.CheckColumns(ctx, db, cfg); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch backtest: %s: %v\n", cfg.Path, err)
		return 1
	}
	last := time.Now()
	report, err := monitor.Backtest(ctx, monitor.BacktestOptions{
		Config: cfg, Store: db, Record: db, From: from.UTC(), To: to.UTC(), Step: *step, Logger: log,
		Progress: func(at time.Time, done, total int) {
			if time.Since(last) > 2*time.Second || done == total {
				fmt.Fprintf(c.stderr, "backtest: %s (%d/%d runs)\n", at.Format(time.RFC3339), done, total)
				last = time.Now()
			}
		},
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch backtest: %v\n", err)
		return 1
	}
	if *format == "json" {
		enc := json.NewEncoder(c.stdout)
		for _, n := range report.Notifications {
			b, err := json.Marshal(n)
			if err != nil {
				fmt.Fprintf(c.stderr, "mlwatch backtest: %v\n", err)
				return 1
			}
			fmt.Fprintf(c.stdout, "{\"type\":\"notification\",%s\n", b[1:])
		}
		_ = enc.Encode(map[string]any{"type": "summary", "from": report.From, "to": report.To, "evaluations": report.Evaluations, "detectors": report.Detectors,
			"quality": alerts.Quality(alerts.IncidentsFrom(report.Notifications), nil, alerts.QualityOptions{From: report.From, To: report.To, ConfigPath: cfg.Path})})
		return 0
	}
	printBacktest(c.stdout, report)
	return 0
}

// printBacktest writes what would have been sent, then the per-detector
// alert-fatigue estimate.
func printBacktest(w io.Writer, r *monitor.BacktestReport) {
	fmt.Fprintf(w, "backtest %s .. %s: %d detector runs, %d notifications\n\n", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.Evaluations, len(r.Notifications))
	lines := notificationLines{when: "2006-01-02 15:04", receiver: "%s ", indent: "    ", most: 5, alert: func(a alerts.View) string {
		cause := ""
		if a.CausedBy != "" {
			cause = " (caused by " + a.CausedBy + ")"
		}
		since := ""
		if a.Onset != nil {
			since = " (since " + a.Onset.UTC().Format("2006-01-02 15:04") + " in the log)"
		}
		return fmt.Sprintf("[%s %s/%s] %s%s%s", a.Severity, a.Owner, a.Class, a.Summary, cause, since)
	}}
	for _, n := range r.Notifications {
		lines.print(w, n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DETECTOR\tRUNS\tFAILED\tALERTS\tPAGES\tALERTS/DAY\tPAGES/DAY")
	for _, d := range r.Detectors {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%.2f\n", d.Detector, d.Runs, d.Failed, d.Alerts, d.Pages, d.PerDay, d.PagesDay)
	}
	tw.Flush()
	// The columns of `mlwatch report`, from replayed history (no triage).
	fmt.Fprintln(w)
	PrintQuality(w, alerts.Quality(alerts.IncidentsFrom(r.Notifications), nil, alerts.QualityOptions{From: r.From, To: r.To}), false)

}

// notificationLines is how a command lists notifications: a line for the
// notification (its time in the layout when, the receiver by the verb
// receiver), then the first most alerts a line each (alert, after
// indent), then how many more (followed by more).
type notificationLines struct {
	when, receiver, indent, more string
	most                         int
	alert                        func(alerts.View) string
}

func (l notificationLines) print(w io.Writer, n alerts.Notification) {
	firing, resolved := n.Counts()
	fmt.Fprintf(w, "%s  %-8s -> "+l.receiver+" (%d firing, %d resolved)\n", n.CreatedAt.UTC().Format(l.when), n.Kind, n.Receiver, firing, resolved)
	for i, a := range n.Alerts {
		if i == l.most {
			fmt.Fprintf(w, "%s… and %d more%s\n", l.indent, len(n.Alerts)-l.most, l.more)
			break
		}
		fmt.Fprintln(w, l.indent+l.alert(a))
	}
}
