package monitor

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// TestQualityFromBacktest: a backtest over two FR incidents plus the
// triage people stored about them (acks 10 and 30 minutes after firing,
// one false positive, one expected) gives the expected quality row.
func TestQualityFromBacktest(t *testing.T) {
	ctx := context.Background()
	from := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, tables := engineConfig(t, e, "backtest.yaml", backtestYAML, true)
			in1, _ := traffic.ParseIncident("slice_block:+4h:+6h:FR", from)
			in2, _ := traffic.ParseIncident("slice_block:+11h:+13h:FR", from)
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: from, To: from.Add(17 * time.Hour), Rate: 300, Seed: 3, Incidents: []traffic.Incident{in1, in2}}); err != nil {
				t.Fatal(err)
			}
			to := from.Add(17 * time.Hour)
			rep, err := Backtest(ctx, BacktestOptions{Config: cfg, Store: e.DB, From: from.Add(2 * time.Hour), To: to})
			if err != nil {
				t.Fatal(err)
			}
			incidents := alerts.IncidentsFrom(rep.Notifications)
			var fr []alerts.Incident
			for _, in := range incidents {
				if strings.Contains(rep.Fired[in.Fingerprint].Labels["slice"], "country=FR") {
					fr = append(fr, in)
				}
			}
			if len(fr) != 2 {
				t.Fatalf("FR incidents: %+v (all: %+v)", fr, incidents)
			}
			log := alerts.NewTriageLog(e.DB, tables)
			act := func(in alerts.Incident, kind string, after time.Duration, user string) {
				if _, err := log.Record(ctx, alerts.Action{At: in.FiredAt.Add(after), Action: kind, Fingerprint: in.Fingerprint, AlertActiveAt: in.ActiveAt,
					Detector: in.Detector, Class: in.Class, UserID: "U0" + strings.ToUpper(user), UserName: user, Transport: "socket_mode"}); err != nil {
					t.Fatal(err)
				}
			}
			act(fr[0], alerts.ActionAck, 10*time.Minute, "ana")
			act(fr[0], alerts.ActionAck, 12*time.Minute, "bob") // a second ack: the first one counts
			act(fr[0], alerts.ActionFalsePositive, 15*time.Minute, "ana")
			act(fr[1], alerts.ActionAck, 30*time.Minute, "bob")
			act(fr[1], alerts.ActionFalsePositive, 31*time.Minute, "bob")
			act(fr[1], alerts.ActionExpected, 40*time.Minute, "ana") // the latest verdict counts
			actions, err := log.List(ctx, from, "")
			if err != nil || len(actions) != 6 {
				t.Fatalf("stored actions: %d %v", len(actions), err)
			}
			rows := alerts.Quality(incidents, actions, alerts.QualityOptions{From: from.Add(2 * time.Hour), To: to, ConfigPath: "backtest.yaml"})
			var row *alerts.QualityRow
			for i := range rows {
				if rows[i].Detector == "block" && rows[i].Class == fr[0].Class {
					row = &rows[i]
				}
			}
			if row == nil {
				t.Fatalf("no row for block/%s: %+v", fr[0].Class, rows)
			}
			n := 0
			for _, in := range incidents {
				if in.Class == fr[0].Class {
					n++
				}
			}
			near := func(a alerts.Number, b float64) bool { return math.Abs(float64(a)-b) < 1e-9 }
			if row.Alerts != n || row.Acked != 2 || !near(row.AckedShare, 2/float64(n)) ||
				!near(row.AckMedian, 20*60) || !near(row.AckP90, 28*60) ||
				row.FalsePositive != 1 || row.Expected != 1 || !near(row.FPShare, 1/float64(n)) || row.Flag != "" ||
				!near(row.PagesPerWeek, float64(row.Pages)/(15.0/(24*7))) {
				t.Fatalf("quality row: %+v (incidents %d)", *row, n)
			}
			// Without triage (what the backtest itself prints): counts only.
			bare := alerts.Quality(incidents, nil, alerts.QualityOptions{From: from.Add(2 * time.Hour), To: to})
			for _, r := range bare {
				if r.Acked != 0 || !math.IsNaN(float64(r.AckMedian)) || r.FalsePositive != 0 {
					t.Errorf("backtest quality without triage: %+v", r)
				}
			}
		})
	}
}
