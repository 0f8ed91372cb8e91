package detectors_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// A version_rollout in generated traffic is seen by the version probe on
// both engines: production switched to the new version at the rollout's
// start, ~94% of rows now on it; the shadow did not switch; before the
// rollout the probe sees none.
func TestProbeVersionsFindsRollout(t *testing.T) {
	start := time.Date(2026, 11, 18, 9, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
				t.Fatal(err)
			}
			cfg := exampleConfig(t, e.Database, "")
			in, err := traffic.ParseIncident("version_rollout:+1h32m:+4h:fraud-v8", start)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: start, To: start.Add(3 * time.Hour), Rate: 40, Seed: 5, Incidents: []traffic.Incident{in}}); err != nil {
				t.Fatal(err)
			}
			m := &cfg.Models[0]
			v, err := detectors.ProbeVersions(ctx, e.DB, m, start.Add(2*time.Hour+10*time.Minute), 2*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Rollouts) != 1 {
				t.Fatalf("rollouts %+v, want one", v.Rollouts)
			}
			r := v.Rollouts[0]
			if r.Role != "production" || r.From != traffic.ProductionVersion || r.To != "fraud-v8" {
				t.Errorf("rollout %+v", r)
			}
			if r.At.Before(in.Start) || r.At.After(in.Start.Add(5*time.Minute)) {
				t.Errorf("switch at %s, want within 5 minutes after %s", r.At, in.Start)
			}
			if math.Abs(r.Share-0.94) > 0.03 {
				t.Errorf("share %.3f, want about 0.94", r.Share)
			}
			want := "production switched fraud-2026.09.1 → fraud-v8 at " + r.At.Format("15:04") + " UTC; "
			if !strings.HasPrefix(r.String(), want) || !strings.HasSuffix(r.String(), "% of rows now fraud-v8") {
				t.Errorf("String() = %q", r.String())
			}
			roles := map[string]int{}
			for _, c := range v.Current {
				roles[c.Role]++
				if c.Role == "shadow" && (c.Version != traffic.ShadowVersion || c.Share != 1) {
					t.Errorf("shadow now %+v", c)
				}
			}
			if roles["production"] != 2 || roles["shadow"] != 1 {
				t.Errorf("current versions %+v, want two production and one shadow", v.Current)
			}
			// Before the rollout, and once the probe's span lies after the
			// switch, no rollout.
			for _, p := range []struct{ at, lookback time.Duration }{{90 * time.Minute, 2 * time.Hour}, {3 * time.Hour, time.Hour}} {
				quiet, err := detectors.ProbeVersions(ctx, e.DB, m, start.Add(p.at), p.lookback)
				if err != nil {
					t.Fatal(err)
				}
				if len(quiet.Rollouts) != 0 {
					t.Errorf("at +%s: rollouts %+v, want none", p.at, quiet.Rollouts)
				}
			}
		})
	}
}

func TestMarkRollouts(t *testing.T) {
	w0 := time.Date(2026, 11, 18, 10, 0, 0, 0, time.UTC)
	f := func(model string) detectors.Finding {
		return detectors.Finding{Model: model, Summary: "block rate up", WindowStart: w0, WindowEnd: w0.Add(time.Hour)}
	}
	res := &detectors.Result{Findings: []detectors.Finding{f("fraud"), f("other")}}
	rs := []detectors.Rollout{
		{Model: "fraud", Role: "shadow", From: "s1", To: "s2", At: w0.Add(5 * time.Minute), Share: 1},
		{Model: "fraud", Role: "production", From: "v7", To: "v8", At: w0.Add(2 * time.Minute), Share: 0.94},
		{Model: "fraud", Role: "production", From: "v6", To: "v7", At: w0.Add(-time.Minute), Share: 1},
	}
	if n := detectors.MarkRollouts(res, rs); n != 1 {
		t.Errorf("marked %d findings, want 1", n)
	}
	got := res.Findings[0]
	if got.Rollout == nil || got.Rollout.To != "v8" {
		t.Fatalf("rollout %+v, want the production one inside the window", got.Rollout)
	}
	if want := "block rate up; production switched v7 → v8 at 10:02 UTC; 94% of rows now v8"; got.Summary != want {
		t.Errorf("summary %q, want %q", got.Summary, want)
	}
	if res.Findings[1].Rollout != nil || res.Findings[1].Summary != "block rate up" {
		t.Errorf("another model's finding was marked: %+v", res.Findings[1])
	}
}
