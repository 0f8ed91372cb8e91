package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// fixture writes a small prediction log with known figures: 2 windows
// (baseline 09:00–10:00, current 10:00–11:00), 3 countries, paired shadow
// rows, two features with known nulls.
func fixture(t *testing.T, ctx context.Context, e storetest.Engine) store.Table {
	t.Helper()
	tbl := store.Table{Database: e.Database, Name: "predictions"}
	if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	cols := []string{"ts", "request_id", "model", "model_version", "role", "score", "decision", "country", "merchant_category", "amount_usd", "feature_names", "feature_values"}
	var rows [][]any
	add := func(i int, ts time.Time, country string, blockedProd, blockedShadow bool, f1, f2 *float64) {
		id := fmt.Sprintf("r%04d", i)
		for _, role := range []string{"production", "shadow"} {
			blocked := blockedProd
			if role == "shadow" {
				blocked = blockedShadow
			}
			score, dec := float32(0.1), uint8(0)
			if blocked {
				score, dec = 0.9, 1
			}
			rows = append(rows, []any{ts, id, "fraud", "v1", role, score, dec, country, "retail", float64(i), []string{"f1", "f2"}, []*float64{f1, f2}})
		}
	}
	v := func(x float64) *float64 { return &x }
	countries := []string{"FR", "DE", ""} // "" is an empty slice value
	for i := 0; i < 300; i++ {
		w := time.Duration(i%2) * time.Hour // even: baseline window, odd: current
		ts := t0.Add(-time.Hour + w + time.Duration(i)*time.Second)
		c := countries[i%3]
		blockedProd := i%10 == 0 || (c == "FR" && w > 0 && i%3 == 0 && i%4 == 1)
		blockedShadow := i%10 == 0
		var f1 *float64
		if i%7 != 0 {
			f1 = v(float64(i % 50))
		}
		add(i, ts, c, blockedProd, blockedShadow, f1, v(0))
	}
	if err := e.DB.Insert(ctx, tbl, cols, rows); err != nil {
		t.Fatalf("insert: %v", err)
	}
	return tbl
}

// shapes are the SQL forms the detectors rely on, each run on both engines.
var shapes = []struct {
	name string
	sql  string // %[1]s is the table
	args []any
}{
	{"grouped counts by slice and window", `
SELECT country, if(ts >= ?, 'current', 'baseline') AS w, count() AS n, countIf(decision = 1) AS blocked
FROM %[1]s PREWHERE ts >= ? AND ts < ?
WHERE role = 'production'
GROUP BY country, w ORDER BY country, w`, []any{t0, t0.Add(-time.Hour), t0.Add(time.Hour)}},
	{"countIf of a nullable condition", `
SELECT countIf(ifNull(v > 10, 0)) AS over, countIf(isNull(v)) AS nulls, count() AS n
FROM %[1]s ARRAY JOIN feature_names AS name, feature_values AS v WHERE role = 'production' AND name = 'f1'`, nil},
	{"null counts over array elements", `
SELECT name, countIf(isNull(v)) AS nulls, countIf(ifNull(v = 0, 0)) AS zeros, count() AS n, uniqExact(v) AS distinct
FROM %[1]s ARRAY JOIN feature_names AS name, feature_values AS v WHERE role = 'production'
GROUP BY name ORDER BY name`, nil},
	{"quantiles for bin edges", `
SELECT quantilesExact(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)(v) AS edges
FROM %[1]s ARRAY JOIN feature_names AS name, feature_values AS v WHERE role = 'production' AND name = 'f1' AND isNotNull(v)`, nil},
	{"histogram counts against edges", `
SELECT w, bin, count() AS n FROM (
  SELECT if(ts >= ?, 'current', 'baseline') AS w,
         arrayFirstIndex(e -> assumeNotNull(v) < e, arrayPushBack(?, inf)) AS bin
  FROM %[1]s ARRAY JOIN feature_names AS name, feature_values AS v
  WHERE role = 'production' AND name = 'f1' AND isNotNull(v))
GROUP BY w, bin ORDER BY w, bin`, []any{t0, []float64{5, 10, 20, 40}}},
	{"paired production and shadow by request_id", `
SELECT country, countIf(p = 1 AND s = 0) AS prod_only, countIf(p = 0 AND s = 1) AS shadow_only, count() AS pairs
FROM (
  SELECT request_id, any(country) AS country,
         anyIf(decision, role = 'production') AS p, anyIf(decision, role = 'shadow') AS s,
         countIf(role = 'production') AS np, countIf(role = 'shadow') AS ns
  FROM %[1]s GROUP BY request_id)
WHERE np = 1 AND ns = 1
GROUP BY country ORDER BY country`, nil},
	{"paired by join", `
SELECT count() AS pairs, sum(l.d != r.sd) AS disagree
FROM (SELECT request_id, decision AS d FROM %[1]s WHERE role = 'production') AS l
ANY INNER JOIN (SELECT request_id, decision AS sd FROM %[1]s WHERE role = 'shadow') AS r USING request_id`, nil},
	{"top-K slice values with other", `
SELECT if(has(?, country), if(country = '', '(null)', country), 'other') AS slice, count() AS n
FROM %[1]s WHERE role = 'production' GROUP BY slice ORDER BY slice`, []any{[]string{"FR", ""}}},
	{"seasonal day buckets", `
SELECT toDate(ts) AS day, intDiv(toUInt32(ts) - toUInt32(?), 3600) AS hour_offset, count() AS n
FROM %[1]s WHERE role = 'production' GROUP BY day, hour_offset ORDER BY day, hour_offset`, []any{t0.Add(-time.Hour)}},
	{"nan and null handling", `
SELECT avg(x) AS a, countIf(isNaN(x)) AS nans, sum(isNull(y)) AS ynulls
FROM (SELECT arrayJoin([1., nan, 3.]) AS x, CAST(NULL AS Nullable(Float64)) AS y)`, nil},
}

