package detectors_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// perfConfig is a model with a labels table and a performance detector:
// one-day windows against the two days before, judged 30 days later.
func perfConfig(t *testing.T, database, labels string) *configs.Config {
	t.Helper()
	return labeledConfig(t, "perf.yaml", database, labels, "country", "", `detectors:
  - name: perf
    kind: performance
    model: fraud
    window: 1d
    baseline: {mode: previous, span: 2d}
    min_samples: 100`)
}

// TestPerformance generates five days at a low rate: three quiet, a day
// on which production goes blind to most fraud (model_blind: the shadow
// does not), and a day whose labels never arrive (labels_stop); each day
// is evaluated a maturity (30d) after its end.
func TestPerformance(t *testing.T) {
	day0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	maturity := 30 * day
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := perfConfig(t, e.Database, "labels")
			m := &cfg.Models[0]
			applyLabeled(t, e, "labels", "no_labels")
			blind, err := traffic.ParseIncident("model_blind:+3d:+4d", day0)
			if err != nil {
				t.Fatal(err)
			}
			stop, err := traffic.ParseIncident("labels_stop:+4d:+200d", day0)
			if err != nil {
				t.Fatal(err)
			}
			ins := []traffic.Incident{blind}
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: m, From: day0, To: day0.Add(5 * day), Rate: 20, Seed: 5, Incidents: ins, Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			// The labels of the last day never arrive; the days before
			// keep theirs.
			if err := traffic.GenerateLabels(ctx, e.DB, traffic.LabelOptions{Model: m, From: day0, To: day0.Add(4 * day), Incidents: ins}); err != nil {
				t.Fatal(err)
			}
			if err := traffic.GenerateLabels(ctx, e.DB, traffic.LabelOptions{Model: m, From: day0.Add(4 * day), To: day0.Add(5 * day), Incidents: []traffic.Incident{stop}}); err != nil {
				t.Fatal(err)
			}
			d, err := detectors.New(cfg, &cfg.Detectors[0])
			if err != nil {
				t.Fatal(err)
			}
			queries := countQueries(t, e, "ANY LEFT JOIN")
			eval := func(at time.Time) *detectors.Result {
				t.Helper()
				queries.take()
				res, err := d.Evaluate(ctx, e.DB, at)
				if err != nil {
					t.Fatalf("%v\n%s", err, res.Query)
				}
				if n := queries.take(); n != 1 {
					t.Errorf("at %s: %d queries, want one pushed-down aggregation", at.Format(time.RFC3339), n)
				}
				for _, f := range res.Findings {
					t.Logf("%s at %s: %s %s %s", e.Name, at.Format("01-02"), f.Class, f.Metric, f.Summary)
				}
				return res
			}
			has := func(res *detectors.Result, metric string, class detectors.Class) bool {
				for _, f := range res.Findings {
					if f.Metric == metric && f.Class == class && len(f.Slice) == 0 {
						return true
					}
				}
				return false
			}

			t.Run("quiet", func(t *testing.T) {
				res := eval(day0.Add(3*day + maturity))
				if len(res.Findings) != 0 {
					t.Errorf("quiet day: %d findings, want none", len(res.Findings))
				}
				var checked bool
				for _, ev := range res.Evaluations {
					if ev.Metric == detectors.MetricRecall && len(ev.Slice) == 0 {
						checked = true
						if !(ev.Value > 0.05 && ev.Value < 0.6) || !(ev.ShadowValue > 0) {
							t.Errorf("aggregate recall %v (shadow %v): want a plausible figure for both models", ev.Value, ev.ShadowValue)
						}
					}
					if ev.Metric == detectors.MetricLabelCoverage && !(ev.Value > 0.8 && ev.Value < traffic.LabelCoverage+0.01) {
						t.Errorf("label coverage %v, want just under %v", ev.Value, traffic.LabelCoverage)
					}
				}
				if !checked {
					t.Error("aggregate recall was not checked")
				}
			})
			t.Run("production recall drop", func(t *testing.T) {
				res := eval(day0.Add(4*day + maturity))
				for _, ev := range res.Evaluations {
					if len(ev.Slice) == 0 {
						t.Logf("%s %v vs %v shadow %v p=%v n=%d", ev.Metric, ev.Value, ev.Baseline, ev.ShadowValue, ev.PValue, ev.NCurrent)
					}
				}
				if !has(res, detectors.MetricRecall, detectors.ClassModelBehavior) {
					t.Errorf("want an aggregate recall drop as model_behavior, got %d findings", len(res.Findings))
				}
				if has(res, detectors.MetricLabelCoverage, detectors.ClassFeaturePipeline) {
					t.Error("labels arrived: no coverage alert")
				}
			})
			t.Run("labels stop", func(t *testing.T) {
				res := eval(day0.Add(5*day + maturity))
				if !has(res, detectors.MetricLabelCoverage, detectors.ClassFeaturePipeline) {
					t.Errorf("want label coverage collapsing as feature_pipeline, got %d findings", len(res.Findings))
				}
				for _, f := range res.Findings {
					if f.Class == detectors.ClassModelBehavior {
						t.Errorf("no labels, no verdict on the model: %s", f.Summary)
					}
				}
			})
			t.Run("empty labels table", func(t *testing.T) {
				cfg := perfConfig(t, e.Database, "no_labels")
				d, err := detectors.New(cfg, &cfg.Detectors[0])
				if err != nil {
					t.Fatal(err)
				}
				res, err := d.Evaluate(ctx, e.DB, day0.Add(4*day+maturity))
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Findings) != 0 {
					t.Errorf("a model that never had labels: %d findings, want none", len(res.Findings))
				}
			})
			t.Run("missing labels table", func(t *testing.T) {
				cfg := perfConfig(t, e.Database, "missing_labels")
				d, err := detectors.New(cfg, &cfg.Detectors[0])
				if err != nil {
					t.Fatal(err)
				}
				if _, err := d.Evaluate(ctx, e.DB, day0.Add(4*day+maturity)); err == nil || !strings.Contains(err.Error(), "missing_labels") {
					t.Errorf("error %v, want one naming the missing table", err)
				}
			})
		})
	}
}
