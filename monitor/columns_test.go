package monitor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

const typesYAML = `
clickhouse: {database: %DB%}
state: {database: %DB%}
models:
  - name: fraud
    table: %DB%.%TABLE%
    slices: [country]
    owners: {product: p, infra: i}
detectors:
  - {name: fresh, kind: freshness, model: fraud}
  - {name: volume, kind: volume, model: fraud, window: 1h, baseline: {mode: previous}}
  - {name: block, kind: block_rate, model: fraud, window: 1h, baseline: {mode: previous}, min_samples: 10}
  - {name: features, kind: feature_health, model: fraud, window: 1h, baseline: {mode: previous}, min_samples: 10}
  - {name: shadow, kind: shadow, model: fraud, window: 1h, baseline: {mode: previous}, min_samples: 10}
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/p"}
  - name: i
    webhook: {url: "http://127.0.0.1:1/i"}
`

func typesConfig(t *testing.T, db, table string) *configs.Config {
	t.Helper()
	text := strings.NewReplacer("%DB%", db, "%TABLE%", table).Replace(typesYAML)
	cfg, err := configs.Parse("types.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// canonical is the prediction table's columns; a case replaces one.
var canonical = [][2]string{
	{"ts", "DateTime"}, {"request_id", "String"}, {"model", "String"}, {"model_version", "String"},
	{"role", "String"}, {"score", "Float32"}, {"decision", "UInt8"}, {"country", "String"},
	{"feature_names", "Array(String)"}, {"feature_values", "Array(Nullable(Float64))"},
}

func createTable(t *testing.T, e storetest.Engine, name string, replace map[string]string) {
	t.Helper()
	var cols []string
	for _, c := range canonical {
		typ := c[1]
		if r, ok := replace[c[0]]; ok {
			typ = r
		}
		cols = append(cols, store.MustIdent(c[0])+" "+typ)
	}
	q := fmt.Sprintf("CREATE TABLE %s.%s (%s) ENGINE = MergeTree ORDER BY tuple()", store.MustIdent(e.Database), store.MustIdent(name), strings.Join(cols, ", "))
	if err := e.DB.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestColumnTypes: a column of a type its role cannot be read as is
// refused at start-up naming table, column, type found and types
// accepted (an epoch-seconds ts was read as a 106751-day-old row and paged
// pipeline_outage); each accepted alternative type really works: every
// detector kind runs over a table built of them.
func TestColumnTypes(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			for i, tc := range []struct {
				col, typ, want string
			}{
				{"ts", "UInt32", `columns.ts names column "ts" of table %s, which is UInt32; want DateTime or DateTime64`},
				{"ts", "String", `columns.ts names column "ts" of table %s, which is String; want DateTime or DateTime64`},
				{"decision", "String", `columns.decision names column "decision" of table %s, which is String; want an integer type (UInt8, Int32, ...) or Bool, Nullable allowed`},
				{"decision", "Float64", `columns.decision names column "decision" of table %s, which is Float64; want an integer type`},
				{"score", "String", `columns.score names column "score" of table %s, which is String; want a numeric type (Float32, Float64, an integer, Decimal), Nullable allowed`},
				{"role", "UInt8", `columns.role names column "role" of table %s, which is UInt8; want String, FixedString, LowCardinality(String) or Enum`},
				{"request_id", "UInt64", `columns.request_id names column "request_id" of table %s, which is UInt64; want String`},
				{"model", "Int32", `columns.model names column "model" of table %s, which is Int32; want String`},
				{"feature_names", "String", `features.names_column names column "feature_names" of table %s, which is String; want Array(String)`},
				{"feature_values", "Array(String)", `features.values_column names column "feature_values" of table %s, which is Array(String); want Array(Float32|Float64) or Array(Nullable(Float32|Float64))`},
				{"feature_values", "Array(Nullable(UInt8))", `which is Array(Nullable(UInt8)); want Array(Float32|Float64)`},
				{"country", "Array(String)", `slices names column "country" of table %s, which is Array(String); want a type toString renders`},
			} {
				name := fmt.Sprintf("wrong%d", i)
				t.Run(tc.col+" "+tc.typ, func(t *testing.T) {
					createTable(t, e, name, map[string]string{tc.col: tc.typ})
					err := CheckColumns(ctx, e.DB, typesConfig(t, e.Database, name))
					want := "model fraud: " + fmt.Sprintf(tc.want, e.Database+"."+name)
					if !strings.Contains(tc.want, "%s") {
						want = tc.want
					}
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("CheckColumns: %v\nwant it to contain %s", err, want)
					}
				})
			}

			// Every accepted alternative at once, and each detector runs.
			ok := map[string]string{
				"ts": "DateTime('Europe/Paris')", "request_id": "FixedString(16)", "role": "Enum8('production' = 1, 'shadow' = 2)",
				"score": "Nullable(Float64)", "decision": "Nullable(Int8)", "country": "Nullable(FixedString(2))",
				"feature_values": "Array(Float32)", "model_version": "UInt32",
			}
			if e.Name == "embedded" {
				// Types of current ClickHouse that 18.16 lacks.
				ok["ts"], ok["decision"], ok["model"] = "DateTime64(3, 'Europe/Paris')", "Bool", "LowCardinality(String)"
			}
			createTable(t, e, "accepted", ok)
			cfg := typesConfig(t, e.Database, "accepted")
			if err := CheckColumns(ctx, e.DB, cfg); err != nil {
				t.Fatalf("accepted types refused: %v", err)
			}
			at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			var sel []string
			for _, c := range canonical {
				typ := c[1]
				if r, ok := ok[c[0]]; ok {
					typ = r
				}
				expr := map[string]string{
					"ts":             "toDateTime(?) - 1 - number % 7200",
					"request_id":     "toString(intDiv(number, 2))",
					"model":          "'fraud'",
					"model_version":  "'7'",
					"role":           "if(number % 2 = 0, 'production', 'shadow')",
					"score":          "(number % 100) / 100",
					"decision":       "if(number % 100 >= 90, 1, 0)",
					"country":        "if(number % 3 = 0, 'FR', 'DE')",
					"feature_names":  "['amount', 'age']",
					"feature_values": "[toFloat64(number % 50), toFloat64(number % 7)]",
				}[c[0]]
				sel = append(sel, "CAST("+expr+" AS "+typ+")")
			}
			ins := fmt.Sprintf("INSERT INTO %s.accepted SELECT %s FROM numbers(20000)", store.MustIdent(e.Database), strings.Join(sel, ", "))
			if err := e.DB.Exec(ctx, ins, at); err != nil {
				t.Fatalf("%s: %v", ins, err)
			}
			// The time type is read as the instant it holds, whatever its zone.
			res, err := e.DB.Query(ctx, "SELECT max(ts) FROM "+store.MustIdent(e.Database)+".accepted")
			if err != nil {
				t.Fatal(err)
			}
			if got := store.Time(res.Rows[0][0]); !got.Equal(at.Add(-time.Second)) {
				t.Errorf("newest %s read as %s, want %s", ok["ts"], got, at.Add(-time.Second))
			}
			mgr, err := alerts.New(alerts.Options{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			m, err := New(Options{Config: cfg, Store: e.DB, Alerts: mgr})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range m.Names() {
				res, err := m.Run(ctx, name, at)
				if err != nil {
					t.Errorf("detector %s over the accepted types: %v", name, err)
					continue
				}
				for _, f := range res.Findings {
					if f.Class == "pipeline_outage" {
						t.Errorf("detector %s misreads the accepted ts type: %s", name, f.Summary)
					}
				}
			}
		})
	}
}

// TestModelRowWarnings: a model_value that matches no row in the last day
// is reported (a warning naming the values the column holds), and the
// freshness page says "no rows for model value" instead of an age.
func TestModelRowWarnings(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			createTable(t, e, "predictions", nil)
			ins := fmt.Sprintf("INSERT INTO %s.predictions (ts, model, role, score, decision) SELECT toDateTime(?) - number, if(number %% 4 = 0, 'churn', 'fraud'), 'production', 0.5, 0 FROM numbers(1000)", store.MustIdent(e.Database))
			if err := e.DB.Exec(ctx, ins, at); err != nil {
				t.Fatal(err)
			}
			good := typesConfig(t, e.Database, "predictions")
			if w := ModelRowWarnings(ctx, e.DB, good, at); len(w) != 0 {
				t.Errorf("warnings for a model with rows: %v", w)
			}
			text := strings.NewReplacer("%DB%", e.Database, "%TABLE%", "predictions", "    slices: [country]\n", "    slices: [country]\n    model_value: frud\n").Replace(typesYAML)
			typo, err := configs.Parse("types.yaml", []byte(text), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			w := ModelRowWarnings(ctx, e.DB, typo, at)
			want := "model fraud: no rows with model = 'frud' in the last day (before 2026-11-26T12:00:00Z); model holds 'fraud' (750 rows), 'churn' (250 rows): check models[].model_value"
			if len(w) != 1 || w[0] != want {
				t.Errorf("warnings: %q\nwant %q", w, want)
			}
			// A day later nothing at all: the warning says so.
			if w := ModelRowWarnings(ctx, e.DB, typo, at.Add(48*time.Hour)); len(w) != 1 || !strings.HasSuffix(w[0], "has no rows at all in that day") {
				t.Errorf("warnings on an empty day: %q", w)
			}
			mgr, err := alerts.New(alerts.Options{Config: typo})
			if err != nil {
				t.Fatal(err)
			}
			m, err := New(Options{Config: typo, Store: e.DB, Alerts: mgr})
			if err != nil {
				t.Fatal(err)
			}
			res, err := m.Run(ctx, "fresh", at)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Findings) != 1 || !strings.HasPrefix(res.Findings[0].Summary, `no rows for model value "frud" (column model) in the `) {
				t.Errorf("freshness findings: %+v", res.Findings)
			}
		})
	}
}