func TestShapesSameOnBothEngines(t *testing.T) {
	ctx := context.Background()
	engines := storetest.Engines(t)
	results := make([][]*store.Result, len(engines))
	for i, e := range engines {
		tbl := fixture(t, ctx, e)
		for _, s := range shapes {
			sql := s.sql
			if strings.Contains(sql, "%[1]s") {
				sql = fmt.Sprintf(sql, tbl.Quoted())
			}
			res, err := e.DB.Query(ctx, sql, s.args...)
			if err != nil {
				t.Fatalf("%s: %s: %v", e.Name, s.name, err)
			}
			results[i] = append(results[i], res)
		}
	}
	for j, s := range shapes {
		a, b := results[0][j], results[1][j]
		if !sameRows(a.Rows, b.Rows) {
			t.Errorf("%s: engines differ\n server:   %v\n embedded: %v", s.name, a.Rows, b.Rows)
		}
	}
	// Spot-check figures computed by hand from the fixture.
	grouped := results[0][0].Rows
	if len(grouped) != 6 {
		t.Fatalf("grouped counts: %d rows, want 6 (3 countries x 2 windows): %v", len(grouped), grouped)
	}
	var nCur, nBase int64
	for _, r := range grouped {
		if store.Str(r[1]) == "current" {
			nCur += store.Int(r[2])
		} else {
			nBase += store.Int(r[2])
		}
	}
	if nCur != 150 || nBase != 150 {
		t.Errorf("window sizes %d/%d, want 150/150", nCur, nBase)
	}
	nulls := results[0][2].Rows
	// f1 is NULL for i%7==0: 43 of 300 rows (0, 7, ..., 294); f2 is always 0.
	if store.Str(nulls[0][0]) != "f1" || store.Int(nulls[0][1]) != 43 || store.Int(nulls[1][2]) != 300 {
		t.Errorf("null counts: %v", nulls)
	}
	nan := results[0][len(shapes)-1].Rows[0]
	if !math.IsNaN(store.Float(nan[0])) || store.Int(nan[1]) != 1 || store.Int(nan[2]) != 3 {
		t.Errorf("nan handling: %v", nan)
	}
}

func sameRows(a, b [][]any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if !sameValue(a[i][j], b[i][j]) {
				return false
			}
		}
	}
	return true
}

