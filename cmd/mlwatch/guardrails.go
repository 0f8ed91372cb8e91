package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/monitor"
)

// Exit codes of `mlwatch guardrails`: 0, 1 and 2 are the verdict (ship,
// a guardrail fails, not enough data); a run that could not judge at all
// exits 3 (bad command line, invalid config, unknown model, no shadow to
// compare) or 4 (ClickHouse unreachable, a query failed). Other commands
// exit 2 on a bad command line; here 2 means "not enough data", so that a
// CI job can tell a typo from an undecided gate.
const (
	exitGuardUsage = 3
	exitGuardError = 4
)

func guardrailsCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("guardrails", c)
	model := f.String("model", "", "the model to judge (models[].name); may be omitted when the config has one model")
	fromFlag := f.String("from", "", "start of the period compared, RFC 3339 (required)")
	toFlag := f.String("to", "", "end of the period, RFC 3339 or +DURATION after --from (required)")
	candidate := f.String("candidate", "", "the candidate: shadow (the model's shadow role; the default)")
	version := f.String("version", "", "the candidate is this model_version (any role) against production's other versions")
	atFlag := f.String("at", "", "read the labels as they had arrived by this time, RFC 3339 (default now): predictions a maturity older count for recall and precision")
	format := f.String("format", "text", "output: text, json or markdown (for a pull request)")
	if code, ok := f.parse(args); !ok {
		if code == 0 { // -h
			return 0
		}
		return exitGuardUsage
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(c.stderr, "mlwatch guardrails: "+format+" (exit %d: nothing was judged)\n", append(a, exitGuardUsage)...)
		return exitGuardUsage
	}
	from, err := time.Parse(time.RFC3339, *fromFlag)
	if err != nil {
		return usage("--from %q: want an RFC 3339 time", *fromFlag)
	}
	var to time.Time
	if strings.HasPrefix(*toFlag, "+") {
		d, err := configs.ParseDuration((*toFlag)[1:])
		if err != nil {
			return usage("--to %q: %v", *toFlag, err)
		}
		to = from.Add(d)
	} else if to, err = time.Parse(time.RFC3339, *toFlag); err != nil {
		return usage("--to %q: want an RFC 3339 time or +DURATION", *toFlag)
	}
	if !to.After(from) {
		return usage("--to %s is not after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	at := time.Now().UTC().Truncate(time.Second)
	if *atFlag != "" {
		if at, err = time.Parse(time.RFC3339, *atFlag); err != nil {
			return usage("--at %q: want an RFC 3339 time", *atFlag)
		}
	}
	if *candidate != "" && *candidate != detectors.CandidateShadow {
		return usage("--candidate %q: want shadow (or name a model_version with --version)", *candidate)
	}
	if *candidate != "" && *version != "" {
		return usage("--candidate and --version are exclusive")
	}
	switch *format {
	case "text", "json", "markdown":
	default:
		return usage("--format %q: want text, json or markdown", *format)
	}
	log, err := c.logger(*f.logLevel)
	if err != nil {
		return usage("%v", err)
	}
	cfg, err := configs.Load(*f.config, c.env)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		fmt.Fprintf(c.stderr, "mlwatch guardrails: invalid config (exit %d: nothing was judged)\n", exitGuardUsage)
		return exitGuardUsage
	}
	m, err := pickModel(cfg, *model)
	if err != nil {
		return usage("%v", err)
	}
	o := detectors.GuardrailOptions{Model: m, Limits: m.Guardrails, From: from.UTC(), To: to.UTC(), At: at.UTC(), Candidate: *version}
	if _, err := detectors.GuardrailQuery(o); err != nil {
		return usage("%v", err)
	}
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch guardrails: %v (exit %d)\n", err, exitGuardError)
		return exitGuardError
	}
	defer db.Close()
	if err := monitor.CheckColumns(ctx, db, cfg); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch guardrails: %s: %v (exit %d)\n", cfg.Path, err, exitGuardUsage)
		return exitGuardUsage
	}
	r, err := detectors.RunGuardrails(ctx, db, o)
	if err != nil && detectors.LabelsMissing(err, m) {
		fmt.Fprintf(c.stderr, "mlwatch guardrails: warning: labels table %s of model %s is missing: deciding on block rates alone\n", m.LabelsTable(), m.Name)
		o.NoLabels = true
		r, err = detectors.RunGuardrails(ctx, db, o)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch guardrails: %v (exit %d)\n", err, exitGuardError)
		return exitGuardError
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch guardrails: %v\n", err)
			return exitGuardError
		}
	case "markdown":
		printGuardMarkdown(c.stdout, r)
	default:
		printGuardText(c.stdout, r)
	}
	return r.ExitCode
}

