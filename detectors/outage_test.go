package detectors_test

import (
	"context"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// One country's logging stops for the last 45 minutes of the window. The
// example's volume detector reports it for a mid-size country (CH, about
// 580 rows an hour at 600 requests a minute) and for a small one whose
// expected count still supports a decision (PT, about 300), although
// both current windows fall below min_samples: the gate applies to the
// expected count. A country expected below min_samples (NZ at night,
// about 40) is skipped and named unchecked, not alerted. Both engines.
func TestCountryOutageBelowMinSamples(t *testing.T) {
	at := time.Date(2026, 11, 19, 15, 0, 0, 0, time.UTC) // a Thursday
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
				t.Fatal(err)
			}
			cfg := exampleConfig(t, e.Database, "")
			var vol *detectors.Detector
			for i := range cfg.Detectors {
				if cfg.Detectors[i].Name == "fraud-volume" {
					var err error
					if vol, err = detectors.New(cfg, &cfg.Detectors[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
			var ins []traffic.Incident
			for _, c := range []string{"CH", "PT", "NZ"} {
				in, err := traffic.ParseIncident("outage:"+at.Add(-45*time.Minute).Format(time.RFC3339)+":"+at.Format(time.RFC3339)+":"+c, at)
				if err != nil {
					t.Fatal(err)
				}
				ins = append(ins, in)
			}
			// Only the hours the detector reads: the window and the same
			// hour on each of the 7 days before.
			for i, r := range vol.Ranges(at) {
				if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: r[0], To: r[1], Rate: 600, Seed: 31 + uint64(i), Incidents: ins}); err != nil {
					t.Fatal(err)
				}
			}
			res, err := vol.Evaluate(ctx, e.DB, at)
			if err != nil {
				t.Fatal(err)
			}
			byCountry := map[string]detectors.Evaluation{}
			for _, ev := range res.Evaluations {
				byCountry[ev.Slice["country"]] = ev
			}
			for _, c := range []string{"CH", "PT"} {
				ev, ok := byCountry[c]
				if !ok {
					t.Errorf("%s not evaluated", c)
					continue
				}
				t.Logf("%s: %.0f rows vs %.0f expected", c, ev.Value, ev.Baseline)
				if ev.Value >= 200 || ev.Baseline < 200 {
					t.Errorf("%s: %.0f rows vs %.0f expected; the case wants the current window below min_samples 200 and the expected count above", c, ev.Value, ev.Baseline)
				}
			}
			if c := byCountry["CH"]; !(c.Baseline > 450 && c.Baseline < 750) {
				t.Errorf("CH expected %.0f rows, want a mid-size country's ~580", c.Baseline)
			}
			found := map[string]bool{}
			for _, f := range res.Findings {
				if f.Metric == detectors.MetricVolume {
					found[f.Slice["country"]] = true
					if f.Class != detectors.ClassPipelineOutage || f.Severity != configs.SeverityPage {
						t.Errorf("%s: %s %s", f.Summary, f.Class, f.Severity)
					}
					t.Logf("found: %s", f.Summary)
				}
			}
			if !found["CH"] || !found["PT"] || len(found) != 2 {
				t.Errorf("volume findings for %v, want CH and PT only", found)
			}
			if _, ok := byCountry["NZ"]; ok {
				t.Errorf("NZ evaluated (expected %.0f rows, below min_samples)", byCountry["NZ"].Baseline)
			}
			unchecked := false
			for _, u := range res.Unchecked {
				unchecked = unchecked || u.Slice["country"] == "NZ"
			}
			if !unchecked {
				t.Error("NZ is not named unchecked")
			}
		})
	}
}
