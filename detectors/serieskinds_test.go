package detectors

import (
	"context"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

const kindsSeriesYAML = `
models:
  - name: fraud
    table: %DB%.predictions
    slices: [country]
    features: {layout: arrays, names_column: feature_names, values_column: feature_values}
    shadow: {mode: rows, production_role: production, shadow_role: shadow}
    labels: {table: %DB%.labels, maturity: 1d}
    owners: {product: p, infra: i}
detectors:
  - {name: fh, kind: feature_health, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 100,
     feature_health: {features: [device_age_days, ip_risk_score], drift: false}}
  - {name: fd, kind: feature_health, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 100,
     feature_health: {features: [ip_risk_score], null_rate_max: 0.99, psi_warn: 0.05, psi_alert: 0.1}}
  - {name: sh, kind: shadow, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 100,
     shadow: {min_correlation: 0.5}}
  - {name: gold, kind: expectation, model: fraud, window: 1h, schedule: "*/10 * * * *", min_samples: 50,
     expectation: {match: [{column: country, op: eq, value: FR}], max_rate: 0.25}}
  - {name: br, kind: block_rate, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 100,
     block_rate: {score_psi: true, psi_warn: 0.02, psi_alert: 0.05}}
  - {name: perf, kind: performance, model: fraud, window: 1h, schedule: "0 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 5}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/p"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/i"}}
`

// kindsSeriesData generates 30 hours: from +26h to +28h device_age_days
// goes NULL in most rows, ip_risk_score is filled with its default 0, the
// shadow flips a fifth of its decisions and FR blocks half its traffic
// (the golden FR rows above max_rate); production goes blind to fraud
// from +2h to +5h, which the performance detector (maturity 1d) sees a
// day later (its series reach past the data: their windows end a day
// before each point). Labels of every prediction are written.
func kindsSeriesData(t *testing.T, e storetest.Engine, start time.Time) map[string]*Detector {
	t.Helper()
	ctx := context.Background()
	cfg, err := configs.Parse("kinds.yaml", []byte(strings.ReplaceAll(kindsSeriesYAML, "%DB%", e.Database)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions"), store.LabelsDef("labels", "request_id", "label", "labeled_at")}); err != nil {
		t.Fatal(err)
	}
	var ins []traffic.Incident
	for _, s := range []string{"null_spike:+26h:+28h:device_age_days", "default_fill:+26h:+28h:ip_risk_score", "shadow_divergence:+26h:+28h:0.2",
		"slice_block:+26h:+28h:FR", "model_blind:+2h:+5h"} {
		in, err := traffic.ParseIncident(s, start)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	m := &cfg.Models[0]
	if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: m, From: start, To: start.Add(30 * time.Hour), Rate: 40, Seed: 7, Incidents: ins, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	if err := traffic.GenerateLabels(ctx, e.DB, traffic.LabelOptions{Model: m, From: start, To: start.Add(30 * time.Hour), Incidents: ins}); err != nil {
		t.Fatal(err)
	}
	dets := map[string]*Detector{}
	for i := range cfg.Detectors {
		d, err := New(cfg, &cfg.Detectors[i])
		if err != nil {
			t.Fatal(err)
		}
		dets[d.cfg.Name] = d
	}
	return dets
}

// The series of feature_health, shadow, expectation and performance
// metrics (and block_rate's score PSI, which draws the block rate) are
// what the detectors' evaluations would have been: at every sixth point
// with a band the figures equal an Evaluate at that time; the points span
// the range; the incident's windows lie outside the band, on both engines.
func TestSeriesOfEveryKind(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	h := func(x float64) time.Time { return start.Add(time.Duration(x * float64(time.Hour))) }
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel() // the two engines share no data
			dets := kindsSeriesData(t, e, start)
			evals := evaluations{} // the cases of one detector share its evaluations
			cases := []struct {
				det, metric, feature string
				slice                map[string]string
				from, to             time.Time
				incident             [2]time.Time // points here lie outside the band (zero: not asserted)
				shadow               bool         // the points carry a second line
			}{
				{"fh", MetricNullRate, "device_age_days", nil, h(20), h(28), [2]time.Time{h(27), h(28)}, false},
				{"fh", MetricAllNull, "device_age_days", nil, h(20), h(28), [2]time.Time{h(27), h(28)}, false},
				{"fh", MetricFillRate, "ip_risk_score", nil, h(20), h(28), [2]time.Time{h(27), h(28)}, false},
				{"fd", MetricFeaturePSI, "ip_risk_score", nil, h(20), h(28), [2]time.Time{h(27), h(28)}, false},
				{"sh", MetricProdBlocks, "", nil, h(20), h(28), [2]time.Time{h(27), h(28)}, true},
				{"sh", MetricShadowBlocks, "", nil, h(20), h(28), [2]time.Time{h(27), h(28)}, true},
				{"sh", MetricCorrelation, "", nil, h(20), h(28), [2]time.Time{}, false},
				{"gold", MetricExpected, "", nil, h(20), h(28), [2]time.Time{h(27), h(28)}, false},
				{"br", MetricScorePSI, "", nil, h(20), h(28), [2]time.Time{}, true},
				{"perf", MetricRecall, "", nil, h(28), h(40), [2]time.Time{}, true},
				{"perf", MetricFalsePositive, "", nil, h(28), h(40), [2]time.Time{}, true},
				{"perf", MetricLabelCoverage, "", nil, h(28), h(40), [2]time.Time{}, false},
			}
			for _, c := range cases {
				t.Run(c.det+"/"+c.metric, func(t *testing.T) {
					d := dets[c.det]
					began := time.Now()
					s, err := d.Series(ctx, e.DB, c.metric, c.slice, c.feature, c.from, c.to)
					if err != nil {
						t.Fatalf("%v\n%s", err, s.Query)
					}
					t.Logf("%s over %s: %d points every %s, buckets of %s, %d rows read in %s", c.metric, c.to.Sub(c.from),
						len(s.Points), s.Step, s.Bucket, s.Stats.RowsRead, time.Since(began).Round(time.Millisecond))
					if want := int(c.to.Sub(c.from) / s.Step); len(s.Points) != want || want < 2 {
						t.Fatalf("%d points, want %d", len(s.Points), want)
					}
					if first, last := s.Points[0].At, s.Points[len(s.Points)-1].At; !first.Equal(c.from.Add(s.Step)) || !last.Equal(c.to) {
						t.Errorf("points span %s..%s, want %s..%s", first, last, c.from.Add(s.Step), c.to)
					}
					compareWithEvaluate(t, ctx, d, e.DB, evals, s, c.metric, c.feature)
					if c.metric == MetricScorePSI {
						shadowOnlyDrift(t, s, h(26.75), h(27.25))
					}
					banded, shadows := 0, 0
					for _, p := range s.Points {
						if p.HasBand {
							banded++
						}
						if p.HasShadowVal {
							shadows++
						}
						if !c.incident[0].IsZero() && !p.At.Before(c.incident[0]) && !p.At.After(c.incident[1]) && !p.Outside() {
							t.Errorf("incident point %s inside its band: %g in [%g, %g] (n=%g)", p.At, p.Value, p.Low, p.High, p.N)
						}
					}
					if banded*2 < len(s.Points) {
						t.Errorf("%d of %d points have a band", banded, len(s.Points))
					}
					if c.shadow && shadows*2 < len(s.Points) {
						t.Errorf("%d of %d points have a second line", shadows, len(s.Points))
					}
				})
			}
			// The score PSI alert draws its own figure and dates its onset.
			if got := SeriesShows(configs.KindBlockRate, MetricScorePSI); got != MetricScorePSI || !dets["br"].HasOnsetSeries(MetricScorePSI) {
				t.Errorf("SeriesShows(block_rate, score_psi) = %q", got)
			}
			if SeriesShows(configs.KindFeatureHealth, MetricFeaturePSI) != MetricFeaturePSI || dets["fh"].HasOnsetSeries(MetricAllNull) || !dets["fh"].HasOnsetSeries(MetricNullRate) {
				t.Error("feature_psi has no series of its own, or all_null dates onsets from the null rate")
			}
		})
	}
}

