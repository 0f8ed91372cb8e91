package detectors

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

const seriesYAML = `
models:
  - name: fraud
    table: %DB%.predictions
    slices: [country, merchant_category]
    features: {layout: arrays, names_column: feature_names, values_column: feature_values}
    shadow: {mode: rows, production_role: production, shadow_role: shadow}
    rollup: {table: %DB%.predictions_1m}
    owners: {product: p, infra: i}
detectors:
  - {name: rate, kind: block_rate, model: fraud, window: 1h, schedule: "*/5 * * * *", baseline: {mode: previous, span: 2h}, min_samples: 100}
  - {name: rate-rollup, kind: block_rate, model: fraud, source: rollup, window: 1h, schedule: "*/5 * * * *", baseline: {mode: previous, span: 2h}, min_samples: 100}
  - {name: rate-seasonal, kind: block_rate, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: seasonal, days: 2}, min_samples: 100}
  - {name: vol, kind: volume, model: fraud, window: 30m, schedule: "*/5 * * * *", baseline: {mode: previous, span: 1h}, min_samples: 100}
  - {name: vol-rollup, kind: volume, model: fraud, source: rollup, window: 30m, schedule: "*/5 * * * *", baseline: {mode: previous, span: 1h}, min_samples: 100}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/p"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/i"}}
`

