package detectors

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// A small hand-shaped table on both engines, for what the generator never
// produces: NULL and empty slice values, NaN and NULL scores, the columns
// feature layout with a feature that disappears, shadow scores as columns,
// a slice column cut to its top K, an empty window.
const fixtureDDL = `CREATE TABLE %s (
    ts DateTime, request_id String, model String, model_version String,
    score Nullable(Float64), decision UInt8, country Nullable(String),
    f1 Nullable(Float64), f2 Nullable(Float64),
    shadow_score Nullable(Float64), shadow_decision Nullable(UInt8)
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (model, ts)`

// Rows: 2000 in [at-2h, at) one every 3.6 s; the first 1000 are the
// baseline hour, the rest the current one. country cycles FR, DE, ”,
// NULL; every tenth score is NaN; 5% are blocked in the baseline and 20%
// in the current hour; f1 is 0..6 with a fifth NULL; f2 exists only in the
// baseline hour; the shadow blocks like production.
const fixtureInsert = `INSERT INTO %s SELECT
    toDateTime(? + intDiv(number * 36, 10)) AS ts, concat('r', toString(number)), 'm', 'v1',
    if(number %% 10 = 0, nan, (number %% 100) / 100.) AS score,
    toUInt8(number %% 100 < if(number < 1000, 5, 20)) AS decision,
    arrayElement([CAST('FR' AS Nullable(String)), 'DE', '', NULL], number %% 4 + 1) AS country,
    if(number %% 5 = 0, NULL, toFloat64(number %% 7)) AS f1,
    if(number < 1000, toFloat64(number %% 3), NULL) AS f2,
    if(number %% 2 = 0, score, NULL), if(number %% 2 = 0, decision, NULL)
FROM numbers(2000)`

const fixtureConfig = `
models:
  - name: m
    table: %s
    slices: [country]
    features: {layout: columns, names: [f1, f2]}
    shadow: {mode: columns}
    owners: {product: p, infra: i}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/"}}
detectors:
  - {name: br, kind: block_rate, model: m, baseline: {mode: previous}, top_k: 2, min_samples: 100}
  - {name: fh, kind: feature_health, model: m, baseline: {mode: previous}, slices: [], min_samples: 100}
  - {name: sh, kind: shadow, model: m, baseline: {mode: previous}, min_samples: 100}
  - {name: vol, kind: volume, model: m, baseline: {mode: previous}, slices: [], min_samples: 100}
  - {name: fresh, kind: freshness, model: m}
  - {name: stale, kind: staleness, model: m, staleness: {max_age: 1h}}
  - name: exp
    kind: expectation
    model: m
    slices: []
    min_samples: 100
    expectation: {match: [{column: country, op: in, values: [FR, DE]}], max_rate: 0.1}
`