// shadowOnlyDrift checks the score PSI series through the shadow's
// divergence: the shadow's scores drift (its PSI, the second line, above
// 0.1) while production's stay inside their band.
func shadowOnlyDrift(t *testing.T, s *Series, from, to time.Time) {
	t.Helper()
	seen := 0
	for _, p := range s.Points {
		if p.At.Before(from) || p.At.After(to) {
			continue
		}
		seen++
		if !p.HasBand || p.Outside() || !p.HasShadowVal || p.Shadow < 0.1 {
			t.Errorf("point %s: production PSI %g in [%g, %g] (band %v), shadow PSI %g: want production inside, shadow above 0.1",
				p.At, p.Value, p.Low, p.High, p.HasBand, p.Shadow)
		}
	}
	if seen < 3 {
		t.Errorf("%d points between %s and %s", seen, from, to)
	}
}

// evaluations keeps each Evaluate of a detector at a time, for the other
// metrics of the same detector at the same points.
type evaluations map[string]*Result

func (m evaluations) at(ctx context.Context, d *Detector, q Querier, at time.Time) (*Result, error) {
	key := d.cfg.Name + "@" + at.Format(time.RFC3339)
	if r, ok := m[key]; ok {
		return r, nil
	}
	r, err := d.Evaluate(ctx, q, at)
	if err == nil {
		m[key] = r
	}
	return r, err
}