func sameValue(x, y any) bool {
	fx, okx := x.(float64)
	fy, oky := y.(float64)
	if okx && oky {
		if math.IsNaN(fx) || math.IsNaN(fy) {
			return math.IsNaN(fx) && math.IsNaN(fy)
		}
		return math.Abs(fx-fy) <= 1e-9*math.Max(1, math.Abs(fx))
	}
	ax, okx := x.([]any)
	ay, oky := y.([]any)
	if okx && oky {
		return sameRows([][]any{ax}, [][]any{ay})
	}
	return reflect.DeepEqual(x, y)
}

func TestErrorsNameWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			tbl := fixture(t, ctx, e)
			_, err := e.DB.Query(ctx, "SELECT nosuchcol FROM "+tbl.Quoted())
			if !errors.Is(err, store.ErrUnknownColumn) || err.Error() != "unknown column nosuchcol" {
				t.Errorf("unknown column: %v", err)
			}
			_, err = e.DB.Query(ctx, "SELECT 1 FROM "+store.Table{Database: e.Database, Name: "nosuch"}.Quoted())
			if !errors.Is(err, store.ErrUnknownTable) {
				t.Errorf("unknown table: %v", err)
			}
			_, err = e.DB.Query(ctx, "SELEC 1")
			if !errors.Is(err, store.ErrSyntax) {
				t.Errorf("syntax: %v", err)
			}
		})
	}
}

func TestServerSideTimeout(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			start := time.Now()
			_, err := e.DB.Query(ctx, "SELECT count() FROM numbers(100000000000) SETTINGS max_execution_time = 1")
			if !errors.Is(err, store.ErrTimeout) {
				t.Fatalf("want ErrTimeout, got %v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("timeout took %s", d)
			}
			// The connection is usable afterwards.
			if _, err := e.DB.Query(ctx, "SELECT 1"); err != nil {
				t.Fatalf("after timeout: %v", err)
			}
		})
	}
}

func TestApplyIsIdempotentAndAddsColumns(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			tables := store.Tables{Database: e.Database, Prefix: "mlwatch_"}
			for i := 0; i < 2; i++ {
				if err := store.Apply(ctx, e.DB, e.Database, monitor.TableDefs(tables)); err != nil {
					t.Fatalf("apply %d: %v", i, err)
				}
			}
			old := store.TableDef{Name: "grow", Columns: [][2]string{{"a", "String"}}, Engine: "MergeTree ORDER BY a"}
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{old}); err != nil {
				t.Fatal(err)
			}
			grown := old
			grown.Columns = append(grown.Columns, [2]string{"b", "UInt64"}, [2]string{"c", "Array(String)"})
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{grown}); err != nil {
				t.Fatal(err)
			}
			res, err := e.DB.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = 'grow' ORDER BY name", e.Database)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != 3 || store.Str(res.Rows[2][1]) != "Array(String)" {
				t.Fatalf("columns after growth: %v", res.Rows)
			}
		})
	}
}

func TestInsertRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			tables := store.Tables{Database: e.Database, Prefix: "mlwatch_"}
			if err := store.Apply(ctx, e.DB, e.Database, monitor.TableDefs(tables)); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
			row := []any{at, "det'1", "block_rate", "fraud", "block_rate", `{"country":"FR"}`, "", "model_behavior",
				0.487, 0.006, 0.004, 0.008, math.NaN(), 1e-30, uint64(903), uint64(61008), uint8(1), "run"}
			cols := make([]string, 0, len(row))
			for _, c := range monitor.TableDefs(tables)[0].Columns {
				cols = append(cols, c[0])
			}
			if err := e.DB.Insert(ctx, tables.Evaluations(), cols, [][]any{row}); err != nil {
				t.Fatal(err)
			}
			res, err := e.DB.Query(ctx, "SELECT * FROM "+tables.Evaluations().Quoted()+" WHERE detector = ?", "det'1")
			if err != nil || len(res.Rows) != 1 {
				t.Fatalf("read back: %v %v", res, err)
			}
			got := res.Rows[0]
			if !store.Time(got[0]).Equal(at) || store.Str(got[5]) != `{"country":"FR"}` || store.Float(got[8]) != 0.487 ||
				!math.IsNaN(store.Float(got[12])) || store.Int(got[15]) != 61008 {
				t.Fatalf("round trip: %v", got)
			}
		})
	}
}