func TestQueriesOnBothEngines(t *testing.T) {
	at := time.Date(2026, 11, 16, 12, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			table := store.Table{Database: e.Database, Name: "fixture"}
			if err := e.DB.Exec(ctx, strings.Replace(fixtureDDL, "%s", table.Quoted(), 1)); err != nil {
				t.Fatal(err)
			}
			ins := strings.Replace(strings.ReplaceAll(fixtureInsert, "%%", "%"), "%s", table.Quoted(), 1)
			if err := e.DB.Exec(ctx, ins, at.Add(-2*time.Hour).Unix()); err != nil {
				t.Fatal(err)
			}
			cfg, err := configs.Parse("fixture.yaml", []byte(strings.Replace(fixtureConfig, "%s", e.Database+".fixture", 1)), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			results := map[string]*Result{}
			for i := range cfg.Detectors {
				d, err := New(cfg, &cfg.Detectors[i])
				if err != nil {
					t.Fatal(err)
				}
				res, err := d.Evaluate(ctx, e.DB, at)
				if err != nil {
					t.Fatalf("%v\n%s", err, res.Query)
				}
				results[cfg.Detectors[i].Name] = res
			}
			ev := func(det, metric, slice, feature string) *Evaluation {
				for i, x := range results[det].Evaluations {
					if x.Metric == metric && SliceKey(x.Slice) == slice && x.Feature == feature {
						return &results[det].Evaluations[i]
					}
				}
				return nil
			}
			fires := func(det, metric, slice, feature string) bool {
				for _, f := range results[det].Findings {
					if f.Metric == metric && SliceKey(f.Slice) == slice && f.Feature == feature {
						return true
					}
				}
				return false
			}

			// Block rate: 1000 rows a window; '' and NULL are one slice of
			// 500 that ranks first, DE beats FR on the tie, FR is "(other)".
			agg := ev("br", MetricBlockRate, "{}", "")
			if agg == nil || agg.NCurrent != 1000 || agg.NBaseline != 1000 || !near(agg.Value, 0.2, 1e-9) || !near(agg.Baseline, 0.05, 1e-9) {
				t.Errorf("aggregate block rate: %+v", agg)
			}
			// Every slice moved as the aggregate did (a broad move): each is
			// significant on its own figures, and the one alert is the
			// aggregate's.
			if !fires("br", MetricBlockRate, "{}", "") {
				t.Errorf("the aggregate block rate should fire: %+v", agg)
			}
			for _, s := range []string{`{"country":"(null)"}`, `{"country":"DE"}`, `{"country":"(other)"}`} {
				if x := ev("br", MetricBlockRate, s, ""); x == nil || !(x.PValue < 0.01) || fires("br", MetricBlockRate, s, "") {
					t.Errorf("slice %s: evaluation %+v should be significant and explained by the aggregate's move", s, x)
				}
			}
			if x := ev("br", MetricBlockRate, `{"country":"(null)"}`, ""); x != nil && x.NCurrent != 500 {
				t.Errorf("NULL and empty country should make one slice of 500 rows, got %d", x.NCurrent)
			}
			if x := ev("br", MetricBlockRate, `{"country":"FR"}`, ""); x != nil {
				t.Errorf("FR is beyond top_k 2 and belongs in (other), got %+v", x)
			}
			// Scores: a tenth are NaN and stay out of the histogram.
			if x := ev("br", MetricScorePSI, "{}", ""); x == nil || x.NCurrent != 900 {
				t.Errorf("score PSI over non-NaN scores: %+v", x)
			}
			// Shadow columns: only even rows have a shadow, decisions agree.
			if x := ev("br", MetricBlockRate, "{}", ""); x == nil || !near(x.ShadowValue, 0.2, 1e-9) {
				t.Errorf("shadow block rate from shadow columns: %+v", x)
			}
			if x := ev("sh", MetricShadowBlocks, "{}", ""); x == nil || x.NCurrent != 500 || x.Value != 0 {
				t.Errorf("shadow pairs from columns: %+v", x)
			}
			// Features, columns layout: f1 a fifth NULL both hours; f2 gone.
			if x := ev("fh", MetricNullRate, "{}", "f1"); x == nil || !near(x.Value, 0.2, 1e-9) || fires("fh", MetricNullRate, "{}", "f1") {
				t.Errorf("f1 null rate: %+v", x)
			}
			if !fires("fh", MetricAllNull, "{}", "f2") {
				t.Errorf("f2 disappeared but all_null did not fire: %+v", results["fh"].Findings)
			}
			for _, f := range results["fh"].Findings {
				if f.Feature == "f2" && f.Metric != MetricAllNull {
					t.Errorf("f2 reported twice: %s", f.Summary)
				}
			}
			// Volume steady; freshness fine; staleness: v1 served an hour ago.
			if len(results["vol"].Findings) != 0 || len(results["fresh"].Findings) != 0 {
				t.Errorf("volume/freshness fired: %+v %+v", results["vol"].Findings, results["fresh"].Findings)
			}
			if !fires("stale", MetricVersionAge, "{}", "") {
				t.Errorf("staleness with max_age 1h did not fire")
			}
			// Expectation: FR and DE rows (500), 20% blocked > 10%.
			if x := ev("exp", MetricExpected, "{}", ""); x == nil || x.NCurrent != 500 || !fires("exp", MetricExpected, "{}", "") {
				t.Errorf("expectation: %+v", x)
			}

			// An empty window decides nothing and fails nothing.
			later := at.Add(30 * 24 * time.Hour)
			for i := range cfg.Detectors {
				d, _ := New(cfg, &cfg.Detectors[i])
				res, err := d.Evaluate(ctx, e.DB, later)
				if err != nil {
					t.Fatalf("%s on an empty window: %v", cfg.Detectors[i].Name, err)
				}
				for _, f := range res.Findings {
					if f.Kind != configs.KindFreshness {
						t.Errorf("%s on an empty window: %s", f.Detector, f.Summary)
					}
				}
			}
		})
	}
}