// compareWithEvaluate checks every sixth point that has a band against an
// Evaluate of the detector at its time: the same figure, baseline and
// band (the metric's own; expectation has no baseline).
func compareWithEvaluate(t *testing.T, ctx context.Context, d *Detector, q Querier, evals evaluations, s *Series, metric, feature string) {
	t.Helper()
	checked := 0
	for i, p := range s.Points {
		if i%6 != 0 && i != len(s.Points)-1 || !p.HasBand {
			continue
		}
		res, err := evals.at(ctx, d, q, p.At)
		if err != nil {
			t.Fatal(err)
		}
		var ev *Evaluation
		for j := range res.Evaluations {
			x := &res.Evaluations[j]
			if x.Metric == metric && maps.Equal(x.Slice, s.Slice) && x.Feature == feature {
				ev = x
			}
		}
		if ev == nil {
			if metric != MetricAllNull {
				t.Errorf("point %s has a band, but Evaluate did not evaluate %s", p.At, metric)
			}
			continue
		}
		checked++
		same := sameFigure(p.Value, ev.Value)
		switch metric {
		case MetricExpected, MetricAllNull:
		case MetricCorrelation:
			same = same && sameFigure(p.Baseline, ev.Baseline)
		default:
			same = same && sameFigure(p.Baseline, ev.Baseline) && sameFigure(p.Low, ev.BaselineLow) && sameFigure(p.High, ev.BaselineHigh)
		}
		if p.HasShadowVal && !math.IsNaN(ev.ShadowValue) && !sameFigure(p.Shadow, ev.ShadowValue) {
			same = false
		}
		if !same {
			t.Errorf("point %s: %g base %g [%g, %g] shadow %g; Evaluate: %g base %g [%g, %g] shadow %g",
				p.At, p.Value, p.Baseline, p.Low, p.High, p.Shadow, ev.Value, ev.Baseline, ev.BaselineLow, ev.BaselineHigh, ev.ShadowValue)
		}
	}
	if checked < 2 && metric != MetricAllNull {
		t.Errorf("only %d points compared with Evaluate", checked)
	}
}
