package traffic_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

var from = time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC) // a Monday

func model(t *testing.T, database string) *configs.Model {
	t.Helper()
	cfg, err := configs.Load("../configs/example.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Models[0]
	m.Table = database + ".predictions"
	return &m
}

func generate(t *testing.T, e storetest.Engine, seed uint64, ins ...string) *configs.Model {
	t.Helper()
	return generateFor(t, e, 24*time.Hour, seed, ins...)
}

func generateFor(t *testing.T, e storetest.Engine, span time.Duration, seed uint64, ins ...string) *configs.Model {
	t.Helper()
	ctx := context.Background()
	if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
		t.Fatal(err)
	}
	var incidents []traffic.Incident
	for _, s := range ins {
		in, err := traffic.ParseIncident(s, from)
		if err != nil {
			t.Fatal(err)
		}
		incidents = append(incidents, in)
	}
	m := model(t, e.Database)
	_, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: m, From: from, To: from.Add(span), Rate: 300, Seed: seed, Incidents: incidents, Concurrency: 2})
	if err != nil {
		t.Fatalf("%s: %v", e.Name, err)
	}
	return m
}

func one(t *testing.T, db store.Store, q string, args ...any) []any {
	t.Helper()
	res, err := db.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("%d rows from %s", len(res.Rows), q)
	}
	return res.Rows[0]
}

func between(t *testing.T, what string, got, lo, hi float64) {
	t.Helper()
	if !(got >= lo && got <= hi) {
		t.Errorf("%s = %.5g, want in [%g, %g]", what, got, lo, hi)
	}
}

func TestQuietTraffic(t *testing.T) {
	var checksums []string
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			generate(t, e, 7)
			tbl := e.Database + ".predictions"
			r := one(t, e.DB, fmt.Sprintf(`SELECT countIf(role = 'production'), countIf(role = 'shadow'),
				avgIf(decision, role = 'production'), avgIf(decision, role = 'shadow'),
				uniqExact(country), uniqExact(merchant_category), max(length(feature_names)),
				avgIf(startsWith(request_id, 'canary-'), role = 'production'),
				sum(cityHash64(request_id, role, score, decision, country)) FROM %s`, tbl))
			nProd, nShadow := store.Int(r[0]), store.Int(r[1])
			if nProd != nShadow {
				t.Errorf("production %d rows, shadow %d: each request logs both", nProd, nShadow)
			}
			between(t, "requests per minute", float64(nProd)/1440, 240, 330)
			between(t, "production block rate", store.Float(r[2]), 0.006, 0.016)
			between(t, "shadow block rate", store.Float(r[3]), 0.006, 0.016)
			if store.Int(r[4]) != 30 || store.Int(r[5]) != 8 || store.Int(r[6]) != 20 {
				t.Errorf("countries %v, merchant categories %v, features %v; want 30, 8, 20", r[4], r[5], r[6])
			}
			between(t, "canary share", store.Float(r[7]), 0.001, 0.003)
			checksums = append(checksums, store.Str(r[8]))

			nulls := one(t, e.DB, fmt.Sprintf(`SELECT min(rate), max(rate) FROM (
				SELECT name, avg(isNull(v)) AS rate FROM %s ARRAY JOIN feature_names AS name, feature_values AS v GROUP BY name)`, tbl))
			between(t, "lowest feature null rate", store.Float(nulls[0]), 0.003, 0.007)
			between(t, "highest feature null rate", store.Float(nulls[1]), 0.003, 0.007)

			// Daily seasonality in local time: within one country the busiest
			// hour carries several times the quietest; across time zones the
			// aggregate curve is flatter but still seasonal.
			season := one(t, e.DB, fmt.Sprintf(`SELECT max(n) / min(n) FROM (
				SELECT toHour(ts) AS h, count() AS n FROM %s WHERE role = 'production' AND country = 'US' GROUP BY h)`, tbl))
			between(t, "US peak/trough hourly volume", store.Float(season[0]), 2.5, 8)
			season = one(t, e.DB, fmt.Sprintf(`SELECT max(n) / min(n) FROM (
				SELECT toHour(ts) AS h, count() AS n FROM %s WHERE role = 'production' GROUP BY h)`, tbl))
			between(t, "aggregate peak/trough hourly volume", store.Float(season[0]), 1.5, 4)

			// Volume is skewed across countries.
			skew := one(t, e.DB, fmt.Sprintf(`SELECT max(n) / min(n) FROM (
				SELECT country, count() AS n FROM %s WHERE role = 'production' GROUP BY country)`, tbl))
			between(t, "largest/smallest country volume", store.Float(skew[0]), 30, 200)

			// Production and shadow scores of one request are correlated.
			corr := one(t, e.DB, fmt.Sprintf(`SELECT corr(p, s) FROM (
				SELECT request_id, anyIf(score, role = 'production') AS p, anyIf(score, role = 'shadow') AS s
				FROM %s GROUP BY request_id)`, tbl))
			between(t, "production/shadow score correlation", store.Float(corr[0]), 0.7, 0.99)
		})
	}
	if len(checksums) == 2 && checksums[0] != checksums[1] {
		t.Errorf("the same seed gave different rows on the two engines: %s vs %s", checksums[0], checksums[1])
	}
}

