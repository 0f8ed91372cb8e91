package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
)

// reportCmd is `mlwatch report --config F --since 30d`: alert quality per
// detector and class from the notified incidents and what people did
// about them in Slack (acks, false positives, expected).
func reportCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("report", c)
	since := f.duration("since", 30*24*time.Hour, 0, "how far back, e.g. 7d, 30d")
	format := f.format("(one detector and class per line)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	cfg, _, db, code := c.setup(ctx, f)
	if code != 0 {
		return code
	}
	defer db.Close()
	to := time.Now().UTC().Truncate(time.Second)
	from := to.Add(-*since)
	rows, err := QualityReport(ctx, db, cfg, from, to)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch report: %v\n", err)
		return 1
	}
	if *format == "json" {
		return exitCode(jsonLines(c, "report", rows))
	}
	fmt.Fprintf(c.stdout, "alert quality %s .. %s\n\n", from.Format(time.RFC3339), to.Format(time.RFC3339))
	PrintQuality(c.stdout, rows, true)
	return 0
}

// QualityReport reads the incidents notified in [from, to) and the triage
// actions on them, and computes alert quality.
func QualityReport(ctx context.Context, db store.Store, cfg *configs.Config, from, to time.Time) ([]alerts.QualityRow, error) {
	t, err := applyTables(ctx, db, cfg)
	if err != nil {
		return nil, err
	}
	return monitor.ComputeQuality(ctx, db, t, cfg.Path, from, to)
}

// PrintQuality prints quality rows as a table; feedback false leaves out
// the columns only triage can fill (a backtest's).
func PrintQuality(w io.Writer, rows []alerts.QualityRow, feedback bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if feedback {
		fmt.Fprintln(tw, "DETECTOR\tCLASS\tALERTS\tPAGES\tACKED\tACK p50\tACK p90\tFALSE POS\tEXPECTED\tPAGES/WEEK")
	} else {
		fmt.Fprintln(tw, "DETECTOR\tCLASS\tALERTS\tPAGES\tPAGES/WEEK")
	}
	var flags []string
	for _, r := range rows {
		if feedback {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Detector, r.Class, r.Alerts, r.Pages, pct(r.AckedShare),
				dur(r.AckMedian), dur(r.AckP90), pct(r.FPShare), pct(r.ExpectedShare), num2(r.PagesPerWeek))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.Detector, r.Class, r.Alerts, r.Pages, num2(r.PagesPerWeek))
		}
		if r.Flag != "" {
			flags = append(flags, r.Detector+": "+r.Flag)
		}
	}
	tw.Flush()
	for _, f := range flags {
		fmt.Fprintf(w, "\n! %s\n", f)
	}
}

func pct(n alerts.Number) string {
	if math.IsNaN(float64(n)) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(n))
}

func dur(n alerts.Number) string {
	if math.IsNaN(float64(n)) {
		return "-"
	}
	return (time.Duration(float64(n)) * time.Second).Round(time.Second).String()
}

func num2(n alerts.Number) string {
	if math.IsNaN(float64(n)) {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(n))
}
