package detectors

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// A hand-shaped table with every kind of invalid row, on both engines:
// the counts the queries return are checked against counts worked out by
// hand, on the rows and on the minute rollup.
const validityDDL = `CREATE TABLE %s (
    ts DateTime, request_id String, model String, model_version String, role String,
    score Nullable(Float64), decision Nullable(UInt8), country Nullable(String)
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (model, role, ts)`

// Production rows: 2,000 over [at-2h, at), one every 3.6 s; numbers
// 1,000 and up are the current hour. In the current hour decisions with
// number % 20 in {0, 1, 2} are 2, 255 and NULL (150 rows) and scores with
// number % 20 in {5..9} are -1, 2, NaN, Inf and NULL (250 rows); otherwise
// number % 10 = 3 is blocked. Valid scores are a hash of number, so the
// invalid ones are a random part of them. country cycles "(null)" (a real value),
// NULL, "", "(other)" (a real value), "DE". Request ids with number % 50
// = 14 in the current hour are empty (20 requests, both roles); those with
// number % 50 = 13 have their production row twice (20 requests).
const validityProd = `INSERT INTO %s SELECT
    toDateTime(? + intDiv(number * 36, 10)) AS ts,
    if(number >= 1000 AND number %% 50 = 14, '', concat('r', toString(number))), 'm', 'v1', 'production',
    multiIf(number >= 1000 AND number %% 20 = 5, -1., number >= 1000 AND number %% 20 = 6, 2., number >= 1000 AND number %% 20 = 7, nan,
        number >= 1000 AND number %% 20 = 8, inf, number >= 1000 AND number %% 20 = 9, NULL, (cityHash64(number) %% 1000) / 1000.),
    multiIf(number >= 1000 AND number %% 20 = 0, 2, number >= 1000 AND number %% 20 = 1, 255, number >= 1000 AND number %% 20 = 2, NULL, toUInt8(number %% 10 = 3)),
    arrayElement([CAST('(null)' AS Nullable(String)), NULL, '', '(other)', 'DE'], number %% 5 + 1)
FROM numbers(2000) WHERE %s`

// Shadow rows: one per production number, valid, blocking as production
// does.
const validityShadow = `INSERT INTO %s SELECT
    toDateTime(? + intDiv(number * 36, 10)) AS ts,
    if(number >= 1000 AND number %% 50 = 14, '', concat('r', toString(number))), 'm', 'v1', 'shadow',
    (cityHash64(number) %% 1000) / 1000., toUInt8(number %% 10 = 3),
    arrayElement([CAST('(null)' AS Nullable(String)), NULL, '', '(other)', 'DE'], number %% 5 + 1)
FROM numbers(2000)`

const validityConfig = `
models:
  - name: m
    table: %s
    slices: [country]
    shadow: {mode: rows}
    rollup: {table: %s}
    owners: {product: p, infra: i}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/"}}
detectors:
  - {name: br, kind: block_rate, model: m, baseline: {mode: previous}, top_k: 3, min_samples: 100}
  - {name: br-rollup, kind: block_rate, model: m, source: rollup, baseline: {mode: previous}, top_k: 3, min_samples: 100}
  - {name: sh, kind: shadow, model: m, baseline: {mode: previous}, top_k: 3, min_samples: 100}
`