func TestDeterministicForASeed(t *testing.T) {
	e := storetest.Engines(t)[0]
	sum := func(seed uint64) string {
		generateFor(t, e, 6*time.Hour, seed)
		r := one(t, e.DB, "SELECT sum(cityHash64(request_id, score, country)) FROM "+store.MustIdent(e.Database)+".predictions")
		if err := e.DB.Exec(context.Background(), "TRUNCATE TABLE "+store.MustIdent(e.Database)+".predictions"); err != nil {
			t.Fatal(err)
		}
		return store.Str(r[0])
	}
	a, b, c := sum(3), sum(3), sum(4)
	if a != b {
		t.Errorf("seed 3 twice: %s vs %s", a, b)
	}
	if a == c {
		t.Errorf("seeds 3 and 4 gave the same rows")
	}
}

// With an Origin, a run over part of a range inserts exactly the rows the
// run over the whole range inserts there; without one, other rows.
func TestOriginKeepsTheRowsOfAPart(t *testing.T) {
	e := storetest.Engines(t)[0]
	ctx := context.Background()
	if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("whole"), store.PredictionsDef("part"), store.PredictionsDef("other")}); err != nil {
		t.Fatal(err)
	}
	m := model(t, e.Database)
	gen := func(table string, a, b, origin time.Time) string {
		t.Helper()
		tm := *m
		tm.Table = e.Database + "." + table
		if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &tm, From: a, To: b, Rate: 60, Seed: 5, Origin: origin}); err != nil {
			t.Fatal(err)
		}
		r := one(t, e.DB, "SELECT count(), sum(cityHash64(request_id, role, ts, score, decision, country)) FROM "+store.MustIdent(e.Database)+"."+table+
			" WHERE ts >= ? AND ts < ?", from.Add(time.Hour), from.Add(2*time.Hour))
		if store.Int(r[0]) == 0 {
			t.Fatalf("%s: no rows in the second hour", table)
		}
		return store.Str(r[1])
	}
	whole := gen("whole", from, from.Add(2*time.Hour), time.Time{})
	if part := gen("part", from.Add(time.Hour), from.Add(2*time.Hour), from); part != whole {
		t.Errorf("the second hour with origin %s: checksum %s, the whole run's %s", from.Format(time.RFC3339), part, whole)
	}
	if other := gen("other", from.Add(time.Hour), from.Add(2*time.Hour), time.Time{}); other == whole {
		t.Errorf("the second hour without an origin has the whole run's rows: the test tells nothing")
	}
	if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: m, From: from, To: from.Add(time.Hour), Rate: 60, Seed: 5, Origin: from.Add(time.Minute)}); err == nil || !strings.Contains(err.Error(), "origin") {
		t.Errorf("an origin after From: err %v, want one naming the origin", err)
	}
}

