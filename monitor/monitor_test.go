package monitor

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// flakyStore fails every query while down is set, as a ClickHouse outage would.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

func (f *flakyStore) Query(ctx context.Context, q string, args ...any) (*store.Result, error) {
	if f.down.Load() {
		return nil, &store.Error{Kind: store.ErrUnavailable, Message: "clickhouse unavailable: connection refused"}
	}
	return f.Store.Query(ctx, q, args...)
}

const monitorYAML = `
clickhouse: {database: %DB%}
state: {database: %DB%}
global: {failure_threshold: 3}
models:
  - name: fraud
    table: %DB%.predictions
    owners: {product: p, infra: i}
detectors:
  - name: fresh
    kind: freshness
    model: fraud
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/p"}
  - name: i
    webhook: {url: "http://127.0.0.1:1/i"}
`

// TestMonitoringFailure checks the failure streak: a failed run resolves
// nothing, the threshold raises monitoring_failure, recovery resolves it,
// and every run lands in the runs table with its query and error.
func TestMonitoringFailure(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, tables := engineConfig(t, e, "monitor.yaml", monitorYAML, true)
			clock := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			mgr, err := alerts.New(alerts.Options{Config: cfg, Now: func() time.Time { return clock }})
			if err != nil {
				t.Fatal(err)
			}
			flaky := &flakyStore{Store: e.DB}
			m, err := New(Options{Config: cfg, Store: flaky, Record: e.DB, Alerts: mgr})
			if err != nil {
				t.Fatal(err)
			}
			state := func(class string) string {
				if _, err := mgr.Process(ctx, clock); err != nil {
					t.Fatal(err)
				}
				for _, v := range mgr.Alerts() {
					if v.Class == class {
						return v.State
					}
				}
				return "inactive"
			}
			step := func() error {
				clock = clock.Add(time.Minute)
				_, err := m.Run(ctx, "fresh", clock)
				return err
			}
			// An empty prediction table: no data, a pipeline outage.
			if err := step(); err != nil {
				t.Fatal(err)
			}
			if s := state("pipeline_outage"); s != "firing" {
				t.Fatalf("empty table: pipeline_outage is %s, want firing", s)
			}
			flaky.down.Store(true)
			for i := 1; i <= 3; i++ {
				if err := step(); !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("run %d: want ErrUnavailable, got %v", i, err)
				}
				want := "inactive"
				if i == 3 {
					want = "firing"
				}
				if s := state("monitoring_failure"); s != want {
					t.Errorf("after %d failures monitoring_failure is %s, want %s", i, s, want)
				}
				if s := state("pipeline_outage"); s != "firing" {
					t.Errorf("a failed run resolved the detector's alert (%s)", s)
				}
			}
			if got := m.History().Failures("fresh"); got != 3 {
				t.Errorf("failure streak %d, want 3", got)
			}
			flaky.down.Store(false)
			if err := step(); err != nil {
				t.Fatal(err)
			}
			if s := state("monitoring_failure"); s != "resolved" {
				t.Errorf("after recovery monitoring_failure is %s, want resolved", s)
			}
			if s := state("pipeline_outage"); s != "firing" {
				t.Errorf("after recovery pipeline_outage is %s, want firing", s)
			}
			res, err := e.DB.Query(ctx, "SELECT count(), countIf(error != ''), countIf(query LIKE 'SELECT%') FROM "+tables.Runs().Quoted()+" WHERE detector = 'fresh'")
			if err != nil {
				t.Fatal(err)
			}
			if r := res.Rows[0]; store.Int(r[0]) != 5 || store.Int(r[1]) != 3 || store.Int(r[2]) != 5 {
				t.Errorf("runs table: %v, want 5 runs, 3 with errors, all with their query", r)
			}
			st := m.Statuses()
			if len(st) != 1 || len(st[0].Runs) != 5 || st[0].Runs[0].Error != "" || !strings.Contains(st[0].Runs[1].Error, "connection refused") {
				t.Errorf("history: %+v", st)
			}
		})
	}
}