func TestValidityQueriesOnBothEngines(t *testing.T) {
	at := time.Date(2026, 11, 16, 12, 0, 0, 0, time.UTC)
	from := at.Add(-2 * time.Hour)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			table := store.Table{Database: e.Database, Name: "validity"}
			if err := e.DB.Exec(ctx, fmt.Sprintf(validityDDL, table.Quoted())); err != nil {
				t.Fatal(err)
			}
			for _, ins := range []string{
				fmt.Sprintf(strings.Replace(validityProd, "WHERE %s", "WHERE 1", 1), table.Quoted()),
				fmt.Sprintf(strings.Replace(validityProd, "WHERE %s", "WHERE number >= 1000 AND number %% 50 = 13", 1), table.Quoted()),
				fmt.Sprintf(validityShadow, table.Quoted()),
			} {
				if err := e.DB.Exec(ctx, ins, from.Unix()); err != nil {
					t.Fatalf("%v\n%s", err, ins)
				}
			}
			text := fmt.Sprintf(validityConfig, e.Database+".validity", e.Database+".validity_1m")
			cfg, err := configs.Parse("validity.yaml", []byte(text), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			r, err := Rollup(&cfg.Models[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Apply(ctx, e.DB, r.Database, r.Tables); err != nil {
				t.Fatal(err)
			}
			stmts, err := r.Backfill(from, at)
			if err != nil {
				t.Fatal(err)
			}
			// The rows rollup only: the table has no features.
			for _, s := range stmts[:1] {
				if err := e.DB.Exec(ctx, s); err != nil {
					t.Fatalf("backfill: %v\n%s", err, s)
				}
			}
			dets := map[string]*Detector{}
			for i := range cfg.Detectors {
				d, err := New(cfg, &cfg.Detectors[i])
				if err != nil {
					t.Fatal(err)
				}
				dets[d.cfg.Name] = d
			}
			// figures runs a detector's query and returns its groups by
			// slice value after fold, with the result for column lookups.
			figures := func(name string) (map[string]*group, *store.Result) {
				d := dets[name]
				sql, err := d.impl.query(newWindows(d.cfg, at)).bind()
				if err != nil {
					t.Fatal(err)
				}
				res, err := e.DB.Query(ctx, sql)
				if err != nil {
					t.Fatalf("%s: %v\n%s", name, err, sql)
				}
				groups, err := groupRows(res, "")
				if err != nil {
					t.Fatal(err)
				}
				spec := blockRateFold
				if name == "sh" {
					spec = foldSpec{sums: shadowCols}
				}
				if groups, err = fold(res, groups, spec, 3); err != nil {
					t.Fatal(err)
				}
				out := map[string]*group{}
				for _, g := range groups {
					out[g.val] = g
				}
				return out, res
			}
			for _, name := range []string{"br", "br-rollup"} {
				gs, res := figures(name)
				c, err := cols(res, blockRateCols...)
				if err != nil {
					t.Fatal(err)
				}
				n, x, sn, sx, bins, bn, bd, sbd := c[0], c[1], c[2], c[3], c[4], c[5], c[8], c[9]
				agg := gs[""]
				if agg == nil {
					t.Fatalf("%s: no aggregate", name)
				}
				for _, f := range []struct {
					what      string
					got, want float64
				}{
					{"valid production rows", agg.num(0, n), 1020 - 150},
					{"blocked among them", agg.num(0, x), 100 + 20},
					{"invalid decisions", agg.num(0, bd), 150},
					{"invalid scores", agg.nulls(0, bins, bn), 250},
					{"scores in the PSI", agg.hist(0, bins, bn).Total(), 1020 - 250},
					{"shadow rows", agg.num(0, sn), 1000},
					{"shadow blocked", agg.num(0, sx), 100},
					{"shadow invalid decisions", agg.num(0, sbd), 0},
					{"baseline valid rows", agg.num(1, n), 1000},
					{"baseline invalid decisions", agg.num(1, bd), 0},
					{"baseline invalid scores", agg.nulls(1, bins, bn), 0},
				} {
					if f.got != f.want {
						t.Errorf("%s: %s = %v, want %v", name, f.what, f.got, f.want)
					}
				}
				// NULL and '' are the bucket (null); the real "(null)" and
				// "(other)" are kept values of their own, quoted; DE, past
				// top_k 3, is the bucket (other).
				for v, want := range map[string]float64{NullSlice: 400, `"(null)"`: 200, `"(other)"`: 220, OtherSlice: 200} {
					g := gs[v]
					if g == nil {
						t.Errorf("%s: no slice %s (have %v)", name, v, keysOf(gs))
						continue
					}
					if got := g.num(0, n) + g.num(0, bd); got != want {
						t.Errorf("%s: slice %s has %v current production rows, want %v", name, v, got, want)
					}
				}
			}
			gs, res := figures("sh")
			c, err := cols(res, shadowCols...)
			if err != nil {
				t.Fatal(err)
			}
			agg := gs[""]
			for _, f := range []struct {
				what string
				col  int
				w    int
				want float64
			}{
				{"valid pairs", 0, 0, 960 - 150},
				{"pairs with an invalid decision", 11, 0, 150},
				{"unpaired", 3, 0, 0},
				{"rows", 12, 0, 2020},
				{"rows with an empty id", 13, 0, 40},
				{"rows of duplicated ids", 14, 0, 60},
				{"baseline pairs", 0, 1, 1000},
				{"baseline rows", 12, 1, 2000},
			} {
				if got := agg.num(f.w, c[f.col]); got != f.want {
					t.Errorf("shadow: %s = %v, want %v", f.what, got, f.want)
				}
			}
			// Empty-id rows keep their own slice values: number % 50 = 14
			// is DE, past top_k, so all 40 are in the bucket (other).
			if g := gs[OtherSlice]; g == nil || g.num(0, c[13]) != 40 {
				t.Errorf("shadow: empty-id rows of the (other) bucket: %v", g)
			}

			// The decisions: one feature_pipeline finding per check, on the
			// aggregate, from the model's first detector of the kind (the
			// rollup twin leaves the rows out as well, and says nothing);
			// no product finding from the invalid rows.
			for name, want := range map[string][]string{
				"br":        {MetricInvalidDecision, MetricInvalidScore},
				"br-rollup": nil,
				"sh":        {MetricDuplicateRequestID, MetricEmptyRequestID},
			} {
				out, err := dets[name].Evaluate(ctx, e.DB, at)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var got []string
				for _, f := range out.Findings {
					if f.Class != ClassFeaturePipeline || len(f.Slice) != 0 {
						t.Errorf("%s: unexpected finding %s %s %v: %s", name, f.Class, f.Metric, f.Slice, f.Summary)
						continue
					}
					got = append(got, f.Metric)
					t.Logf("%s: %s", name, f.Summary)
				}
				if strings.Join(got, " ") != strings.Join(want, " ") && strings.Join(reverse(got), " ") != strings.Join(want, " ") {
					t.Errorf("%s: findings %v, want %v", name, got, want)
				}
			}
		})
	}
}