func TestIncidentsAreVisible(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			generate(t, e, 11,
				"slice_block:+2h:+4h:FR",
				"null_spike:+5h:+6h:device_age_days",
				"default_fill:+7h:+8h:ip_risk_score",
				"world_shift:+9h:+12h:BR",
				"outage:+13h:+14h",
				"shadow_divergence:+15h:+16h:0.2",
				"outage:+18h:+19h:US",
				"shadow_outage:+20h:+21h",
			)
			tbl := e.Database + ".predictions"
			in := func(a, b int) string {
				return fmt.Sprintf("ts >= toDateTime(%d) AND ts < toDateTime(%d)", from.Add(time.Duration(a)*time.Hour).Unix(), from.Add(time.Duration(b)*time.Hour).Unix())
			}
			rate := func(what, where string) float64 {
				return store.Float(one(t, e.DB, fmt.Sprintf("SELECT avg(%s) FROM %s WHERE %s", what, tbl, where))[0])
			}
			// slice_block: production blocks about half of FR; shadow does not.
			between(t, "FR production block rate in the incident", rate("decision", "country = 'FR' AND role = 'production' AND "+in(2, 4)), 0.4, 0.6)
			between(t, "FR shadow block rate in the incident", rate("decision", "country = 'FR' AND role = 'shadow' AND "+in(2, 4)), 0, 0.03)
			between(t, "FR production block rate after", rate("decision", "country = 'FR' AND role = 'production' AND "+in(4, 6)), 0, 0.03)
			between(t, "DE production block rate in the incident", rate("decision", "country = 'DE' AND role = 'production' AND "+in(2, 4)), 0, 0.03)
			// null_spike: the feature is mostly NULL, the others are not.
			feature := func(name, cond, where string) float64 {
				return store.Float(one(t, e.DB, fmt.Sprintf("SELECT avg(%s) FROM %s ARRAY JOIN feature_names AS name, feature_values AS v WHERE name = '%s' AND %s", cond, tbl, name, where))[0])
			}
			between(t, "device_age_days null rate in the spike", feature("device_age_days", "isNull(v)", in(5, 6)), 0.85, 0.95)
			between(t, "device_age_days null rate before", feature("device_age_days", "isNull(v)", in(3, 5)), 0, 0.01)
			between(t, "card_age_days null rate in the spike", feature("card_age_days", "isNull(v)", in(5, 6)), 0, 0.01)
			// default_fill: the feature is mostly 0.
			between(t, "ip_risk_score zero share in the fill", feature("ip_risk_score", "ifNull(v = 0, 0)", in(7, 8)), 0.85, 0.95)
			between(t, "ip_risk_score zero share before", feature("ip_risk_score", "ifNull(v = 0, 0)", in(5, 7)), 0, 0.01)
			// world_shift: both models block more in BR.
			prodBR := rate("decision", "country = 'BR' AND role = 'production' AND "+in(9, 12))
			shadowBR := rate("decision", "country = 'BR' AND role = 'shadow' AND "+in(9, 12))
			baseBR := rate("decision", "country = 'BR' AND role = 'production' AND "+in(0, 9))
			if !(prodBR > 5*baseBR && shadowBR > 5*baseBR && prodBR > 0.05) {
				t.Errorf("world_shift: BR production %.4f, shadow %.4f, before %.4f", prodBR, shadowBR, baseBR)
			}
			// outage: no rows.
			if n := store.Int(one(t, e.DB, fmt.Sprintf("SELECT count() FROM %s WHERE %s", tbl, in(13, 14)))[0]); n != 0 {
				t.Errorf("outage: %d rows", n)
			}
			// outage of one country: none of its rows, the others' still.
			if n := store.Int(one(t, e.DB, fmt.Sprintf("SELECT count() FROM %s WHERE country = 'US' AND %s", tbl, in(18, 19)))[0]); n != 0 {
				t.Errorf("US outage: %d US rows", n)
			}
			if n := store.Int(one(t, e.DB, fmt.Sprintf("SELECT count() FROM %s WHERE country != 'US' AND %s", tbl, in(18, 19)))[0]); n < 1000 {
				t.Errorf("US outage: %d rows from other countries", n)
			}
			// shadow_outage: production rows only.
			if n := store.Int(one(t, e.DB, fmt.Sprintf("SELECT count() FROM %s WHERE role = 'shadow' AND %s", tbl, in(20, 21)))[0]); n != 0 {
				t.Errorf("shadow outage: %d shadow rows", n)
			}
			if n := store.Int(one(t, e.DB, fmt.Sprintf("SELECT count() FROM %s WHERE role = 'production' AND %s", tbl, in(20, 21)))[0]); n < 1000 {
				t.Errorf("shadow outage: %d production rows", n)
			}
			// shadow_divergence: about 20%% of decisions flip.
			dis := store.Float(one(t, e.DB, fmt.Sprintf(`SELECT avg(p != s) FROM (
				SELECT request_id, anyIf(decision, role = 'production') AS p, anyIf(decision, role = 'shadow') AS s
				FROM %s WHERE %s GROUP BY request_id)`, tbl, in(15, 16)))[0])
			between(t, "disagreement in the divergence", dis, 0.15, 0.25)
			disBefore := store.Float(one(t, e.DB, fmt.Sprintf(`SELECT avg(p != s) FROM (
				SELECT request_id, anyIf(decision, role = 'production') AS p, anyIf(decision, role = 'shadow') AS s
				FROM %s WHERE %s GROUP BY request_id)`, tbl, in(16, 24)))[0])
			between(t, "disagreement after", disBefore, 0, 0.02)
			if math.IsNaN(dis) {
				t.Error("no pairs")
			}
		})
	}
}

