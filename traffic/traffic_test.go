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
