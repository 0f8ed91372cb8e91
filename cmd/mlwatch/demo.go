package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/traffic"
)

// demoStepTimeout bounds each of the demo's long steps (schema, traffic
// generation): minutes on a busy 2-core machine, seconds on an idle one.
const demoStepTimeout = 15 * time.Minute

// demoMaturity is the labels' maturity in the demo (the example's is 30d).
const demoMaturity = 3 * 24 * time.Hour

// printGuardSummary prints a guardrail report's verdict and its failures.
func printGuardSummary(c *cli, r *detectors.GuardrailReport) {
	fmt.Fprintf(c.stdout, "%s: %s (exit %d) · %s\n", r.Candidate, verdictText[r.Verdict], r.ExitCode, r.Labels)
	for _, f := range r.Failed {
		fmt.Fprintf(c.stdout, "    FAIL %s\n", f)
	}
	for _, m := range r.Missing {
		fmt.Fprintf(c.stdout, "    MISSING %s\n", m)
	}
}

// demoIncident is one of the demo's injected incidents and who should hear of it.
type demoIncident struct {
	spec  string // KIND:START:END:ARG, offsets from the start of history
	owner string
	what  string
}

func demoCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("demo", c)
	data := f.String("data", ".mlwatch/demo", "embedded engine data directory (recreated)")
	listen := f.String("web.listen-address", "127.0.0.1:9107", "status page address")
	rate := f.Float64("rate", 60, "requests per minute of the generated traffic")
	every := f.Duration("step", 2*time.Hour, "replay step: every detector is evaluated this often over the week")
	exit := f.Bool("exit", os.Getenv("DEMO_EXIT") == "1", "exit after printing instead of serving the status page (also DEMO_EXIT=1)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	log, err := c.logger(*f.logLevel)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 2
	}
	cfg, ok := c.load(*f.config)
	if !ok {
		return 1
	}
	// The demo always runs on a fresh embedded engine.
	cfg.ClickHouse.Addr = ""
	cfg.ClickHouse.EmbeddedPath = filepath.Join(*data, "chdb")
	// Its long steps (creating tables, two weeks of traffic) are not
	// bounded by the config's query_timeout (60 s in the example), which a
	// loaded machine exceeded while generating; each has its own deadline.
	// Detector runs keep their run_timeout.
	if cfg.ClickHouse.QueryTimeout.D() < demoStepTimeout {
		cfg.ClickHouse.QueryTimeout = configs.Duration(demoStepTimeout)
	}
	if err := os.RemoveAll(*data); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch demo: %v\n", err)
		return 1
	}
	start := time.Now()
	step := func(format string, a ...any) {
		fmt.Fprintf(c.stdout, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch demo: %v\n", err)
		return 1
	}
	defer db.Close()
	schemaCtx, cancel := context.WithTimeout(ctx, demoStepTimeout)
	defer cancel()
	if _, err := applyTables(schemaCtx, db, cfg); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch demo: schema: %v\n", err)
		return 1
	}
	m := &cfg.Models[0]
	defs := []store.TableDef{store.PredictionsDef(store.ParseTable(m.Table).Name)}
	if l := m.Labels; l != nil && l.Table != "" {
		defs = append(defs, store.LabelsDef(store.ParseTable(m.LabelsTable()).Name, l.Columns.RequestID, l.Columns.Label, l.Columns.LabeledAt))
		// Two weeks of history cannot hold 30-day-old predictions: in the
		// demo labels mature after 3 days, so the performance detector
		// (its windows end a maturity ago) judges the replayed week.
		old := l.Maturity
		l.Maturity = configs.Duration(demoMaturity)
		for i := range cfg.Detectors {
			if d := &cfg.Detectors[i]; d.Model == m.Name && d.Kind == configs.KindPerformance && d.EvalDelay == old {
				d.EvalDelay = l.Maturity
			}
		}
	}
	if err := store.Apply(schemaCtx, db, cfg.ClickHouse.Database, defs); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch demo: schema: %v\n", err)
		return 1
	}

	// Two weeks of traffic: the first is the seasonal baseline of the
	// second, which holds the incidents and is replayed.
	end := time.Now().UTC().Truncate(time.Hour)
	from := end.Add(-14 * 24 * time.Hour)
	week := end.Add(-7 * 24 * time.Hour)
	incidents := []demoIncident{
		{"null_spike:+13d2h:+13d5h:device_age_days", "infra", "feature device_age_days goes mostly NULL for 3 hours"},
		{"world_shift:+13d12h:+14d:BR", "product", "a fraud surge in BR that production and shadow both see"},
		{"slice_block:+13d16h:+14d:FR", "product", "production starts blocking half of FR; shadow does not"},
		{"model_blind:+9d:+10d", "product", "production goes blind to most fraud; its labels show the recall drop once they mature"},
		{"shadow_country_block:+13d:+14d:DE", "the promotion gate", "the shadow candidate blocks most of DE: the guardrails must refuse it"},
	}
	var ins []traffic.Incident
	for _, d := range incidents {
		in, err := traffic.ParseIncident(d.spec, from)
		if err != nil {
			fmt.Fprintf(c.stderr, "mlwatch demo: %v\n", err)
			return 1
		}
		ins = append(ins, in)
	}
	step("generating 14 days of traffic for model %s (%.0f requests/min, production + shadow rows) on the embedded engine", m.Name, *rate)
	genCtx, cancelGen := context.WithTimeout(ctx, demoStepTimeout)
	defer cancelGen()
	gen, err := traffic.Generate(genCtx, db, traffic.Options{Model: m, From: from, To: end, Rate: *rate, Seed: 42, Incidents: ins})
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch demo: %v (the step's deadline is %s)\n", err, demoStepTimeout)
		return 1
	}
	rows, _ := db.Query(ctx, "SELECT count() FROM "+store.ParseTable(m.Table).Quoted())
	n := int64(0)
	if rows != nil && len(rows.Rows) == 1 {
		n = store.Int(rows.Rows[0][0])
	}
	if m.Labels != nil && m.Labels.Table != "" {
		if err := traffic.GenerateLabels(genCtx, db, traffic.LabelOptions{Model: m, From: from, To: end, Incidents: ins}); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch demo: %v\n", err)
			return 1
		}
		step("labels of those requests written to %s (%.0f%% coverage, delays of days to weeks; they mature after %s in the demo)",
			m.LabelsTable(), 100*traffic.LabelCoverage, configs.FormatDuration(demoMaturity))
	}
	step("generated %d rows in %s; incidents:", n, gen.Duration.Round(time.Millisecond))
	for i, in := range ins {
		fmt.Fprintf(c.stdout, "          %-18s %s  (%s)\n", in.Kind+" "+in.Arg, in.Start.Format("Mon 15:04")+"–"+in.End.Format("Mon 15:04"), incidents[i].what)
	}

	step("replaying the last week through every detector and the alert pipeline, every %s (backtest)", *every)
	report, err := monitor.Backtest(ctx, monitor.BacktestOptions{Config: cfg, Store: db, Record: db, From: week, To: end, Step: *every, Logger: log})
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch demo: %v\n", err)
		return 1
	}
	step("%d detector runs, %d notifications", report.Evaluations, len(report.Notifications))
	printDemo(c, report, ins, incidents)
	guards := func() []monitor.GuardrailStatus { return nil }
	if m.Guardrails != nil && m.Shadow.Mode != configs.ShadowNone {
		st := report.Monitor.RunGuardrails(ctx, m.Name, end)
		fmt.Fprintf(c.stdout, "\n== is the shadow safe to ship? (mlwatch guardrails over the last %s) ==\n", st.Period)
		if st.Report != nil {
			printGuardSummary(c, st.Report)
		} else {
			fmt.Fprintf(c.stdout, "guardrails failed: %s\n", st.Error)
		}
		guards = report.Monitor.Guardrails
	}

	if *exit {
		return 0
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch demo: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: monitor.Handler(monitor.ServerOptions{
		Alerts: report.Manager, Silencer: report.Manager, Detectors: report.Monitor.Statuses, Series: report.Monitor.Series, LogSeries: report.Monitor.LogSeries, VersionChanges: report.Monitor.VersionChanges, Models: report.Monitor.Models,
		Guardrails: guards, Ready: func() bool { return true }, Logger: log, Now: func() time.Time { return end },
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Fprintf(c.stdout, "\nstatus page: http://%s/  (Ctrl-C to stop)\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(c.stderr, "mlwatch demo: %v\n", err)
		return 1
	}
	return 0
}

// printDemo prints the routed notifications grouped by owner, then names
// each incident with the alerts it raised and their owners.
func printDemo(c *cli, r *monitor.BacktestReport, ins []traffic.Incident, incidents []demoIncident) {
	w := c.stdout
	byOwner := map[string][]alerts.Notification{}
	for _, n := range r.Notifications {
		owner := "unknown"
		if len(n.Alerts) > 0 {
			owner = n.Alerts[0].Owner
		}
		byOwner[owner] = append(byOwner[owner], n)
	}
	owners := make([]string, 0, len(byOwner))
	for o := range byOwner {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	lines := notificationLines{when: "Mon 15:04", receiver: "%-14s", indent: "      ", most: 3, more: " in the same message", alert: func(a alerts.View) string {
		return fmt.Sprintf("[%s] %s: %s", a.Severity, a.Class, a.Summary)
	}}
	for _, o := range owners {
		fmt.Fprintf(w, "\n== notifications to the %s team ==\n", o)
		for _, n := range byOwner[o] {
			lines.print(w, n)
		}
	}
	fmt.Fprintln(w, "\n== incidents and who was told ==")
	for i, in := range ins {
		var hits []alerts.View
		until := in.End.Add(2 * time.Hour)
		if in.Kind == traffic.ModelBlind {
			// Its labels tell it a maturity and a window later.
			until = until.Add(demoMaturity + 24*time.Hour)
		}
		for _, v := range r.Fired {
			if !v.ActiveAt.Before(in.Start) && v.ActiveAt.Before(until) && matchesIncident(v, in) {
				hits = append(hits, v)
			}
		}
		sort.Slice(hits, func(a, b int) bool { return hits[a].ActiveAt.Before(hits[b].ActiveAt) })
		fmt.Fprintf(w, "%s %s (expected owner: %s)\n", in.Kind, in.Arg, incidents[i].owner)
		if len(hits) == 0 && in.Kind == traffic.ShadowCountryBlock {
			fmt.Fprintln(w, "    no page (a shadow's blocks reach no customer): the guardrail report below refuses it")
			continue
		}
		if len(hits) == 0 {
			fmt.Fprintln(w, "    not detected")
			continue
		}
		for _, v := range hits {
			fmt.Fprintf(w, "    -> %s team (%s, %s) via %s at %s: %s\n", v.Owner, v.Class, v.Severity, v.Receiver, v.ActiveAt.Format("Mon 15:04"), v.Summary)
		}
	}
	fmt.Fprintln(w, "\n== alert fatigue by detector over the week ==")
	for _, d := range r.Detectors {
		fmt.Fprintf(w, "  %-18s %4d runs  %3d alerts  %3d pages  (%.2f pages/day)\n", d.Detector, d.Runs, d.Alerts, d.Pages, d.PagesDay)
	}
}

// matchesIncident says whether an alert is about the incident's slice or feature.
func matchesIncident(v alerts.View, in traffic.Incident) bool {
	switch in.Kind {
	case traffic.SliceBlock, traffic.WorldShift, traffic.ModelBlind, traffic.ShadowCountryBlock:
		return v.Slice["country"] == in.Arg
	case traffic.NullSpike, traffic.DefaultFill:
		return v.Feature == in.Arg
	}
	return strings.Contains(v.Summary, in.Arg)
}
