package detectors_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// The example's drift detector (block rate against a reference 7 to 28
// days back) finds a slow production-only ramp of one country, 1x to 4x
// over three days, before that country's rate reaches 3x its starting
// level, while the seasonal block-rate detector, whose 7-day baseline
// absorbs the ramp, stays silent on it; and before the ramp it finds
// nothing. On the server only: when it finds the ramp is a property of the
// rows and the detector, and the rows are the same on both engines
// (TestQuietTraffic); the drift detector's reference query runs on the
// embedded engine in TestGenerated (every incident, 56 hours of the quiet
// week). The embedded half cost as much again: 16 days generated on one
// worker.
func TestDriftFindsSlowRamp(t *testing.T) {
	// Data from 13 days before the ramp: the reference (7 to 28 days
	// back) holds at least 3 days in every quiet evaluation.
	d0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	rampStart, rampEnd := d0.Add(13*24*time.Hour), d0.Add(16*24*time.Hour)
	for _, e := range []storetest.Engine{storetest.ServerEngine(t)} {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
				t.Fatal(err)
			}
			cfg := exampleConfig(t, e.Database, "")
			in, err := traffic.ParseIncident("ramp:+13d:+16d:US:4", d0)
			if err != nil {
				t.Fatal(err)
			}
			workers := 1
			if e.Name == "server" {
				workers = 2
			}
			// A day per call: one INSERT of two weeks outlasts the test
			// store's query timeout on a busy machine. Each day its own
			// seed: one seed would draw the same requests every day. Only
			// the days read: the evaluations (rampStart-3d to the finding,
			// which must come before 3x, two thirds into the ramp) read
			// their 12 hours from day 9 noon on and their reference up to
			// 7 days before, day 7 at the latest; day 8 and the ramp's last
			// day are never read.
			for i, day := 0, d0; day.Before(rampEnd); i, day = i+1, day.Add(24*time.Hour) {
				from := day
				switch i {
				case 8, 15:
					continue
				case 9:
					from = day.Add(12 * time.Hour)
				}
				if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: from, To: day.Add(24 * time.Hour), Rate: 90, Seed: 23 + uint64(i), Incidents: []traffic.Incident{in}, Concurrency: workers, Origin: day}); err != nil {
					t.Fatal(err)
				}
			}
			var drift *detectors.Detector
			for i := range cfg.Detectors {
				if cfg.Detectors[i].Name == "fraud-block-rate-drift" {
					if drift, err = detectors.New(cfg, &cfg.Detectors[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
			if drift == nil {
				t.Fatal("the example config has no fraud-block-rate-drift detector")
			}
			if drift.Config().Severity != configs.SeverityTicket {
				t.Errorf("drift severity %q, want ticket", drift.Config().Severity)
			}
			eval := func(at time.Time) *detectors.Result {
				res, err := drift.Evaluate(ctx, e.DB, at)
				if err != nil {
					t.Fatalf("at %s: %v", at, err)
				}
				return res
			}
			// Quiet: the three days before the ramp, every 3 hours.
			for at := rampStart.Add(-3 * 24 * time.Hour); at.Before(rampStart); at = at.Add(3 * time.Hour) {
				for _, f := range eval(at).Findings {
					t.Errorf("quiet %s: %s %s: %s", at.Format(time.RFC3339), f.Class, detectors.SliceKey(f.Slice), f.Summary)
				}
			}
			// The ramp: the first evaluation (hourly) with a US finding.
			var found time.Time
			for at := rampStart.Add(time.Hour); !at.After(rampEnd); at = at.Add(time.Hour) {
				res := eval(at)
				for _, f := range res.Findings {
					if f.Slice["country"] == "US" && f.Metric == detectors.MetricBlockRate {
						if f.Class != detectors.ClassModelBehavior || f.Severity != configs.SeverityTicket {
							t.Errorf("ramp found as %s %s, want a model_behavior ticket: %s", f.Class, f.Severity, f.Summary)
						}
						found = at
						t.Logf("found at %s (%s into the ramp): %s", at.Format(time.RFC3339), at.Sub(rampStart), f.Summary)
					}
				}
				if !found.IsZero() {
					break
				}
			}
			if found.IsZero() {
				t.Fatal("the drift detector never found the US ramp")
			}
			factor := 1 + 3*found.Sub(rampStart).Hours()/rampEnd.Sub(rampStart).Hours()
			fmt.Printf("ramp 1x→4x over 3 days (%s engine): found %s into the ramp, at %.2fx the starting block rate\n", e.Name, found.Sub(rampStart), factor)
			if factor >= 3 {
				t.Errorf("found at %.2fx the starting rate, want before 3x", factor)
			}
			// The seasonal detector at the same time: its baseline holds
			// the ramp's earlier days.
			for i := range cfg.Detectors {
				if cfg.Detectors[i].Name != "fraud-block-rate" {
					continue
				}
				d, err := detectors.New(cfg, &cfg.Detectors[i])
				if err != nil {
					t.Fatal(err)
				}
				res, err := d.Evaluate(ctx, e.DB, found)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range res.Findings {
					t.Logf("seasonal detector at the same time: %s %s: %s", f.Class, detectors.SliceKey(f.Slice), f.Summary)
				}
			}
		})
	}
}