// seriesData generates 05:00 to 14:00 of two days and to 16:00 of a third:
// FR blocks half its traffic from day 2 12:00 to 13:30 (slice_block), and
// US stops logging from 14:00 to 16:00 (outage). The rows rollup is backfilled over the same range.
func seriesData(t *testing.T, e storetest.Engine, start time.Time) (*configs.Config, map[string]*Detector) {
	t.Helper()
	ctx := context.Background()
	cfg, err := configs.Parse("series.yaml", []byte(strings.ReplaceAll(seriesYAML, "%DB%", e.Database)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
		t.Fatal(err)
	}
	day2 := start.Add(48 * time.Hour)
	fr, _ := traffic.ParseIncident("slice_block:+12h:+13h30m:FR", day2)
	us, _ := traffic.ParseIncident("outage:+14h:+16h:US", day2)
	end := day2.Add(16 * time.Hour)
	// Only the hours the cases read: from 05:00 (the seasonal case's
	// first window, 05:10, on each day; the previous-baseline cases start
	// later) to 14:00 on the baseline days and to the end on day 2. The
	// origin keeps the rows a run over the whole span would insert.
	for d := 0; d < 3; d++ {
		from, to := start.AddDate(0, 0, d).Add(5*time.Hour), start.AddDate(0, 0, d).Add(14*time.Hour)
		if d == 2 {
			to = end
		}
		if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: from, To: to, Rate: 60, Seed: 5, Origin: start, Incidents: []traffic.Incident{fr, us}}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Rollup(&cfg.Models[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, e.DB, r.Database, r.Tables); err != nil {
		t.Fatal(err)
	}
	stmts, err := r.Backfill(day2, end)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Exec(ctx, stmts[0]); err != nil { // the rows rollup only
		t.Fatalf("backfill: %v", err)
	}
	dets := map[string]*Detector{}
	for i := range cfg.Detectors {
		d, err := New(cfg, &cfg.Detectors[i])
		if err != nil {
			t.Fatal(err)
		}
		dets[d.cfg.Name] = d
	}
	return cfg, dets
}

// evaluation finds the evaluation of metric for slice in an evaluation of
// d at `at`; false when the evaluation skipped that slice.
func evaluation(t *testing.T, ctx context.Context, d *Detector, q Querier, at time.Time, metric string, slice map[string]string) (Evaluation, bool) {
	t.Helper()
	res, err := d.Evaluate(ctx, q, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range res.Evaluations {
		if ev.Metric == metric && SliceKey(ev.Slice) == SliceKey(slice) {
			return ev, true
		}
	}
	return Evaluation{}, false
}

func sameFigure(a, b float64) bool {
	if math.IsInf(a, 1) && math.IsInf(b, 1) {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

// A series is what the detector's evaluations would have been: at every
// point it checks, the value, baseline and band equal an Evaluate at that
// time (raw and rollup, previous and seasonal baselines, rates and
// counts), the incident shows as points outside the band, and Onset finds
// its start, on both engines.
func TestSeriesMatchesEvaluations(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	day2 := start.Add(48 * time.Hour)
	fr := map[string]string{"country": "FR"}
	us := map[string]string{"country": "US"}
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel() // the two engines share no data
			_, dets := seriesData(t, e, start)
			cases := []struct {
				det, metric string
				slice       map[string]string
				from, to    time.Time
				step        time.Duration
				incident    [2]time.Time // windows fully inside the incident: outside the band
				quiet       time.Time    // points up to here: inside the band
				onsetAt     time.Time
				onset       [2]time.Time // the onset lies in [a, b]
			}{
				{"rate", MetricBlockRate, fr, day2.Add(9 * time.Hour), day2.Add(13*time.Hour + 30*time.Minute), 5 * time.Minute,
					[2]time.Time{day2.Add(13 * time.Hour), day2.Add(13*time.Hour + 30*time.Minute)}, day2.Add(12 * time.Hour),
					day2.Add(13*time.Hour + 30*time.Minute), [2]time.Time{day2.Add(12*time.Hour + 5*time.Minute), day2.Add(12*time.Hour + 30*time.Minute)}},
				{"rate-rollup", MetricBlockRate, fr, day2.Add(9 * time.Hour), day2.Add(13*time.Hour + 30*time.Minute), 5 * time.Minute,
					[2]time.Time{day2.Add(13 * time.Hour), day2.Add(13*time.Hour + 30*time.Minute)}, day2.Add(12 * time.Hour),
					day2.Add(13*time.Hour + 30*time.Minute), [2]time.Time{day2.Add(12*time.Hour + 5*time.Minute), day2.Add(12*time.Hour + 30*time.Minute)}},
				{"rate-seasonal", MetricBlockRate, fr, day2.Add(6 * time.Hour), day2.Add(13*time.Hour + 30*time.Minute), 10 * time.Minute,
					[2]time.Time{day2.Add(13 * time.Hour), day2.Add(13*time.Hour + 30*time.Minute)}, day2.Add(12 * time.Hour),
					day2.Add(13*time.Hour + 30*time.Minute), [2]time.Time{day2.Add(12*time.Hour + 10*time.Minute), day2.Add(12*time.Hour + 30*time.Minute)}},
				{"vol", MetricVolume, us, day2.Add(11 * time.Hour), day2.Add(16 * time.Hour), 5 * time.Minute,
					[2]time.Time{day2.Add(14*time.Hour + 30*time.Minute), day2.Add(15 * time.Hour)}, day2.Add(14 * time.Hour),
					day2.Add(15 * time.Hour), [2]time.Time{day2.Add(14*time.Hour + 5*time.Minute), day2.Add(14*time.Hour + 20*time.Minute)}},
				{"vol-rollup", MetricVolume, us, day2.Add(11 * time.Hour), day2.Add(16 * time.Hour), 5 * time.Minute,
					[2]time.Time{day2.Add(14*time.Hour + 30*time.Minute), day2.Add(15 * time.Hour)}, day2.Add(14 * time.Hour),
					day2.Add(15 * time.Hour), [2]time.Time{day2.Add(14*time.Hour + 5*time.Minute), day2.Add(14*time.Hour + 20*time.Minute)}},
			}
			for _, c := range cases {
				t.Run(c.det, func(t *testing.T) {
					d := dets[c.det]
					began := time.Now()
					s, err := d.Series(ctx, e.DB, c.metric, c.slice, "", c.from, c.to)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%s %v over %s: %d points every %s, buckets of %s, %d rows read in %s", c.metric, c.slice, c.to.Sub(c.from),
						len(s.Points), s.Step, s.Bucket, s.Stats.RowsRead, time.Since(began).Round(time.Millisecond))
					if s.Step != c.step {
						t.Errorf("step %s, want the schedule's %s", s.Step, c.step)
					}
					if want := int(c.to.Sub(c.from) / c.step); len(s.Points) != want {
						t.Fatalf("%d points, want %d", len(s.Points), want)
					}
					if first, last := s.Points[0].At, s.Points[len(s.Points)-1].At; !first.Equal(c.from.Add(c.step)) || !last.Equal(c.to) {
						t.Errorf("points span %s..%s, want %s..%s", first, last, c.from.Add(c.step), c.to)
					}
					checked, quiet, noisy := 0, 0, 0
					for i, p := range s.Points {
						if !p.At.After(c.quiet) {
							// The band is the effect gate plus two standard
							// deviations, not the test: noise crosses it now
							// and then without firing.
							quiet++
							if p.Outside() {
								noisy++
							}
						}
						if !p.At.Before(c.incident[0]) && !p.At.After(c.incident[1]) && !p.Outside() {
							t.Errorf("incident point %s inside its band: %g in [%g, %g] (n=%g)", p.At, p.Value, p.Low, p.High, p.N)
						}
						if i%6 != 0 {
							continue // an evaluation every half hour is enough to compare
						}
						ev, ok := evaluation(t, ctx, d, e.DB, p.At, c.metric, c.slice)
						if ok != p.HasBand {
							t.Errorf("point %s: band %v, but Evaluate decided %v (skipped: below min_samples)", p.At, p.HasBand, ok)
						}
						if !ok {
							continue
						}
						checked++
						if !sameFigure(p.Value, ev.Value) || !sameFigure(p.Baseline, ev.Baseline) || !sameFigure(p.Low, ev.BaselineLow) || !sameFigure(p.High, ev.BaselineHigh) {
							t.Errorf("point %s: %g base %g [%g, %g]; Evaluate: %g base %g [%g, %g]",
								p.At, p.Value, p.Baseline, p.Low, p.High, ev.Value, ev.Baseline, ev.BaselineLow, ev.BaselineHigh)
						}
						if c.metric == MetricBlockRate && !sameFigure(p.Shadow, ev.ShadowValue) && !math.IsNaN(ev.ShadowValue) {
							t.Errorf("point %s: shadow %g, Evaluate %g", p.At, p.Shadow, ev.ShadowValue)
						}
					}
					t.Logf("%d of %d quiet points outside the band", noisy, quiet)
					if noisy*5 > quiet {
						t.Errorf("%d of %d quiet points outside the band", noisy, quiet)
					}
					if checked < 5 {
						t.Errorf("only %d points compared with Evaluate", checked)
					}
					on, ok := Onset(s.Points, c.onsetAt)
					if !ok || on.Before(c.onset[0]) || on.After(c.onset[1]) {
						t.Errorf("onset %s (found %v), want within %s..%s", on, ok, c.onset[0], c.onset[1])
					}
					if _, ok := Onset(s.Points, c.quiet); ok {
						t.Errorf("an onset before the incident (at %s)", c.quiet)
					}
				})
			}
		})
	}
}

// Bad requests name what is wrong, and metrics that are no sums of
// buckets say so with ErrNoSeries.
func TestSeriesErrors(t *testing.T) {
	cfg, err := configs.Parse("series.yaml", []byte(strings.ReplaceAll(seriesYAML, "%DB%", "db")), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, &cfg.Detectors[0])
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, metric string
		slice        map[string]string
		from, to     time.Time
		want         string
	}{
		{"unknown column", MetricBlockRate, map[string]string{"city": "Paris"}, at.Add(-time.Hour), at, `slice column "city" is not one of detector rate's slices`},
		{"two columns", MetricBlockRate, map[string]string{"country": "FR", "merchant_category": "travel"}, at.Add(-time.Hour), at, "one slice column"},
		{"other bucket", MetricBlockRate, map[string]string{"country": OtherSlice}, at.Add(-time.Hour), at, "tail beyond top_k"},
		{"empty range", MetricBlockRate, nil, at, at, "is not before"},
		{"rate bound", MetricRateBound, nil, at.Add(-time.Hour), at, ErrNoSeries.Error()},
		{"feature of a rate", MetricBlockRate, nil, at.Add(-time.Hour), at, "has no feature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			feature := ""
			if c.name == "feature of a rate" {
				feature = "amount"
			}
			_, err := d.SeriesQuery(c.metric, c.slice, feature, c.from, c.to)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if c.metric == MetricRateBound && !errors.Is(err, ErrNoSeries) {
				t.Errorf("%v is not ErrNoSeries", err)
			}
		})
	}
	// Slice labels map back to the values the query compares.
	for label, want := range map[string]string{"FR": "FR", NullSlice: NullSlice, `"(x)"`: "((x)", `"\"q\""`: `"q"`} {
		if got, err := sliceSQLValue(label); err != nil || got != want {
			t.Errorf("sliceSQLValue(%q) = %q, %v; want %q", label, got, err, want)
		}
	}
}

