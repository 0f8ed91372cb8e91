package detectors

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// block_rate's score PSI series is what its evaluations would have been,
// from the raw table and from the rollup (previous and seasonal
// baselines): at every sixth point the PSI, day-to-day excess, band and
// shadow PSI equal an Evaluate at that time, the rollup's points equal
// the raw table's, and FR's blocking incident (its scores pushed up)
// lies outside the band, on both engines.
func TestScorePSISeries(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	day2 := start.Add(48 * time.Hour)
	fr := map[string]string{"country": "FR"}
	from, to := day2.Add(9*time.Hour), day2.Add(13*time.Hour+30*time.Minute)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel() // the two engines share no data
			_, dets := seriesData(t, e, start)
			got := map[string]*Series{}
			for _, c := range []struct {
				det   string
				slice map[string]string
			}{{"rate", fr}, {"rate-rollup", fr}, {"rate-seasonal", fr}, {"rate", nil}} {
				d := dets[c.det]
				s, err := d.Series(ctx, e.DB, MetricScorePSI, c.slice, "", from, to)
				if err != nil {
					t.Fatalf("%s: %v", c.det, err)
				}
				got[c.det+SliceKey(c.slice)] = s
				checked := 0
				for i, p := range s.Points {
					if i%6 != 0 && i != len(s.Points)-1 {
						continue
					}
					ev, ok := evaluation(t, ctx, d, e.DB, p.At, MetricScorePSI, c.slice)
					if ok != p.HasBand {
						t.Errorf("%s %v point %s: band %v, but Evaluate evaluated %v", c.det, c.slice, p.At, p.HasBand, ok)
					}
					if !ok {
						continue
					}
					checked++
					if !sameFigure(p.Value, ev.Value) || !sameFigure(p.Baseline, ev.Baseline) || !sameFigure(p.Low, ev.BaselineLow) || !sameFigure(p.High, ev.BaselineHigh) ||
						p.HasShadowVal != !math.IsNaN(ev.ShadowValue) || p.HasShadowVal && !sameFigure(p.Shadow, ev.ShadowValue) {
						t.Errorf("%s %v point %s: %g base %g [%g, %g] shadow %g; Evaluate: %g base %g [%g, %g] shadow %g", c.det, c.slice,
							p.At, p.Value, p.Baseline, p.Low, p.High, p.Shadow, ev.Value, ev.Baseline, ev.BaselineLow, ev.BaselineHigh, ev.ShadowValue)
					}
				}
				if checked < 5 {
					t.Errorf("%s %v: only %d points compared with Evaluate", c.det, c.slice, checked)
				}
				t.Logf("%s %v: %d points, buckets of %s, %d rows read; last %g in [%g, %g]", c.det, c.slice, len(s.Points), s.Bucket, s.Stats.RowsRead,
					s.Points[len(s.Points)-1].Value, s.Points[len(s.Points)-1].Low, s.Points[len(s.Points)-1].High)
			}
			raw, roll := got["rate"+SliceKey(fr)].Points, got["rate-rollup"+SliceKey(fr)].Points
			for i := range raw {
				if i < len(roll) && (!sameFigure(raw[i].Value, roll[i].Value) || !sameFigure(raw[i].High, roll[i].High)) {
					t.Errorf("point %s: raw %g [%g, %g], rollup %g [%g, %g]", raw[i].At, raw[i].Value, raw[i].Low, raw[i].High, roll[i].Value, roll[i].Low, roll[i].High)
				}
			}
			for _, p := range raw {
				if !p.At.Before(day2.Add(13*time.Hour)) && !p.Outside() {
					t.Errorf("FR incident point %s inside its band: %g in [%g, %g]", p.At, p.Value, p.Low, p.High)
				}
			}
		})
	}
}

// feature_psi has a series from the raw table only: over the features
// rollup it is ErrNoSeries (its chart comes from the evaluations).
func TestFeaturePSISeriesSources(t *testing.T) {
	yaml := strings.Replace(kindsSeriesYAML, "    owners:", "    rollup: {table: db.predictions_1m}\n    owners:", 1)
	yaml = strings.Replace(yaml, "{name: fd, kind: feature_health, model: fraud,", "{name: fd, kind: feature_health, model: fraud, source: rollup, slices: [],", 1)
	cfg, err := configs.Parse("kinds.yaml", []byte(strings.ReplaceAll(yaml, "%DB%", "db")), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	for i := range cfg.Detectors {
		dc := &cfg.Detectors[i]
		if dc.Name != "fd" && dc.Name != "fh" {
			continue
		}
		d, err := New(cfg, dc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.SeriesQuery(MetricFeaturePSI, nil, "ip_risk_score", at.Add(-time.Hour), at)
		if rollup := dc.Name == "fd"; rollup != errors.Is(err, ErrNoSeries) || rollup == d.HasSeries(MetricFeaturePSI) {
			t.Errorf("%s (rollup %v): HasSeries %v, SeriesQuery error %v", dc.Name, rollup, d.HasSeries(MetricFeaturePSI), err)
		}
	}
}
