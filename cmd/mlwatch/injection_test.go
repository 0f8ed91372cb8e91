package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// Hostile strings for every config string that reaches SQL. Identifiers
// are real names of real tables and columns; values are real data, so a
// detector that quotes or binds them wrong either fails or finds nothing.
var (
	hDatabase = "db`; DROP DATABASE canary_db; --" // + a suffix of the test's own
	hState    = "st' OR 1=1 --"                    // + a suffix of the test's own
	hTableA   = "p`; DROP TABLE canary; --"
	hTableB   = "q'); DROP TABLE canary; --"
	hTS       = "t`s'--"
	hReqID    = "r`id"
	hModelCol = "m'odel"
	hVersion  = "v`er\\"
	hRole     = "ro`le'"
	hScore    = "sc\\`ore"
	hDecision = "de?c"
	hCountry  = "c`o'un--try"
	hMerchant = "名前 'q' \"d\""
	hNames    = "fn`"
	hValues   = "fv' --"
	hDeployed = "dep`loyed"
	hFeat1    = "f`1; --"
	hFeat2    = "f'2 ?"
	hShScore  = "ss`"
	hShDec    = "sd' OR '1'='1"

	vModel   = "v'); DROP TABLE canary; --"
	vProd    = "pr'od"
	vShadow  = "sh`ad\\"
	vFR      = "FR'); DROP TABLE canary; --"
	vFeatA   = "it's"
	vFeatB   = "b`t\\ ?"
	vReqPref = "canary' OR '1'='1"
)

func q(name string) string { return store.MustIdent(name) }

// injectionYAML is a config whose every SQL-bound string is hostile.
func injectionYAML(hDatabase, hState string) string {
	y := func(s string) string { return fmt.Sprintf("%q", s) } // YAML double-quoted, same escapes as Go
	return fmt.Sprintf(`clickhouse: {database: %[1]s}
state: {database: %[2]s}
models:
  - name: a
    table: %[3]s
    model_value: %[4]s
    columns: {ts: %[5]s, request_id: %[6]s, model: %[7]s, model_version: %[8]s, role: %[9]s, score: %[10]s, decision: %[11]s, deployed_at: %[12]s}
    slices: [%[13]s, %[14]s]
    features: {layout: arrays, names_column: %[15]s, values_column: %[16]s}
    shadow: {mode: rows, production_role: %[17]s, shadow_role: %[18]s}
    owners: {product: team, infra: team}
  - name: b
    table: %[19]s
    model_value: %[4]s
    slices: [country]
    features: {layout: columns, names: [%[20]s, %[21]s]}
    shadow: {mode: columns, score_column: %[22]s, decision_column: %[23]s}
    owners: {product: team, infra: team}
detectors:
  - {name: a-block, kind: block_rate, model: a, baseline: {mode: previous}, min_samples: 50}
  - name: a-features
    kind: feature_health
    model: a
    baseline: {mode: previous}
    min_samples: 50
    slices: [%[13]s]
    feature_health: {features: [%[24]s, %[25]s], defaults: {%[24]s: 1, %[25]s: 2}}
  - {name: a-shadow, kind: shadow, model: a, baseline: {mode: previous}, min_samples: 50}
  - {name: a-volume, kind: volume, model: a, baseline: {mode: previous}}
  - {name: a-fresh, kind: freshness, model: a}
  - {name: a-stale, kind: staleness, model: a, staleness: {max_age: 30d}}
  - name: a-golden
    kind: expectation
    model: a
    min_samples: 10
    expectation:
      match:
        - {column: %[6]s, op: prefix, value: %[26]s}
        - {column: %[13]s, op: in, values: [%[27]s, DE]}
        - {column: %[14]s, op: ne, value: %[27]s}
      min_rate: 0.9
  - {name: b-block, kind: block_rate, model: b, baseline: {mode: previous}, min_samples: 50}
  - {name: b-features, kind: feature_health, model: b, baseline: {mode: previous}, min_samples: 50, slices: [], feature_health: {features: [%[20]s]}}
  - {name: b-shadow, kind: shadow, model: b, baseline: {mode: previous}, min_samples: 50}
receivers:
  - {name: team, webhook: {url: "http://127.0.0.1:9/hook"}}
`, y(hDatabase), y(hState), y(hDatabase+"."+hTableA), y(vModel), y(hTS), y(hReqID), y(hModelCol), y(hVersion), y(hRole), y(hScore), y(hDecision),
		y(hDeployed), y(hCountry), y(hMerchant), y(hNames), y(hValues), y(vProd), y(vShadow), y(hDatabase+"."+hTableB), y(hFeat1), y(hFeat2),
		y(hShScore), y(hShDec), y(vFeatA), y(vFeatB), y(vReqPref), y(vFR))
}

