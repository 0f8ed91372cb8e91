package monitor

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

const logKindsYAML = `
models:
  - name: fraud
    table: %DB%.predictions
    slices: [country]
    features: {layout: arrays, names_column: feature_names, values_column: feature_values}
    shadow: {mode: rows, production_role: production, shadow_role: shadow}
    labels: {table: %DB%.labels, maturity: 1d}
    owners: {product: p, infra: i}
detectors:
  - {name: rate, kind: block_rate, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 100}
  - {name: fh, kind: feature_health, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 100,
     feature_health: {features: [device_age_days, ip_risk_score], drift: false}}
  - {name: sh, kind: shadow, model: fraud, window: 1h, schedule: "*/10 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 100}
  - {name: gold, kind: expectation, model: fraud, window: 1h, schedule: "*/10 * * * *", min_samples: 50,
     expectation: {match: [{column: country, op: eq, value: FR}], max_rate: 0.25}}
  - {name: perf, kind: performance, model: fraud, window: 1h, schedule: "0 * * * *", baseline: {mode: previous, span: 3h}, min_samples: 5}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/p"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/i"}}
`

// The alert page of an alert of every kind beyond block_rate and volume
// (and of block_rate's score PSI, with its band) draws its 24 h chart from the
// prediction log: the value line's points span the chart from edge to
// edge without a gap of more than two hours, the chart names the figure
// it draws, and the divergence chart puts the score correlation on its
// own axis; on both engines.
func TestLogChartsOfEveryKind(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	start := at.Add(-53 * time.Hour) // a day and its baseline, and a day more for the labels' maturity
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, err := configs.Parse("kinds.yaml", []byte(strings.ReplaceAll(logKindsYAML, "%DB%", e.Database)), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions"), store.LabelsDef("labels", "request_id", "label", "labeled_at")}); err != nil {
				t.Fatal(err)
			}
			m := &cfg.Models[0]
			in, _ := traffic.ParseIncident("null_spike:-3h:+0s:device_age_days", at)
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: m, From: start, To: at, Rate: 12, Seed: 9, Incidents: []traffic.Incident{in}, Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			if err := traffic.GenerateLabels(ctx, e.DB, traffic.LabelOptions{Model: m, From: start, To: at}); err != nil {
				t.Fatal(err)
			}
			mon, err := New(Options{Config: cfg, Store: e.DB, Alerts: nopObserver{}})
			if err != nil {
				t.Fatal(err)
			}
			views := []alerts.View{
				{Fingerprint: "fh", Detector: "fh", Kind: "feature_health", Metric: "null_rate", Feature: "device_age_days", Model: "fraud", State: "firing", Slice: map[string]string{}},
				{Fingerprint: "fill", Detector: "fh", Kind: "feature_health", Metric: "fill_rate", Feature: "ip_risk_score", Model: "fraud", State: "firing", Slice: map[string]string{}},
				{Fingerprint: "sh", Detector: "sh", Kind: "shadow", Metric: "disagreement_production_blocks", Model: "fraud", State: "firing", Slice: map[string]string{"country": "US"}},
				{Fingerprint: "gold", Detector: "gold", Kind: "expectation", Metric: "expected_block_rate", Model: "fraud", State: "firing", Slice: map[string]string{}},
				{Fingerprint: "perf", Detector: "perf", Kind: "performance", Metric: "false_positive_rate", Model: "fraud", State: "firing", Slice: map[string]string{}},
				{Fingerprint: "psi", Detector: "rate", Kind: "block_rate", Metric: "score_psi", Model: "fraud", State: "firing", Slice: map[string]string{}},
			}
			srv := httptest.NewServer(Handler(ServerOptions{Alerts: &fakeAlerts{views: views}, LogSeries: mon.LogSeries, VersionChanges: mon.VersionChanges,
				Now: func() time.Time { return at }}))
			defer srv.Close()
			want := map[string][]string{
				"fh":   {"null_rate · all traffic · device_age_days · last 24 h from the prediction log", `class="band"`},
				"fill": {"fill_rate · all traffic · ip_risk_score · last 24 h from the prediction log"},
				"sh":   {"disagreement_production_blocks · country=US · last 24 h", "score correlation (right axis)", `class="shadow"`},
				"gold": {"expected_block_rate · all traffic · last 24 h", "band: allowed range"},
				"perf": {"false_positive_rate · all traffic · last 24 h", "shadow model"},
				"psi":  {"score_psi · all traffic · last 24 h from the prediction log", `class="band"`},
			}
			for _, v := range views {
				_, page := do(t, "GET", srv.URL+"/alerts/"+v.Fingerprint, "", "")
				charts := regexp.MustCompile(`(?s)<svg[^>]*class="chart".*?</svg>`).FindAllString(page, -1)
				if len(charts) != 2 {
					t.Fatalf("%s: alert page has %d charts, want 24 h and 7 d:\n%.1500s", v.Metric, len(charts), page)
				}
				for _, w := range want[v.Fingerprint] {
					if !strings.Contains(charts[0], w) {
						t.Errorf("%s: 24 h chart lacks %q:\n%.600s", v.Metric, w, charts[0])
					}
				}
				n := lineSpansChart(t, charts[0])
				t.Logf("%s: %d points over 24 h", v.Metric, n)
			}
		})
	}
}

// lineSpansChart asserts that the chart's value line runs from its left
// edge to its right one without a gap wider than two hours of the 24 h,
// and returns its number of points.
func lineSpansChart(t *testing.T, svg string) int {
	t.Helper()
	width, _ := strconv.ParseFloat(regexp.MustCompile(`width="(\d+)"`).FindStringSubmatch(svg)[1], 64)
	right := 12.0
	if strings.Contains(svg, "(right axis)") {
		right = 44
	}
	const left = 56.0
	pw := width - left - right
	var xs []float64
	for _, m := range regexp.MustCompile(`<polyline class="value" points="([^"]*)"`).FindAllStringSubmatch(svg, -1) {
		for _, p := range strings.Fields(m[1]) {
			x, _, _ := strings.Cut(p, ",")
			fx, err := strconv.ParseFloat(x, 64)
			if err != nil {
				t.Fatalf("bad point %q", p)
			}
			xs = append(xs, fx)
		}
	}
	if len(xs) < 20 {
		t.Errorf("value line has %d points, want at least one an hour", len(xs))
		return len(xs)
	}
	if xs[0] > left+0.05*pw || xs[len(xs)-1] < left+0.99*pw {
		t.Errorf("value line spans x %.1f..%.1f, want %.0f..%.0f", xs[0], xs[len(xs)-1], left, left+pw)
	}
	for i := 1; i < len(xs); i++ {
		if xs[i]-xs[i-1] > pw/12 {
			t.Errorf("gap of %.1f px (more than two hours) at x=%.1f", xs[i]-xs[i-1], xs[i-1])
		}
	}
	return len(xs)
}