func TestParseIncident(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in  string
		err string
	}{
		{"slice_block:2026-11-05T10:00:00Z:2026-11-05T13:00:00Z:FR", ""},
		{"null_spike:+5d:+5d2h", ""},
		{"outage:+1h:+2h", ""},
		{"shadow_divergence:+1h:+2h:0.3", ""},
		{"slice_block:+1h:+2h:XX", "unknown country"},
		{"null_spike:+1h:+2h:nope", "unknown feature"},
		{"meteor:+1h:+2h", "unknown kind"},
		{"outage:+2h:+1h", "end must be after start"},
		{"outage:+1h:+2h:US", ""},
		{"outage:+1h:+2h:x", "unknown country"},
		{"shadow_outage:+1h:+2h", ""},
		{"shadow_outage:+1h:+2h:x", "takes no argument"},
		{"shadow_divergence:+1h:+2h:2", "must be a number in (0, 1]"},
		{"slice_block:tomorrow:+2h", "want KIND:START:END"},
		{"category_block:+1h:+2h", ""},
		{"category_block:+1h:+2h:gaming:0.3", ""},
		{"category_block:+1h:+2h:pets", "unknown merchant category"},
		{"category_block:+1h:+2h:gaming:1.5", "must be a number in (0, 1]"},
		{"version_rollout:+1h:+2h", ""},
		{"version_rollout:+1h:+2h:v8:2.5", ""},
		{"version_rollout:+1h:+2h:fraud-2026.09.1", "must be non-empty and differ"},
		{"version_rollout:+1h:+2h:v8:x", "block-rate factor"},
		{"cascade:+1h:+2h:ip_risk_score", ""},
		{"cascade:+1h:+2h:nope", "unknown feature"},
		{"canary_fail:+1h:+2h", ""},
		{"canary_fail:+1h:+2h:US", "takes no argument"},
		{"ramp:+1d:+4d:BR", ""},
		{"ramp:+1d:+4d:BR:3", ""},
		{"ramp:+1d:+4d:XX", "unknown country"},
		{"ramp:+1d:+4d:BR:0", "final block-rate factor"},
	} {
		_, err := traffic.ParseIncident(tc.in, base)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseIncident(%q) = %v, want error %q", tc.in, err, tc.err)
		}
	}
	in, _ := traffic.ParseIncident("slice_block:+5d10h:+5d13h", base)
	if in.Arg != "FR" || !in.Start.Equal(base.Add(130*time.Hour)) {
		t.Errorf("defaults/offsets: %+v", in)
	}
}