func keysOf(m map[string]*group) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// Shadow scores as columns on the production row: an invalid production
// or shadow decision is out of both models' rates and of the pairs; a
// NULL shadow decision is no shadow, not an invalid one; request ids pair
// nothing, so the shadow detector has no id checks.
const validityColumnsDDL = `CREATE TABLE %s (
    ts DateTime, request_id String, model String, model_version String,
    score Float64, decision UInt8, country String,
    shadow_score Nullable(Float64), shadow_decision Nullable(UInt8)
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (model, ts)`

// In the current hour (number >= 1000) number % 10 = 0 has decision 2,
// = 1 shadow decision 255; always, = 2 has no shadow and = 3 is blocked.
const validityColumnsInsert = `INSERT INTO %s SELECT
    toDateTime(? + intDiv(number * 36, 10)), concat('r', toString(number)), 'm', 'v1',
    (cityHash64(number) %% 1000) / 1000., if(number >= 1000 AND number %% 10 = 0, 2, toUInt8(number %% 10 = 3)), 'FR',
    if(number %% 10 = 2, NULL, (cityHash64(number) %% 1000) / 1000.),
    multiIf(number %% 10 = 2, NULL, number >= 1000 AND number %% 10 = 1, 255, toUInt8(number %% 10 = 3))
FROM numbers(2000)`