// pickModel finds --model, or the config's only model.
func pickModel(cfg *configs.Config, name string) (*configs.Model, error) {
	names := make([]string, len(cfg.Models))
	for i := range cfg.Models {
		names[i] = cfg.Models[i].Name
		if cfg.Models[i].Name == name {
			return &cfg.Models[i], nil
		}
	}
	if name == "" && len(cfg.Models) == 1 {
		return &cfg.Models[0], nil
	}
	if name == "" {
		return nil, fmt.Errorf("--model is required: %s has models %s", cfg.Path, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("--model %q: %s has no such model (models: %s)", name, cfg.Path, strings.Join(names, ", "))
}

var verdictText = map[string]string{
	detectors.VerdictShip:          "SHIP: every guardrail holds",
	detectors.VerdictFail:          "FAIL: a guardrail fails",
	detectors.VerdictNotEnoughData: "NOT ENOUGH DATA to decide",
}

// printGuardText writes the report for people: the verdict, what failed
// or is missing, then a table of the checks that decided (failures
// first) and a count of the skipped ones.
func printGuardText(w io.Writer, r *detectors.GuardrailReport) {
	fmt.Fprintf(w, "guardrails %s: candidate %s vs production, %s .. %s (labels read at %s)\n", r.Model, r.Candidate,
		r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.At.Format(time.RFC3339))
	fmt.Fprintf(w, "%s (exit %d)\n", verdictText[r.Verdict], r.ExitCode)
	fmt.Fprintf(w, "labels: %s\n", r.Labels)
	for _, f := range r.Failed {
		fmt.Fprintf(w, "  FAIL %s\n", f)
	}
	for _, m := range r.Missing {
		fmt.Fprintf(w, "  MISSING %s\n", m)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tSLICE\tMETRIC\tPRODUCTION\tCANDIDATE\tDIFF (PTS)\tCI (PTS)\tLIMIT\tN PROD\tN CAND")
	checks, skipped := decidingChecks(r)
	for _, c := range checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", c.Status, c.SliceLabel(), c.Metric, pctOf(c.Production), pctOf(c.Candidate),
			detectors.SignedPoints(c.Diff), detectors.SignedPoints(c.Low)+" .. "+detectors.SignedPoints(c.High), detectors.SignedPoints(c.Limit), c.NProduction, c.NCandidate)
	}
	tw.Flush()
	if skipped > 0 {
		fmt.Fprintf(w, "\n%d checks skipped for too little data (min_samples %d rows, min_labeled %d labels per model)\n", skipped, r.Limits.MinSamples, r.Limits.MinLabeled)
	}
}

// printGuardMarkdown writes the report as a pull-request comment.
func printGuardMarkdown(w io.Writer, r *detectors.GuardrailReport) {
	icon := map[string]string{detectors.VerdictShip: "✅", detectors.VerdictFail: "❌", detectors.VerdictNotEnoughData: "⚠️"}[r.Verdict]
	fmt.Fprintf(w, "### %s Guardrails for `%s`: %s\n\n", icon, r.Model, verdictText[r.Verdict])
	fmt.Fprintf(w, "Candidate **%s** vs production, %s .. %s (labels read at %s).  \n", r.Candidate,
		r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.At.Format(time.RFC3339))
	fmt.Fprintf(w, "Labels: %s.\n\n", r.Labels)
	for _, f := range r.Failed {
		fmt.Fprintf(w, "- ❌ **%s**\n", f)
	}
	for _, m := range r.Missing {
		fmt.Fprintf(w, "- ⚠️ %s\n", m)
	}
	if len(r.Failed)+len(r.Missing) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "| status | slice | metric | production | candidate | diff (pts) | CI (pts) | limit | n prod | n cand |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
	checks, skipped := decidingChecks(r)
	for _, c := range checks {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s .. %s | %s | %d | %d |\n", c.Status, strings.ReplaceAll(c.SliceLabel(), "|", "\\|"), c.Metric,
			pctOf(c.Production), pctOf(c.Candidate), detectors.SignedPoints(c.Diff), detectors.SignedPoints(c.Low), detectors.SignedPoints(c.High), detectors.SignedPoints(c.Limit), c.NProduction, c.NCandidate)
	}
	fmt.Fprintf(w, "\n%d checks skipped for too little data; limits: block rate may rise at most %s pts, recall may drop at most %s pts; BH at FDR %g, %.0f%% intervals.\n",
		skipped, detectors.SignedPoints(r.Limits.MaxBlockRateRise), detectors.SignedPoints(r.Limits.MaxRecallDrop), r.Limits.FDR, 100*r.Limits.Confidence)
}

// decidingChecks are the checks that decided, failures first and the
// report's order otherwise, and the count of those skipped for too
// little data.
func decidingChecks(r *detectors.GuardrailReport) (checks []detectors.GuardrailCheck, skipped int) {
	var rest []detectors.GuardrailCheck
	for _, c := range r.Checks {
		switch c.Status {
		case detectors.CheckSkipped:
			skipped++
		case detectors.CheckFail:
			checks = append(checks, c)
		default:
			rest = append(rest, c)
		}
	}
	return append(checks, rest...), skipped
}

func pctOf(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f%%", 100*x)
}
