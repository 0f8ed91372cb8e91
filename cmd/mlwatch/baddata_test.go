package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// badAt is the evaluation time of the bad-data cases: the current window
// is the hour before it, the baseline the hour before that.
var badAt = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

const badDDL = `CREATE TABLE %s (
    ts DateTime, request_id String, model String, model_version String, role String,
    score Float32, decision UInt8, country Nullable(String), merchant String,
    feature_names Array(String), feature_values Array(Nullable(Float64))
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (model, role, ts)`

// distinctValues is the cardinality of the high-cardinality slice case:
// a million under make soak (soak_test.go), fewer in make test, where the
// case must stay fast.
var distinctValues = 200000

// badRows inserts n rows one every 7200/n seconds over the two hours
// before badAt (or from `from`); the expressions may use `number` (0..n-1)
// and `cur` (1 in the second hour). Unset expressions take the healthy
// default: 2% blocked, uniform scores, three countries, features a, b, c.
// where filters the rows; featCols and featVals replace the feature
// arrays (the columns layout); requestID and role default to 'r<number>'
// and 'production'.
type badRows struct {
	n                        int
	from                     time.Time
	score, decision, country string
	merchant, names, values  string
	where                    string
	featCols, featVals       string
	requestID, role          string
}

func (r badRows) sql(table string) (string, []any) {
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	n := r.n
	if n == 0 {
		n = 6000
	}
	from := r.from
	if from.IsZero() {
		from = badAt.Add(-2 * time.Hour)
	}
	feats := def(r.names, "['a', 'b', 'c']") + ", " + def(r.values, "[CAST(number % 7 AS Nullable(Float64)), toFloat64(number % 11), toFloat64(number % 13)]")
	q := fmt.Sprintf(`INSERT INTO %[1]s (ts, request_id, model, model_version, role, score, decision, country, merchant, %[8]s)
SELECT toDateTime(? + intDiv(number * 7200, %[2]d)) AS ts, %[11]s, 'fraud', 'v1', %[12]s,
    %[3]s, toUInt8(%[4]s), %[5]s, %[6]s, %[7]s
FROM (SELECT number, toUInt8(number >= %[9]d) AS cur FROM numbers(%[2]d)) WHERE %[10]s`,
		table, n,
		def(r.score, "(number % 97) / 97."),
		def(r.decision, "number % 100 < 2"),
		def(r.country, "arrayElement([CAST('FR' AS Nullable(String)), 'DE', 'GB'], number % 3 + 1)"),
		def(r.merchant, "concat('m', toString(number % 5))"),
		def(r.featVals, feats),
		def(r.featCols, "feature_names, feature_values"),
		n/2, def(r.where, "1"), def(r.requestID, "concat('r', toString(number))"), def(r.role, "'production'"))
	return q, []any{from}
}

const badModel = `
models:
  - name: fraud
    table: %s
    slices: [%s]
    shadow: {mode: none}
    owners: {product: product, infra: infra}
%s
receivers:
  - {name: product, webhook: {url: "http://127.0.0.1:1/"}}
  - {name: infra, webhook: {url: "http://127.0.0.1:1/"}}
`

const badDetectors = `detectors:
  - {name: block, kind: block_rate, model: fraud, baseline: {mode: previous}, min_samples: 100}
  - {name: feat, kind: feature_health, model: fraud, baseline: {mode: previous}, min_samples: 100, slices: []}
  - {name: vol, kind: volume, model: fraud, baseline: {mode: previous}, slices: []}
  - {name: fresh, kind: freshness, model: fraud}`

// shadowDetectors watch a model whose shadow rows share the production
// rows' request ids.
const shadowDetectors = `  - {name: block, kind: block_rate, model: fraud, baseline: {mode: previous}, min_samples: 100}
  - {name: shad, kind: shadow, model: fraud, baseline: {mode: previous}, min_samples: 100}`

// emptyIDs and allEmptyIDs lose the request id of 30% and of all of the
// current hour's rows.
const (
	emptyIDs    = "if(cur AND number % 10 < 3, '', concat('r', toString(number)))"
	allEmptyIDs = "if(cur, '', concat('r', toString(number)))"
)