const validityColumnsConfig = `
models:
  - name: m
    table: %s
    slices: []
    shadow: {mode: columns}
    owners: {product: p, infra: i}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/"}}
detectors:
  - {name: br, kind: block_rate, model: m, baseline: {mode: previous}, min_samples: 100}
  - {name: sh, kind: shadow, model: m, baseline: {mode: previous}, min_samples: 100}
`

func TestValidityShadowColumnsOnBothEngines(t *testing.T) {
	at := time.Date(2026, 11, 16, 12, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			table := store.Table{Database: e.Database, Name: "validity_cols"}
			if err := e.DB.Exec(ctx, fmt.Sprintf(validityColumnsDDL, table.Quoted())); err != nil {
				t.Fatal(err)
			}
			if err := e.DB.Exec(ctx, fmt.Sprintf(validityColumnsInsert, table.Quoted()), at.Add(-2*time.Hour).Unix()); err != nil {
				t.Fatal(err)
			}
			cfg, err := configs.Parse("cols.yaml", []byte(fmt.Sprintf(validityColumnsConfig, e.Database+".validity_cols")), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			results := map[string]*Result{}
			aggs := map[string]*group{}
			colsOf := map[string][]col{}
			for i := range cfg.Detectors {
				d, err := New(cfg, &cfg.Detectors[i])
				if err != nil {
					t.Fatal(err)
				}
				sql, err := d.impl.query(newWindows(d.cfg, at)).bind()
				if err != nil {
					t.Fatal(err)
				}
				res, err := e.DB.Query(ctx, sql)
				if err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
				groups, err := groupRows(res, "")
				if err != nil || len(groups) != 1 {
					t.Fatalf("%s: groups %v, %v", d.cfg.Name, groups, err)
				}
				names := blockRateCols
				if d.cfg.Kind == configs.KindShadow {
					names = shadowCols
				}
				c, err := cols(res, names...)
				if err != nil {
					t.Fatal(err)
				}
				aggs[d.cfg.Name], colsOf[d.cfg.Name] = groups[0], c
				if results[d.cfg.Name], err = d.Evaluate(ctx, e.DB, at); err != nil {
					t.Fatal(err)
				}
			}
			br, bc := aggs["br"], colsOf["br"]
			sh, sc := aggs["sh"], colsOf["sh"]
			for _, f := range []struct {
				what      string
				got, want float64
			}{
				{"production valid", br.num(0, bc[0]), 900},
				{"production blocked", br.num(0, bc[1]), 100},
				{"production invalid", br.num(0, bc[8]), 100},
				{"shadow valid", br.num(0, bc[2]), 800},
				{"shadow blocked", br.num(0, bc[3]), 100},
				{"shadow invalid", br.num(0, bc[9]), 100},
				{"baseline shadow valid (NULL is no shadow)", br.num(1, bc[2]), 900},
				{"baseline shadow invalid", br.num(1, bc[9]), 0},
				{"valid pairs", sh.num(0, sc[0]), 700},
				{"pairs with an invalid decision", sh.num(0, sc[11]), 200},
				{"unpaired (no shadow)", sh.num(0, sc[3]), 100},
				{"rows", sh.num(0, sc[12]), 1000},
				{"empty ids", sh.num(0, sc[13]), 0},
			} {
				if f.got != f.want {
					t.Errorf("%s = %v, want %v", f.what, f.got, f.want)
				}
			}
			var got []string
			for _, name := range []string{"br", "sh"} {
				for _, f := range results[name].Findings {
					got = append(got, name+" "+string(f.Class)+" "+f.Metric)
				}
			}
			// (100 + 100) of 1,000 production and 900 shadow decisions.
			if want := "br feature_pipeline invalid_decision_share"; strings.Join(got, ", ") != want {
				t.Errorf("findings %v, want %s", got, want)
			}
			for _, ev := range results["br"].Evaluations {
				if ev.Metric == MetricInvalidDecision && !near(ev.Value, 200.0/1900, 1e-12) {
					t.Errorf("invalid decision share %v, want 200/1900", ev.Value)
				}
			}
		})
	}
}
