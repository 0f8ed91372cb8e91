package monitor

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

const backtestYAML = `
clickhouse: {database: %DB%}
state: {database: %DB%}
global: {group_wait: 30s}
models:
  - name: fraud
    table: %DB%.predictions
    slices: [country]
    owners: {product: p, infra: i}
detectors:
  - name: block
    kind: block_rate
    model: fraud
    schedule: "@hourly"
    window: 1h
    baseline: {mode: previous}
    keep_firing_for: 1h
    block_rate: {score_psi: false}
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/p"}
  - name: i
    webhook: {url: "http://127.0.0.1:1/i"}
`

// TestBacktest replays ten hours with a two-hour FR incident: the replay
// notifies once when it starts and once when it ends (keep_firing_for
// holds the alert one extra evaluation), counts the page, and writes its
// evaluations for the charts without touching alert state tables.
func TestBacktest(t *testing.T) {
	ctx := context.Background()
	from := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, tables := engineConfig(t, e, "backtest.yaml", backtestYAML, true)
			in, _ := traffic.ParseIncident("slice_block:+6h:+8h:FR", from)
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: from, To: from.Add(11 * time.Hour), Rate: 300, Seed: 3, Incidents: []traffic.Incident{in}}); err != nil {
				t.Fatal(err)
			}
			rep, err := Backtest(ctx, BacktestOptions{Config: cfg, Store: e.DB, Record: e.DB, From: from.Add(2 * time.Hour), To: from.Add(11 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, n := range rep.Notifications {
				kinds = append(kinds, n.CreatedAt.Format("15:04")+" "+n.Kind)
				for _, a := range n.Alerts {
					if a.Slice["country"] != "FR" && len(a.Slice) != 0 {
						t.Errorf("alert on an unaffected slice: %s", a.Summary)
					}
				}
			}
			got := strings.Join(kinds, ", ")
			// Runs at 03:00..11:00. The incident fills the windows ending
			// 07:00 and 08:00; at 09:00 the previous-hour baseline still
			// holds the incident, so the drop back is a change too; 10:00 is
			// clear and keep_firing_for holds the alert until 11:00.
			if got != "07:00 firing, 11:00 resolved" {
				t.Errorf("notifications: %s", got)
			}
			if len(rep.Detectors) != 1 || rep.Detectors[0].Runs != 9 || rep.Detectors[0].Pages < 1 || rep.Detectors[0].Failed != 0 {
				t.Errorf("summary: %+v", rep.Detectors)
			}
			// The same replay through incremental evaluation, turned on by
			// the config (global.incremental, its tables in TableDefs):
			// the same notifications, and the partials were filled.
			icfg, err := configs.Parse("backtest.yaml", []byte(strings.ReplaceAll(strings.ReplaceAll(backtestYAML, "%DB%", e.Database), "global: {group_wait: 30s}",
				"global: {group_wait: 30s, incremental: {enabled: true}}")), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			irep, err := Backtest(ctx, BacktestOptions{Config: icfg, Store: e.DB, From: from.Add(2 * time.Hour), To: from.Add(11 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			var ikinds []string
			for _, n := range irep.Notifications {
				ikinds = append(ikinds, n.CreatedAt.Format("15:04")+" "+n.Kind)
			}
			if g := strings.Join(ikinds, ", "); g != got {
				t.Errorf("incremental backtest notifications: %s; raw: %s", g, got)
			}
			fills, err := e.DB.Query(ctx, "SELECT count() FROM "+store.Table{Database: e.Database, Name: tables.Partials().Name + "_fills"}.Quoted())
			if err != nil || store.Int(fills.Rows[0][0]) == 0 {
				t.Errorf("global.incremental: no partials filled: %v %v", fills, err)
			}
			res, err := e.DB.Query(ctx, "SELECT count(), countIf(firing = 1) FROM "+tables.Evaluations().Quoted()+" WHERE source = 'backtest'")
			if err != nil || store.Int(res.Rows[0][0]) == 0 || store.Int(res.Rows[0][1]) == 0 {
				t.Errorf("evaluations not written: %v %v", res, err)
			}
			res, err = e.DB.Query(ctx, "SELECT count() FROM "+tables.Alerts().Quoted())
			if err != nil || store.Int(res.Rows[0][0]) != 0 {
				t.Errorf("a backtest must not write alert state: %v %v", res, err)
			}
		})
	}
}
