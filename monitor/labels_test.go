package monitor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

const labelsYAML = `
clickhouse: {database: %DB%}
state: {database: %DB%}
global: {failure_threshold: 2}
models:
  - name: fraud
    table: %DB%.predictions
    labels: {table: fraud_labels, maturity: 1h}
    owners: {product: p, infra: i}
detectors:
  - name: fresh
    kind: freshness
    model: fraud
  - name: perf
    kind: performance
    model: fraud
    window: 1h
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/p"}
  - name: i
    webhook: {url: "http://127.0.0.1:1/i"}
`

// TestLabelsTableMissing: a labels table that does not exist is a
// start-up warning and the performance detector waits for it, however
// many runs (no monitoring_failure, the other detectors run); an empty
// one is a warning too; once it was read, its disappearance fails the
// detector's runs and raises monitoring_failure at the threshold.
func TestLabelsTableMissing(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, _ := engineConfig(t, e, "labels.yaml", labelsYAML, true)
			ws := LabelWarnings(ctx, e.DB, cfg)
			if len(ws) != 1 || !strings.Contains(ws[0], "labels table "+e.Database+".fraud_labels does not exist") {
				t.Errorf("warnings %q: want the missing table named", ws)
			}
			clock := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			mgr, err := alerts.New(alerts.Options{Config: cfg, Now: func() time.Time { return clock }})
			if err != nil {
				t.Fatal(err)
			}
			m, err := New(Options{Config: cfg, Store: e.DB, Record: e.DB, Alerts: mgr})
			if err != nil {
				t.Fatal(err)
			}
			failing := func() bool {
				if _, err := mgr.Process(ctx, clock); err != nil {
					t.Fatal(err)
				}
				for _, v := range mgr.Alerts() {
					if v.Class == "monitoring_failure" && v.State == "firing" {
						return true
					}
				}
				return false
			}
			for i := 0; i < 3; i++ {
				clock = clock.Add(time.Hour)
				if _, err := m.Run(ctx, "perf", clock); err != nil {
					t.Fatalf("run %d without a labels table: %v, want a warning only", i, err)
				}
				if _, err := m.Run(ctx, "fresh", clock); err != nil {
					t.Fatalf("the other detector failed: %v", err)
				}
			}
			if failing() {
				t.Error("a labels table that never existed raised monitoring_failure")
			}
			st, _, _ := m.History().Status("perf")
			if len(st) != 3 || !strings.Contains(st[0].Warning, "fraud_labels") || st[0].Error != "" {
				t.Errorf("runs %+v: want warnings naming the table", st)
			}
			if m.History().Failures("perf") != 0 {
				t.Error("waiting runs counted as failures")
			}
			// The table arrives, empty: a warning, and the detector runs.
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.LabelsDef("fraud_labels", "request_id", "label", "labeled_at")}); err != nil {
				t.Fatal(err)
			}
			if ws := LabelWarnings(ctx, e.DB, cfg); len(ws) != 1 || !strings.Contains(ws[0], "is empty") {
				t.Errorf("warnings %q: want the empty table named", ws)
			}
			clock = clock.Add(time.Hour)
			if _, err := m.Run(ctx, "perf", clock); err != nil {
				t.Fatal(err)
			}
			// It used to have labels: now its disappearance is a failure.
			if err := e.DB.Exec(ctx, "DROP TABLE "+store.Table{Database: e.Database, Name: "fraud_labels"}.Quoted()); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				clock = clock.Add(time.Hour)
				if _, err := m.Run(ctx, "perf", clock); err == nil || !strings.Contains(err.Error(), "fraud_labels") {
					t.Fatalf("run %d after the table went: %v, want an error naming it", i, err)
				}
			}
			if !failing() {
				t.Error("a labels table that went away raised no monitoring_failure")
			}
		})
	}
}