// evalOnce evaluates every detector of cfg once at `at` and runs the alert
// pipeline as `mlwatch eval` does; it returns the firing alerts, sorted,
// and the run errors.
func evalOnce(t *testing.T, db store.Store, cfg *configs.Config, at time.Time) ([]alerts.View, []error) {
	t.Helper()
	noop := map[string]alerts.Notifier{}
	for _, r := range cfg.Receivers {
		noop[r.Name] = alerts.NotifierFunc(func(context.Context, *alerts.Notification) (string, bool, error) { return "", false, nil })
	}
	mgr, err := alerts.New(alerts.Options{Config: cfg, OneShot: true, Now: func() time.Time { return at }, Notifiers: noop})
	if err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(monitor.Options{Config: cfg, Store: db, Alerts: mgr})
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, name := range mon.Names() {
		if _, err := mon.Run(context.Background(), name, at); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := mgr.Process(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	var out []alerts.View
	for _, v := range mgr.Alerts() {
		if v.State == "firing" {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return alertKey(out[i]) < alertKey(out[j]) })
	return out, errs
}

// alertKey is how the cases name an alert: detector, class, slice and
// feature, e.g. "block model_behavior country=FR" or "feat feature_pipeline c".
func alertKey(v alerts.View) string {
	k := v.Detector + " " + v.Class
	if s := alerts.SliceLabel(v.Slice); s != "" {
		k += " " + s
	}
	if v.Feature != "" {
		k += " " + v.Feature
	}
	return k
}

func keys(vs []alerts.View) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, alertKey(v))
	}
	return out
}

