package alerts

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// downStore is ClickHouse going away entirely: while down, every query,
// statement and insert fails as a refused connection does.
type downStore struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("injected: dial tcp 127.0.0.1:9000: connect: connection refused")

func (d *downStore) Query(ctx context.Context, q string, args ...any) (*store.Result, error) {
	if d.down.Load() {
		return nil, errDown
	}
	return d.Store.Query(ctx, q, args...)
}

func (d *downStore) Exec(ctx context.Context, q string, args ...any) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.Exec(ctx, q, args...)
}

func (d *downStore) Insert(ctx context.Context, t store.Table, cols []string, rows [][]any) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.Insert(ctx, t, cols, rows)
}

// TestStoreDownStillPages: when ClickHouse, which holds the outbox, is the
// thing that is down, the monitoring_failure about it is still delivered
// (from memory), and stored once ClickHouse is back, so a restart neither
// loses nor repeats it.
func TestStoreDownStillPages(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			cfg := loadConfig(t, baseYAML+fmt.Sprintf("state: {database: %s}\n", eng.Database), nil)
			clock := newClock()
			db := &downStore{Store: eng.DB}
			rec := &recorder{}
			m1 := durableManager(t, cfg, db, clock, rec)

			db.down.Store(true)
			f := detectors.Finding{
				Detector: "fraud-volume", Kind: KindMonitor, Severity: configs.SeverityTicket, Model: "fraud",
				Evaluation: detectors.Evaluation{
					Class: detectors.ClassMonitoringFailure, Metric: "consecutive_failures", Value: 3, PValue: nanValue(), ShadowValue: nanValue(),
				},
				ShadowBaseline: nanValue(),
				Summary:        "detector fraud-volume failed 3 runs in a row",
			}
			if err := m1.ObserveFailure(context.Background(), "fraud-volume", clock.Now(), f); err == nil {
				t.Fatal("observe with the store down: want the write error reported")
			}
			notes, err := m1.Process(context.Background(), clock.Advance(time.Minute))
			if err == nil {
				t.Error("process with the store down: want the alert-state write error reported")
			}
			if len(notes) != 1 || notes[0].Receiver != "fraud-infra" {
				t.Fatalf("process with the store down queued %+v, want one notification to fraud-infra", notes)
			}
			if st := mustDeliver(t, m1); st.Sent != 1 {
				t.Fatalf("deliver with the store down: %+v, want 1 sent", st)
			}
			if got := rec.byReceiver("fraud-infra"); len(got) != 1 || got[0].Alerts[0].Class != string(detectors.ClassMonitoringFailure) {
				t.Fatalf("infra got %+v", got)
			}

			// ClickHouse is back: the next Process stores what was sent.
			db.down.Store(false)
			mustProcess(t, m1, clock.Advance(time.Minute))

			m2 := durableManager(t, cfg, eng.DB, clock, rec)
			if p := m2.Outbox(); len(p) != 0 {
				t.Fatalf("after restart %d entries pending: the page would repeat", len(p))
			}
			if ns := mustProcess(t, m2, clock.Advance(time.Minute)); len(ns) != 0 {
				t.Fatalf("after restart the manager queued %d notifications, want none (already sent)", len(ns))
			}
			if n := len(rec.all()); n != 1 {
				t.Errorf("%d notifications sent in all, want exactly 1", n)
			}
		})
	}
}

// stuckStore is ClickHouse frozen (SIGSTOP): every write waits until its
// context ends.
type stuckStore struct {
	store.Store
	writing chan struct{}
}

func (s *stuckStore) Insert(ctx context.Context, _ store.Table, _ []string, _ [][]any) error {
	s.writing <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// TestReadsDoNotWaitForClickHouse: while the manager waits on a frozen
// ClickHouse with its lock held, Alerts, Alert and Silences answer at once
// from what was last published, which already includes the change being
// written; the write itself gives up after stateTimeout, not query_timeout.
func TestReadsDoNotWaitForClickHouse(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	db := &stuckStore{writing: make(chan struct{}, 1)}
	m, err := New(Options{Config: cfg, Store: db, Now: clock.Now, Sleep: clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- m.Observe(context.Background(), "churn-block-rate", clock.Now(), []detectors.Finding{finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9)})
	}()
	<-db.writing // Observe holds the lock and waits on ClickHouse
	t0 := time.Now()
	vs := m.Alerts()
	_, found := m.Alert(vs[0].Fingerprint)
	_ = m.Silences()
	if took := time.Since(t0); took > 100*time.Millisecond {
		t.Errorf("reads took %s while a write was stuck", took)
	}
	if len(vs) != 1 || vs[0].State != "firing" || !found {
		t.Errorf("reads during the stuck write show %+v, want the new firing alert", vs)
	}
	if err := <-done; err == nil {
		t.Error("a write to a frozen ClickHouse must fail")
	}
	if took := time.Since(start); took > stateTimeout+2*time.Second {
		t.Errorf("the stuck write held the manager %s; the bound is %s", took, stateTimeout)
	}
}
