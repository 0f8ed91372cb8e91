package monitor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

const rolloutYAML = `
clickhouse: {database: %DB%}
state: {database: %DB%}
models:
  - name: fraud
    table: %DB%.predictions
    slices: [country]
    features: {layout: arrays, names_column: feature_names, values_column: feature_values}
    shadow: {mode: rows, production_role: production, shadow_role: shadow}
    owners: {product: p, infra: i}
detectors:
  - name: rate
    kind: block_rate
    model: fraud
    window: 30m
    baseline: {mode: previous, span: 1h}
    slices: []
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/p"}
  - name: i
    webhook: {url: "http://127.0.0.1:1/i"}
`

// A new production version that blocks 3x as much: the block-rate finding
// of the window that holds the switch carries the rollout and says so,
// and Models lists the model's versions and the rollout, on both engines.
func TestRunMarksRollouts(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 18, 8, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, _ := engineConfig(t, e, "rollout.yaml", rolloutYAML, false)
			in, _ := traffic.ParseIncident("version_rollout:+1h42m:+3h:fraud-v8", start)
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: start, To: start.Add(2*time.Hour + 15*time.Minute), Rate: 300, Seed: 9, Incidents: []traffic.Incident{in}}); err != nil {
				t.Fatal(err)
			}
			mon, err := New(Options{Config: cfg, Store: e.DB})
			if err != nil {
				t.Fatal(err)
			}
			if got := mon.Models(); len(got) != 1 || len(got[0].Current) != 0 {
				t.Errorf("before any run: %+v, want the model with no versions yet", got)
			}
			res, err := mon.Run(ctx, "rate", start.Add(2*time.Hour+10*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			var marked *detectors.Finding
			for i, f := range res.Findings {
				if f.Metric == detectors.MetricBlockRate {
					marked = &res.Findings[i]
				}
			}
			if marked == nil {
				t.Fatalf("no block-rate finding: %+v\n%+v", res.Findings, res.Evaluations)
			}
			if marked.Rollout == nil || marked.Rollout.To != "fraud-v8" || marked.Rollout.Role != "production" {
				t.Fatalf("finding's rollout %+v", marked.Rollout)
			}
			if !strings.Contains(marked.Summary, "production switched fraud-2026.09.1 → fraud-v8 at 09:4") {
				t.Errorf("summary %q lacks the rollout", marked.Summary)
			}
			models := mon.Models()
			if len(models) != 1 || len(models[0].Rollouts) != 1 || len(models[0].Current) != 3 {
				t.Fatalf("models %+v, want one rollout and three current (role, version) pairs", models)
			}
			b, _ := json.Marshal(models)
			for _, want := range []string{`"role":"production","from":"fraud-2026.09.1","to":"fraud-v8"`, `"version":"fraud-2026.11.0-rc1","share":1`} {
				if !strings.Contains(string(b), want) {
					t.Errorf("models JSON lacks %s: %s", want, b)
				}
			}
			// A run an hour before finds no rollout: nothing is marked.
			res, err = mon.Run(ctx, "rate", start.Add(80*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range res.Findings {
				if f.Rollout != nil {
					t.Errorf("finding before the rollout carries one: %s", f.Summary)
				}
			}
		})
	}
}

// /api/v1/models serves the monitor's listing and the alert charts mark
// the model's rollouts.
func TestModelsAPIAndMarkers(t *testing.T) {
	at := now.Add(-3 * time.Hour)
	models := func() []ModelVersions {
		return []ModelVersions{{Model: "fraud", At: now,
			Current:  []detectors.VersionShare{{Role: "production", Version: "v8", Share: 0.94, Rows: 940}},
			Rollouts: []detectors.Rollout{{Model: "fraud", Role: "production", From: "v7", To: "v8", At: at, Share: 0.94}}}}
	}
	srv, _, _ := testServer(t, "")
	code, body := do(t, "GET", srv.URL+"/api/v1/models", "", "")
	if code != 200 || body != `{"status":"success","data":[]}`+"\n" {
		t.Errorf("models without a lister: %d %s", code, body)
	}
	s := &server{opt: ServerOptions{Models: models}}
	if mk := s.rolloutMarkers("fraud"); len(mk) != 1 || mk[0].Label != "production v8" || !mk[0].At.Equal(at) {
		t.Errorf("markers %+v", mk)
	}
	if mk := s.rolloutMarkers("other"); len(mk) != 0 {
		t.Errorf("markers of another model: %+v", mk)
	}
	var pts []Point
	for i := 0; i < 10; i++ {
		pts = append(pts, Point{At: now.Add(time.Duration(i-10) * time.Hour), Value: 0.01, Baseline: 0.01, Low: 0.008, High: 0.012, Shadow: 0.01})
	}
	svg := Chart(pts, ChartOptions{Title: "x", Markers: []Marker{{At: at, Label: "production <v8>"}, {At: now.Add(48 * time.Hour), Label: "later"}}})
	if strings.Count(svg, `<line class="marker"`) != 1 || !strings.Contains(svg, "production &lt;v8&gt;") || strings.Contains(svg, "later") {
		t.Errorf("chart markers: want one, escaped, inside the range:\n%s", svg)
	}
}