// injectionTables creates the hostile tables and fills them: 2 hours of
// production and shadow rows, an incident (production blocks 30% of the
// hostile country) in the current hour.
func injectionTables(t *testing.T, db store.Store, at time.Time, hDatabase string) {
	t.Helper()
	ctx := context.Background()
	a := store.Table{Database: hDatabase, Name: hTableA}.Quoted()
	b := store.Table{Database: hDatabase, Name: hTableB}.Quoted()
	for _, s := range []string{
		"CREATE DATABASE IF NOT EXISTS " + q(hDatabase),
		fmt.Sprintf("CREATE TABLE %s (%s DateTime, %s String, %s String, %s String, %s String, %s Float32, %s UInt8, %s Nullable(String), %s String, %s Array(String), %s Array(Nullable(Float64)), %s DateTime) ENGINE = MergeTree PARTITION BY toYYYYMMDD(%s) ORDER BY %s",
			a, q(hTS), q(hReqID), q(hModelCol), q(hVersion), q(hRole), q(hScore), q(hDecision), q(hCountry), q(hMerchant), q(hNames), q(hValues), q(hDeployed), q(hTS), q(hTS)),
		fmt.Sprintf("CREATE TABLE %s (ts DateTime, request_id String, model String, model_version String, score Float32, decision UInt8, country String, %s Nullable(Float64), %s Nullable(Float64), %s Float32, %s UInt8) ENGINE = MergeTree ORDER BY ts",
			b, q(hFeat1), q(hFeat2), q(hShScore), q(hShDec)),
	} {
		if err := db.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	from := at.Add(-2 * time.Hour)
	insA := fmt.Sprintf(`INSERT INTO %s (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
SELECT toDateTime(? + intDiv(r * 7200, 2000)), concat(?, toString(r)), ?, 'v1', if(number %% 2 = 0, ?, ?),
    (r %% 97) / 97., toUInt8(r %% 100 < if(r >= 1000 AND number %% 2 = 0 AND r %% 3 = 0, 30, 2)),
    arrayElement([CAST(? AS Nullable(String)), 'DE', 'GB'], r %% 3 + 1), ?,
    [?, ?], [if(r >= 1000 AND r %% 10 > 0, NULL, toFloat64(r %% 7)), toFloat64(r %% 11)], toDateTime(? - 86400 * 40)
FROM (SELECT number, intDiv(number, 2) AS r FROM numbers(4000))`,
		a, q(hTS), q(hReqID), q(hModelCol), q(hVersion), q(hRole), q(hScore), q(hDecision), q(hCountry), q(hMerchant), q(hNames), q(hValues), q(hDeployed))
	if err := db.Exec(ctx, insA, from, vReqPref, vModel, vProd, vShadow, vFR, "m\\'x", vFeatA, vFeatB, from); err != nil {
		t.Fatalf("insert a: %v", err)
	}
	insB := fmt.Sprintf(`INSERT INTO %s (ts, request_id, model, model_version, score, decision, country, %s, %s, %s, %s)
SELECT toDateTime(? + intDiv(number * 7200, 2000)), toString(number), ?, 'v1', (number %% 97) / 97., toUInt8(number %% 100 < 2),
    arrayElement(['FR', 'DE'], number %% 2 + 1), if(number >= 1000 AND number %% 10 > 0, NULL, toFloat64(number %% 7)), toFloat64(number %% 5),
    (number %% 89) / 89., toUInt8(number %% 100 < if(number >= 1000, 40, 2))
FROM numbers(2000)`, b, q(hFeat1), q(hFeat2), q(hShScore), q(hShDec))
	if err := db.Exec(ctx, insB, from, vModel); err != nil {
		t.Fatalf("insert b: %v", err)
	}
}

// TestInjectionThroughConfig puts an injection attempt in every config
// string that reaches SQL (database, table and column names, slices,
// feature names in both layouts, shadow columns and roles, the model
// value, expectation columns and values, feature defaults, the state
// database) on both engines. Every name is a real table or column and
// every value real data: the detectors must read the right rows (so the
// quoting is right, not merely harmless), mlwatch's state must round-trip
// through the hostile state database, and a canary table must survive.
func TestInjectionThroughConfig(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			hDatabase, hState := hDatabase+eng.Database, hState+eng.Database
			canary := store.Table{Database: eng.Database, Name: "canary"}
			if err := eng.DB.Exec(ctx, "CREATE TABLE "+canary.Quoted()+" (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = eng.DB.Exec(context.Background(), "DROP DATABASE IF EXISTS "+q(hDatabase))
				_ = eng.DB.Exec(context.Background(), "DROP DATABASE IF EXISTS "+q(hState))
			})
			_ = eng.DB.Exec(ctx, "DROP DATABASE IF EXISTS "+q(hDatabase))
			_ = eng.DB.Exec(ctx, "DROP DATABASE IF EXISTS "+q(hState))
			injectionTables(t, eng.DB, at, hDatabase)
			cfg, err := configs.Parse("hostile.yaml", []byte(injectionYAML(hDatabase, hState)), noEnv)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			if err := monitor.CheckColumns(ctx, eng.DB, cfg); err != nil {
				t.Fatalf("check columns: %v", err)
			}

			var findings []detectors.Finding
			for i := range cfg.Detectors {
				dc := &cfg.Detectors[i]
				det, err := detectors.New(cfg, dc)
				if err != nil {
					t.Fatal(err)
				}
				res, err := det.Evaluate(ctx, eng.DB, at)
				if err != nil {
					t.Errorf("%s: %v", dc.Name, err)
					continue
				}
				findings = append(findings, res.Findings...)
				rows, hostile := uint64(0), false
				for _, e := range res.Evaluations {
					rows += e.NCurrent
					for _, v := range e.Slice {
						hostile = hostile || v == vFR
					}
					hostile = hostile || e.Feature == vFeatA || e.Feature == vFeatB || e.Feature == hFeat1
				}
				if rows == 0 && dc.Kind != configs.KindStaleness && dc.Kind != configs.KindFreshness {
					t.Errorf("%s read no rows: the hostile names or values did not select the data", dc.Name)
				}
				switch dc.Name {
				case "a-block", "a-features", "b-features":
					if !hostile {
						t.Errorf("%s: no evaluation of the hostile slice value or feature name", dc.Name)
					}
				}
			}
			want := map[string]bool{"a-block " + vFR: false, "a-features " + vFeatA: false, "b-features " + hFeat1: false, "b-shadow": false, "a-stale": false}
			for _, f := range findings {
				for k := range want {
					name, what, _ := strings.Cut(k, " ")
					if f.Detector == name && (what == "" || f.Slice[hCountry] == what || f.Feature == what) {
						want[k] = true
					}
				}
			}
			for k, ok := range want {
				if !ok {
					t.Errorf("no finding %q: the incident behind a hostile name was missed", k)
				}
			}

			// mlwatch's own state in the hostile state database: written,
			// then read back by a fresh manager.
			mgr, err := alerts.New(alerts.Options{Config: cfg, Store: eng.DB, Now: func() time.Time { return at },
				Notifiers: map[string]alerts.Notifier{"team": alerts.NotifierFunc(func(context.Context, *alerts.Notification) (string, bool, error) { return "", false, nil })}})
			if err != nil {
				t.Fatal(err)
			}
			if err := mgr.Restore(ctx); err != nil {
				t.Fatalf("restore: %v", err)
			}
			if err := mgr.Observe(ctx, "a-block", at, findings); err != nil {
				t.Fatalf("observe: %v", err)
			}
			if _, err := mgr.Process(ctx, at.Add(time.Hour)); err != nil {
				t.Fatalf("process: %v", err)
			}
			if _, err := mgr.Deliver(ctx); err != nil {
				t.Fatalf("deliver: %v", err)
			}
			mgr2, err := alerts.New(alerts.Options{Config: cfg, Store: eng.DB, Now: func() time.Time { return at.Add(time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			if err := mgr2.Restore(ctx); err != nil {
				t.Fatalf("restore from the hostile state database: %v", err)
			}
			if n := len(mgr2.Alerts()); n == 0 || n != len(mgr.Alerts()) {
				t.Errorf("%d alerts restored from the hostile state database, want %d", n, len(mgr.Alerts()))
			}

			res, err := eng.DB.Query(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'canary'", eng.Database)
			if err != nil || store.Int(res.Rows[0][0]) != 1 {
				t.Fatalf("the canary table is gone: %v %v", res, err)
			}
			res, err = eng.DB.Query(ctx, "SELECT count() FROM system.tables WHERE database = ?", hDatabase)
			if err != nil || store.Int(res.Rows[0][0]) != 2 {
				t.Fatalf("the hostile tables are not both there: %v %v", res, err)
			}
		})
	}
}