// TestBadData feeds the detectors prediction logs with the bad data real
// pipelines produce, on both engines; each case names exactly which
// alerts must fire (none, for data that must change nothing) and no
// detector may fail.
func TestBadData(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// ddl and rows make the table (%s: its quoted name); config is the
		// model's features block and the detectors.
		ddl      string
		rows     []badRows
		slices   string
		features string
		dets     string
		// shadow logs shadow rows (shadow mode rows); summary must be part
		// of a firing alert's summary.
		shadow  bool
		want    []string
		summary string
	}{{
		name: "healthy control",
		rows: []badRows{{}},
		want: []string{},
	}, {
		// Scores that are no probability (NaN, ±Inf, -1, 2) in 30% of the
		// current rows: the logging broke (infra). They stay out of the
		// score distribution, so the model is not blamed.
		name:    "scores NaN, Inf, -1 and 2",
		rows:    []badRows{{score: "if(cur AND number % 10 < 3, arrayElement([nan, inf, -inf, -1., 2.], intDiv(number, 10) % 5 + 1), (number % 97) / 97.)"}},
		want:    []string{"block feature_pipeline"},
		summary: "logging broke: 30.0% of rows have a score that is NULL, NaN, infinite or outside [0, 1] (was 0.0%; n=3,000 vs 3,000 rows)",
	}, {
		// Decisions 2, 255 and NULL in a quarter of the current rows, all
		// of them FR's: logging broke (infra), said once, naming FR. They
		// are no blocks: FR's block rate, from its valid rows, is steady,
		// so product is not paged.
		name:    "decisions 2, 255 and NULL",
		ddl:     strings.Replace(badDDL, "decision UInt8", "decision Nullable(UInt8)", 1),
		rows:    []badRows{{decision: "multiIf(cur AND number % 12 = 0, 2, cur AND number % 12 = 3, 255, cur AND number % 12 = 6, NULL, number % 100 < 2)"}},
		want:    []string{"block feature_pipeline"},
		summary: "logging broke: 25.0% of rows have a decision outside {0, 1} (was 0.0%; n=3,000 vs 3,000 rows); most of them in country=FR (100.0%)",
	}, {
		// A real country called "(null)" is not the NULL and empty bucket
		// (null): its rise is its own alert, shown quoted.
		name: "a slice value literally (null)",
		rows: []badRows{{
			country:  "arrayElement([CAST('(null)' AS Nullable(String)), 'DE', NULL, ''], number % 4 + 1)",
			decision: "if(cur AND number % 4 = 0, number % 100 < 30, number % 100 < 2)",
		}},
		want:    []string{`block model_behavior country="(null)"`},
		summary: `country "(null)" block rate 32.0% vs 4.0% baseline`,
	}, {
		// A real value "(other)" is kept by top_k and is not the bucket of
		// the values beyond it (GB and IT here), which stays quiet.
		name: "a slice value literally (other)",
		rows: []badRows{{
			country:  "multiIf(number % 20 < 8, '(other)', number % 20 < 14, 'DE', number % 20 < 17, 'GB', 'IT')",
			decision: "if(cur AND number % 20 < 8, number % 100 < 30, number % 100 < 2)",
		}},
		dets:    `  - {name: block, kind: block_rate, model: fraud, baseline: {mode: previous}, min_samples: 100, top_k: 2}`,
		want:    []string{`block model_behavior country="(other)"`},
		summary: `country "(other)" block rate 40.0% vs 5.0% baseline`,
	}, {
		// Production and shadow rows of the same requests, nothing wrong.
		name:   "healthy control with shadow rows",
		shadow: true,
		rows:   []badRows{{}, {role: "'shadow'"}},
		dets:   shadowDetectors,
		want:   []string{},
	}, {
		// 30% of the current requests lost their id on both sides: those
		// rows cannot be paired; they are the logging's failure (infra),
		// not a divergence and not a pairing collapse.
		name:    "empty request ids",
		shadow:  true,
		rows:    []badRows{{requestID: emptyIDs}, {role: "'shadow'", requestID: emptyIDs}},
		dets:    shadowDetectors,
		want:    []string{"shad feature_pipeline"},
		summary: "logging broke: 30.0% of rows have an empty request id (no shadow row can pair with them) (was 0.0%; n=6,000 vs 6,000 rows)",
	}, {
		// Every current id empty: the pairing used to collapse to one
		// "request", below min_samples, and the detector went blind
		// without a word.
		name:    "every request id empty",
		shadow:  true,
		rows:    []badRows{{requestID: allEmptyIDs}, {role: "'shadow'", requestID: allEmptyIDs}},
		dets:    shadowDetectors,
		want:    []string{"shad feature_pipeline"},
		summary: "logging broke: 100.0% of rows have an empty request id",
	}, {
		// 30% of the current production rows logged twice: 900 requests
		// with two production rows and a shadow row, 2,700 of 6,900 rows.
		name:    "duplicated request ids",
		shadow:  true,
		rows:    []badRows{{}, {role: "'shadow'"}, {where: "cur AND number % 10 < 3"}},
		dets:    shadowDetectors,
		want:    []string{"shad feature_pipeline"},
		summary: "logging broke: 39.1% of rows share their request id with another row of the same role",
	}, {
		// NULL and '' are one slice, "(null)"; its block rate went from 2%
		// to 30% there. The aggregate moves only because of it, so the
		// alert is the slice's (attribution), not the aggregate's too.
		name: "NULL and empty slice values",
		rows: []badRows{{
			country:  "arrayElement([CAST('FR' AS Nullable(String)), 'DE', NULL, ''], number % 4 + 1)",
			decision: "if(cur AND number % 4 >= 2, number % 100 < 30, number % 100 < 2)",
		}},
		want: []string{"block model_behavior country=(null)"},
	}, {
		// No row in the current hour: volume and freshness say so (infra),
		// the block rate decides nothing on no data.
		name: "empty current window",
		rows: []badRows{{where: "cur = 0"}},
		want: []string{"fresh pipeline_outage", "vol pipeline_outage"},
	}, {
		// Rows stamped a day ahead (all blocked) are outside every window:
		// they change nothing, and freshness is not fooled by them.
		name: "timestamps in the future",
		rows: []badRows{{}, {n: 2000, decision: "1", score: "1.", from: badAt.Add(24 * time.Hour)}},
		want: []string{},
	}, {
		// Value arrays shorter or longer than the name arrays in some rows
		// must not fail the feature query; missing values count as NULL,
		// so half the current rows lacking c is a null spike of c.
		name: "feature arrays of unequal length",
		rows: []badRows{{values: `multiIf(cur AND number % 2 = 0, [CAST(number % 7 AS Nullable(Float64)), toFloat64(number % 11)],
			number % 50 = 0, [CAST(number % 7 AS Nullable(Float64)), toFloat64(number % 11)],
			number % 70 = 0, [CAST(number % 7 AS Nullable(Float64)), toFloat64(number % 11), toFloat64(number % 13), 4.],
			[CAST(number % 7 AS Nullable(Float64)), toFloat64(number % 11), toFloat64(number % 13)])`}},
		want: []string{"feat feature_pipeline c"},
	}, {
		// Feature names as data: quotes, backticks, unicode come back as is.
		name: "feature names with quotes, backticks and unicode (arrays)",
		rows: []badRows{{
			names:  `['it\'s', 'back` + "`" + `tick', 'naïve-数']`,
			values: "[if(cur AND number % 10 > 0, NULL, toFloat64(number % 7)), toFloat64(number % 11), toFloat64(number % 13)]",
		}},
		want: []string{"feat feature_pipeline it's"},
	}, {
		// Feature names as column identifiers (the columns layout).
		name: "feature columns with quotes, backticks and unicode (columns)",
		ddl: "CREATE TABLE %s (ts DateTime, request_id String, model String, model_version String, role String, score Float32, decision UInt8, country Nullable(String), merchant String, " +
			store.MustIdent("it's") + " Nullable(Float64), " + store.MustIdent("back`tick") + " Nullable(Float64), " + store.MustIdent("naïve 数") + " Nullable(Float64)" +
			") ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (model, role, ts)",
		rows: []badRows{{
			featCols: store.MustIdent("it's") + ", " + store.MustIdent("back`tick") + ", " + store.MustIdent("naïve 数"),
			featVals: "toFloat64(number % 7), if(cur AND number % 10 > 0, NULL, toFloat64(number % 11)), toFloat64(number % 13)",
		}},
		features: "    features: {layout: columns, names: [\"it's\", \"back`tick\", \"naïve 数\"]}",
		want:     []string{"feat feature_pipeline back`tick"},
	}, {
		// A slice column with a million distinct values (make soak; 200k in
		// make test): the top 50 by rows and "(other)"; nothing per value
		// beyond that. Every value moved, so this is a broad move: one
		// alert, the aggregate's ("(other)" is almost all of it).
		name:   fmt.Sprintf("a slice column with %d distinct values", distinctValues),
		rows:   []badRows{{n: distinctValues, merchant: "concat('m', toString(number))", decision: "if(cur, number % 100 < 10, number % 100 < 2)"}},
		slices: "merchant",
		dets:   `  - {name: block, kind: block_rate, model: fraud, baseline: {mode: previous}, min_samples: 100, top_k: 50, block_rate: {score_psi: false}}`,
		want:   []string{"block model_behavior"},
	}}
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					table := fmt.Sprintf("bad_%d", i)
					quoted := store.Table{Database: eng.Database, Name: table}.Quoted()
					ctx := context.Background()
					ddl := tc.ddl
					if ddl == "" {
						ddl = badDDL
					}
					if err := eng.DB.Exec(ctx, fmt.Sprintf(ddl, quoted)); err != nil {
						t.Fatalf("create: %v", err)
					}
					for _, r := range tc.rows {
						q, args := r.sql(quoted)
						if err := eng.DB.Exec(ctx, q, args...); err != nil {
							t.Fatalf("insert: %v", err)
						}
					}
					slices, dets := tc.slices, tc.dets
					if slices == "" {
						slices = "country"
					}
					if dets == "" {
						dets = badDetectors
					} else {
						dets = "detectors:\n" + dets
					}
					text := fmt.Sprintf(badModel, eng.Database+"."+table, slices, tc.features) + dets + "\n"
					if tc.shadow {
						text = strings.Replace(text, "shadow: {mode: none}", "shadow: {mode: rows}", 1)
					}
					cfg, err := configs.Parse("bad.yaml", []byte(text), noEnv)
					if err != nil {
						t.Fatalf("config: %v\n%s", err, text)
					}
					if err := monitor.CheckColumns(ctx, eng.DB, cfg); err != nil {
						t.Fatalf("check columns: %v", err)
					}
					start := time.Now()
					vs, errs := evalOnce(t, eng.DB, cfg, badAt)
					t.Logf("evaluated in %s", time.Since(start).Round(time.Millisecond))
					for _, err := range errs {
						t.Errorf("a detector failed: %v", err)
					}
					if got := keys(vs); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
						t.Errorf("alerts:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
						for _, v := range vs {
							t.Logf("%s: %s", alertKey(v), v.Summary)
						}
					}
					summaryFound := tc.summary == ""
					for _, v := range vs {
						summaryFound = summaryFound || strings.Contains(v.Summary, tc.summary)
						// Invalid rows are the logging's (infra): never a
						// product page, never held back as caused.
						if v.Class == "feature_pipeline" && (v.Owner != "infra" || v.CausedBy != "") {
							t.Errorf("alert %s: owner %q caused_by %q, want infra and no cause", alertKey(v), v.Owner, v.CausedBy)
						}
					}
					if !summaryFound {
						t.Errorf("no alert summary contains %q", tc.summary)
					}
					for _, v := range vs {
						for k, val := range v.Slice {
							if val == "" || val == "NULL" || val == "\\N" {
								t.Errorf("alert %s has slice %s=%q; NULL and empty are (null)", alertKey(v), k, val)
							}
						}
					}
				})
			}
		})
	}
}

func noEnv(string) (string, bool) { return "", false }