// The incident kinds of issue 11, each checked by direct SQL: the fault
// shows where it should (production or shadow, the slice, the window) and
// nowhere else.
func TestIssue11IncidentsAreVisible(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			generate(t, e, 19,
				"category_block:+1h:+3h:digital_goods",
				"outage:+1h:+2h:NZ",
				"version_rollout:+4h:+7h:fraud-v8",
				"outage:+5h:+6h:CH",
				"cascade:+8h:+9h:device_age_days",
				"canary_fail:+10h:+12h",
				"ramp:+13h:+23h:US:4",
			)
			tbl := e.Database + ".predictions"
			at := func(d time.Duration) string { return fmt.Sprintf("toDateTime(%d)", from.Add(d).Unix()) }
			in := func(a, b time.Duration) string { return fmt.Sprintf("ts >= %s AND ts < %s", at(a), at(b)) }
			h := time.Hour
			avg := func(what, where string) float64 {
				return store.Float(one(t, e.DB, fmt.Sprintf("SELECT avg(%s) FROM %s WHERE %s", what, tbl, where))[0])
			}
			count := func(where string) int64 {
				return store.Int(one(t, e.DB, fmt.Sprintf("SELECT count() FROM %s WHERE %s", tbl, where))[0])
			}
			quiet := "(" + in(0, h) + " OR " + in(12*h, 13*h) + ")"
			prod, shadow := "role = 'production' AND ", "role = 'shadow' AND "

			// category_block: production blocks about half of digital_goods
			// (share 0.5 on top of its own ~4%); shadow and other categories do not.
			between(t, "digital_goods production block rate in the incident", avg("decision", prod+"merchant_category = 'digital_goods' AND "+in(h, 3*h)), 0.45, 0.6)
			between(t, "digital_goods shadow block rate in the incident", avg("decision", shadow+"merchant_category = 'digital_goods' AND "+in(h, 3*h)), 0, 0.08)
			between(t, "grocery production block rate in the incident", avg("decision", prod+"merchant_category = 'grocery' AND "+in(h, 3*h)), 0, 0.02)
			between(t, "digital_goods production block rate after", avg("decision", prod+"merchant_category = 'digital_goods' AND "+in(3*h, 4*h)), 0, 0.08)

			// version_rollout: the new version takes ~94% of production rows
			// within minutes, blocks ~3x as much; shadow keeps its version.
			between(t, "fraud-v8 share of production rows in the rollout", avg("model_version = 'fraud-v8'", prod+in(4*h+10*time.Minute, 7*h)), 0.92, 0.96)
			between(t, "fraud-v8 share in its first 2 minutes", avg("model_version = 'fraud-v8'", prod+in(4*h, 4*h+2*time.Minute)), 0.05, 0.5)
			if n := count("model_version = 'fraud-v8' AND NOT (" + in(4*h, 7*h) + ")"); n != 0 {
				t.Errorf("%d fraud-v8 rows outside the rollout", n)
			}
			if n := count("model_version = 'fraud-v8' AND role = 'shadow'"); n != 0 {
				t.Errorf("%d shadow rows on the production rollout's version", n)
			}
			before := avg("decision", prod+quiet)
			between(t, "production block rate in the rollout / quiet", avg("decision", prod+in(4*h+10*time.Minute, 7*h))/before, 2.2, 3.6)
			between(t, "fraud-v8 block rate / old version's in the rollout",
				avg("decision", prod+"model_version = 'fraud-v8' AND NOT startsWith(request_id, 'canary-') AND "+in(4*h+10*time.Minute, 7*h))/
					avg("decision", prod+"model_version != 'fraud-v8' AND NOT startsWith(request_id, 'canary-') AND "+in(4*h+10*time.Minute, 7*h)), 2, 5)
			between(t, "shadow block rate in the rollout / quiet", avg("decision", shadow+in(4*h, 7*h))/avg("decision", shadow+quiet), 0.7, 1.4)

			// cascade: the feature is mostly NULL in both roles; production
			// blocks many of those rows, shadow does not.
			nullRows := "arrayExists((n, v) -> n = 'device_age_days' AND isNull(v), feature_names, feature_values)"
			between(t, "device_age_days null share in the cascade", avg(nullRows, prod+in(8*h, 9*h)), 0.85, 0.95)
			between(t, "production block rate of NULL rows in the cascade", avg("decision", prod+nullRows+" AND "+in(8*h, 9*h)), 0.1, 0.35)
			between(t, "shadow block rate of NULL rows in the cascade", avg("decision", shadow+nullRows+" AND "+in(8*h, 9*h)), 0, 0.03)
			between(t, "production block rate of other rows in the cascade", avg("decision", prod+"NOT "+nullRows+" AND "+in(8*h, 9*h)), 0, 0.03)
			between(t, "device_age_days null share after", avg(nullRows, prod+in(9*h, 10*h)), 0, 0.01)

			// canary_fail: canaries exist in quiet traffic and are blocked;
			// in the incident production stops blocking them, shadow not.
			canary := "startsWith(request_id, 'canary-') AND "
			if n := count(prod + canary + quiet); n < 50 {
				t.Errorf("%d production canary rows in 2 quiet hours", n)
			}
			between(t, "production canary block rate, quiet", avg("decision", prod+canary+quiet), 0.95, 1)
			between(t, "production canary block rate in canary_fail", avg("decision", prod+canary+in(10*h, 12*h)), 0, 0.1)
			between(t, "shadow canary block rate in canary_fail", avg("decision", shadow+canary+in(10*h, 12*h)), 0.95, 1)
			between(t, "production non-canary block rate in canary_fail / quiet",
				avg("decision", prod+"NOT "+canary+in(10*h, 12*h))/avg("decision", prod+"NOT "+canary+quiet), 0.6, 1.5)

			// ramp: US production rises linearly, 1x at +13h to 4x at +23h;
			// the shadow and other countries stay.
			usBefore := avg("decision", prod+"country = 'US' AND NOT startsWith(request_id, 'canary-') AND "+quiet)
			usRate := func(a, b time.Duration, role string) float64 {
				return avg("decision", role+"country = 'US' AND NOT startsWith(request_id, 'canary-') AND "+in(a, b))
			}
			between(t, "US production ramp, first hour / quiet", usRate(13*h, 14*h, prod)/usBefore, 0.6, 1.7)
			between(t, "US production ramp, middle hours / quiet", usRate(17*h, 19*h, prod)/usBefore, 1.9, 3.2)
			between(t, "US production ramp, last hours / quiet", usRate(21*h, 23*h, prod)/usBefore, 2.9, 4.6)
			between(t, "US production after the ramp / quiet", usRate(23*h, 24*h, prod)/usBefore, 0.5, 1.7)
			between(t, "US shadow in the ramp's last hours / quiet",
				usRate(21*h, 23*h, shadow)/avg("decision", shadow+"country = 'US' AND NOT startsWith(request_id, 'canary-') AND "+quiet), 0.6, 1.6)
			between(t, "DE production in the ramp's last hours / quiet",
				avg("decision", prod+"country = 'DE' AND "+in(17*h, 23*h))/avg("decision", prod+"country = 'DE' AND "+quiet), 0.3, 2.2)

			// outage of a small (NZ) and a mid-size (CH) country: none of its
			// rows, which it had before and after.
			for _, o := range []struct {
				country string
				start   time.Duration
			}{{"NZ", h}, {"CH", 5 * h}} {
				if n := count(fmt.Sprintf("country = '%s' AND %s", o.country, in(o.start, o.start+h))); n != 0 {
					t.Errorf("%s outage: %d rows", o.country, n)
				}
				if n := count(fmt.Sprintf("country = '%s' AND %s", o.country, in(o.start+h, o.start+2*h))); n < 50 {
					t.Errorf("%s after its outage: %d rows", o.country, n)
				}
			}
		})
	}
}