// Onset walks back over points outside the band, skips points without
// one, and stops at the first point inside.
func TestOnset(t *testing.T) {
	t0 := time.Date(2026, 11, 18, 10, 0, 0, 0, time.UTC)
	pt := func(min int, v float64, band bool) SeriesPoint {
		return SeriesPoint{At: t0.Add(time.Duration(min) * time.Minute), Value: v, Low: 0.1, High: 0.2, HasBand: band}
	}
	nan := math.NaN()
	for _, c := range []struct {
		name   string
		pts    []SeriesPoint
		at     int
		want   int
		wantOK bool
	}{
		{"rise", []SeriesPoint{pt(0, 0.15, true), pt(5, 0.15, true), pt(10, 0.3, true), pt(15, 0.4, true)}, 15, 10, true},
		{"drop", []SeriesPoint{pt(0, 0.15, true), pt(5, 0.05, true), pt(10, 0.0, true)}, 10, 5, true},
		{"gap without band", []SeriesPoint{pt(0, 0.15, true), pt(5, 0.3, true), pt(10, 0.3, false), pt(15, nan, true), pt(20, 0.3, true)}, 20, 5, true},
		{"all outside", []SeriesPoint{pt(0, 0.3, true), pt(5, 0.3, true)}, 5, 0, true},
		{"back inside", []SeriesPoint{pt(0, 0.3, true), pt(5, 0.15, true)}, 5, 0, false},
		{"later points ignored", []SeriesPoint{pt(0, 0.15, true), pt(5, 0.3, true), pt(10, 0.15, true)}, 5, 5, true},
		{"empty", nil, 5, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Onset(c.pts, t0.Add(time.Duration(c.at)*time.Minute))
			if ok != c.wantOK || ok && !got.Equal(t0.Add(time.Duration(c.want)*time.Minute)) {
				t.Errorf("Onset = %s, %v; want +%dm, %v", got, ok, c.want, c.wantOK)
			}
		})
	}
}
