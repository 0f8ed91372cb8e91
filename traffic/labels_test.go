package traffic_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// TestLabels generates a day at a low rate with labels and checks the
// ground truth against the scores (production is calibrated: a request
// with score p is fraud with probability about p), the delays and the
// coverage, and the incidents of labels.go.
func TestLabels(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			m := model(t, e.Database)
			m.Labels = &configs.Labels{Table: e.Database + ".labels", Maturity: configs.Duration(30 * 24 * time.Hour),
				Columns: configs.LabelColumns{RequestID: "request_id", Label: "label", LabeledAt: "labeled_at"}}
			defs := []store.TableDef{store.PredictionsDef("predictions"), store.LabelsDef("labels", "request_id", "label", "labeled_at")}
			if err := store.Apply(ctx, e.DB, e.Database, defs); err != nil {
				t.Fatal(err)
			}
			var ins []traffic.Incident
			for _, s := range []string{"labels_stop:+40d:+90d", "model_blind:+4h:+6h", "shadow_country_block:+6h:+9h:FR"} {
				in, err := traffic.ParseIncident(s, from)
				if err != nil {
					t.Fatal(err)
				}
				ins = append(ins, in)
			}
			to := from.Add(12 * time.Hour)
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: m, From: from, To: to, Rate: 80, Seed: 3, Incidents: ins, Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			if err := traffic.GenerateLabels(ctx, e.DB, traffic.LabelOptions{Model: m, From: from, To: to, Incidents: ins}); err != nil {
				t.Fatal(err)
			}
			p := e.Database + ".predictions"
			l := e.Database + ".labels"
			// Every label belongs to a production request, once.
			r := one(t, e.DB, "SELECT count(), uniqExact(request_id), countIf(request_id NOT IN (SELECT request_id FROM "+p+" WHERE role = 'production')) FROM "+l)
			n := float64(store.Int(r[0]))
			if store.Int(r[1]) != store.Int(r[0]) || store.Int(r[2]) != 0 {
				t.Errorf("labels %v: want one per production request id", r)
			}
			// Calibration outside incidents: among requests scored in
			// [0.5, 1) the fraud share is near their mean score; below
			// 0.05 it is small.
			q := "SELECT avgIf(y, s >= 0.5), avgIf(s, s >= 0.5), countIf(s >= 0.5), avgIf(y, s < 0.05), avg(y), count(), " +
				"quantileExactIf(0.5)(d, y = 1), quantileExactIf(0.5)(d, y = 0), countIf(d > 14 * 86400) / count(), max(d) " +
				"FROM (SELECT s, y, toInt64(toUInt32(lat)) - toInt64(toUInt32(ts)) AS d " +
				"FROM (SELECT request_id, score AS s, ts FROM " + p + " WHERE role = 'production' AND (ts < ? OR ts >= ?)) AS q " +
				"ANY INNER JOIN (SELECT request_id, label AS y, labeled_at AS lat FROM " + l + ") AS l USING request_id)"
			r = one(t, e.DB, q, from.Add(4*time.Hour), from.Add(9*time.Hour))
			t.Logf("%s: %v labels; precision@0.5 %.3f vs mean score %.3f (n=%d), fraud below 0.05: %.4f, fraud rate %.4f (n=%d), median delay fraud %.1fd good %.1fd, >14d %.3f, max %.1fd",
				e.Name, n, store.Float(r[0]), store.Float(r[1]), store.Int(r[2]), store.Float(r[3]), store.Float(r[4]), store.Int(r[5]),
				store.Float(r[6])/86400, store.Float(r[7])/86400, store.Float(r[8]), store.Float(r[9])/86400)
			between(t, "precision at 0.5 less mean score", store.Float(r[0])-store.Float(r[1]), -0.1, 0.1)
			between(t, "fraud share below score 0.05", store.Float(r[3]), 0, 0.03)
			between(t, "fraud rate", store.Float(r[4]), 0.005, 0.06)
			between(t, "median fraud delay (days)", store.Float(r[6])/86400, 2.5, 3.5)
			between(t, "median good delay (days)", store.Float(r[7])/86400, 0.8, 1.2)
			between(t, "share of delays over 14 days", store.Float(r[8]), 0.002, 0.08)
			between(t, "longest delay (days)", store.Float(r[9])/86400, 14, 90)
			// Coverage: labelled share of the production requests before
			// any incident.
			r = one(t, e.DB, "SELECT countIf(has_label), count() FROM (SELECT request_id FROM "+p+" WHERE role = 'production' AND ts < ?) AS q "+
				"ANY LEFT JOIN (SELECT request_id, toUInt8(1) AS has_label FROM "+l+") AS l USING request_id", from.Add(4*time.Hour))
			between(t, "label coverage", store.Float(r[0])/store.Float(r[1]), traffic.LabelCoverage-0.01, traffic.LabelCoverage+0.01)
			// labels_stop: nothing arrived in the window.
			r = one(t, e.DB, "SELECT count() FROM "+l+" WHERE labeled_at >= ?", from.Add(40*24*time.Hour))
			if store.Int(r[0]) != 0 {
				t.Errorf("%d labels arrived during labels_stop", store.Int(r[0]))
			}
			// model_blind: production blocks far less, the shadow does not.
			rate := "SELECT avgIf(decision, role = 'production'), avgIf(decision, role = 'shadow') FROM " + p + " WHERE ts >= ? AND ts < ?"
			quiet := one(t, e.DB, rate, from, from.Add(4*time.Hour))
			blind := one(t, e.DB, rate, from.Add(4*time.Hour), from.Add(6*time.Hour))
			if !(store.Float(blind[0]) < 0.5*store.Float(quiet[0])) || !(store.Float(blind[1]) > 0.7*store.Float(quiet[1])) {
				t.Errorf("model_blind: block rates %v, quiet %v: want production's cut by most, the shadow's kept", blind, quiet)
			}
			// shadow_country_block: the shadow blocks most of FR.
			r = one(t, e.DB, "SELECT avgIf(decision, role = 'shadow' AND country = 'FR'), avgIf(decision, role = 'production' AND country = 'FR') FROM "+p+" WHERE ts >= ? AND ts < ?",
				from.Add(6*time.Hour), from.Add(9*time.Hour))
			between(t, "shadow block rate in FR", store.Float(r[0]), 0.75, 0.85)
			between(t, "production block rate in FR", store.Float(r[1]), 0, 0.05)
		})
	}
}

func TestLabelIncidentArgs(t *testing.T) {
	for _, c := range []struct{ spec, err string }{
		{"labels_stop:+1h:+2h:FR", "takes no argument"},
		{"model_blind:+1h:+2h:XX", `unknown country "XX"`},
		{"shadow_country_block:+1h:+2h:XX", `unknown country "XX"`},
	} {
		_, err := traffic.ParseIncident(c.spec, from)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want %q", c.spec, err, c.err)
		}
	}
	in, err := traffic.ParseIncident("shadow_country_block:+1h:+2h", from)
	if err != nil || in.Arg != "FR" {
		t.Errorf("default country: %+v, %v", in, err)
	}
}
