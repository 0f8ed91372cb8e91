package alerts

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// gatedStore holds every insert into one table until the test opens the
// gate: a ClickHouse that is slow to take the outbox.
type gatedStore struct {
	store.Store
	table   string
	writing chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *gatedStore) Insert(ctx context.Context, t store.Table, cols []string, rows [][]any) error {
	if t.Name == g.table {
		select {
		case g.writing <- struct{}{}:
		default:
		}
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Store.Insert(ctx, t, cols, rows)
}

func (g *gatedStore) open() { g.once.Do(func() { close(g.gate) }) }

// within runs f and reports whether it returned before the deadline.
func within(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// TestOutboxWrittenOutsideTheLock: while ClickHouse is slow to take the
// notifications Process queued, the manager's lock is free (the outbox
// reads, another detector's run change state at once), and the queued
// notification is not delivered before its write; once the write lands it
// is delivered, and a restart finds it sent.
func TestOutboxWrittenOutsideTheLock(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			cfg := loadConfig(t, baseYAML+fmt.Sprintf("state: {database: %s}\n", eng.Database), nil)
			clock := newClock()
			db := &gatedStore{Store: eng.DB, table: "mlwatch_outbox", writing: make(chan struct{}, 1), gate: make(chan struct{})}
			defer db.open()
			rec := &recorder{}
			m := durableManager(t, cfg, db, clock, rec)
			mustObserve(t, m, "churn-block-rate", clock.Now(), finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9))

			processed := make(chan error, 1)
			at := clock.Advance(time.Minute)
			go func() {
				_, err := m.Process(context.Background(), at)
				processed <- err
			}()
			select {
			case <-db.writing: // Process is writing the outbox
			case <-time.After(30 * time.Second):
				t.Fatal("process never wrote the outbox")
			}
			// The lock is free: the outbox reads, and another run changes
			// state while the write waits.
			var pending []Notification
			if !within(3*time.Second, func() { pending = m.Outbox() }) {
				t.Fatal("Outbox waited for the outbox write: persistence holds the manager's lock")
			}
			if len(pending) != 1 || pending[0].Receiver != "churn-product" {
				t.Fatalf("pending during the write: %+v, want the one churn-product notification", pending)
			}
			observed := make(chan error, 1)
			go func() {
				observed <- m.Observe(context.Background(), "fraud-block-rate", at, nil)
			}()
			if !within(3*time.Second, func() { m.DeliverTo(context.Background(), "fraud-product") }) {
				t.Fatal("a delivery waited for the outbox write")
			}
			// Recorded before sent: nothing goes out before the write.
			if st := m.DeliverTo(context.Background(), "churn-product"); st.Sent != 0 || len(rec.all()) != 0 {
				t.Fatalf("delivered %+v before the notification was stored", st)
			}

			db.open()
			if err := <-processed; err != nil {
				t.Fatalf("process: %v", err)
			}
			if err := <-observed; err != nil {
				t.Fatalf("observe: %v", err)
			}
			if st := mustDeliver(t, m); st.Sent != 1 {
				t.Fatalf("deliver after the write: %+v, want 1 sent", st)
			}
			m2 := durableManager(t, cfg, eng.DB, clock, rec)
			if p := m2.Outbox(); len(p) != 0 {
				t.Fatalf("after restart %d entries pending: the delivery would repeat", len(p))
			}
			if ns := mustProcess(t, m2, clock.Advance(time.Minute)); len(ns) != 0 {
				t.Fatalf("after restart %d notifications queued, want none", len(ns))
			}
		})
	}
}

// muteFPs is a Muter that mutes the alerts it names.
type muteFPs map[string]bool

func (f muteFPs) Mutes(a *Alert) bool { return f[a.Fingerprint] }

// TestPlanCallsTheMuters: plan decides muting by calling the mute
// stages, not by reading what an earlier step recorded on the alert, and
// the silence stage comes first.
func TestPlanCallsTheMuters(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, true)
	mustObserve(t, m, "churn-block-rate", clock.Now(), finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9))
	mustObserve(t, m, "fraud-block-rate", clock.Now(), finding("fraud-block-rate", "model_behavior", "fraud", "", 0.3, 0.1, 1e-9))
	var churn, fraud *Alert
	for _, a := range m.alerts {
		switch a.Finding.Model {
		case "churn":
			churn = a
		case "fraud":
			fraud = a
		}
	}
	if churn == nil || fraud == nil {
		t.Fatalf("alerts: %v", m.alerts)
	}
	// A stale record says churn is silenced; the stage says fraud is.
	churn.SilencedBy = []string{"stale"}
	told := func(mu mutes) map[string]bool {
		notes, _ := plan(m.planState(mu), clock.Now())
		out := map[string]bool{}
		for _, n := range notes {
			for _, v := range n.Alerts {
				out[v.Model] = true
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		mu   mutes
		want map[string]bool
	}{
		{"no stage mutes", mutes{}, map[string]bool{"churn": true, "fraud": true}},
		{"silence stage mutes fraud", mutes{silence: muteFPs{fraud.Fingerprint: true}}, map[string]bool{"churn": true}},
		// Muted by inhibition without a root's thread to join: nothing
		// yet; the silence stage wins over inhibition either way.
		{"inhibition mutes churn", mutes{inhibit: muteFPs{churn.Fingerprint: true}}, map[string]bool{"fraud": true}},
		{"both stages", mutes{silence: muteFPs{fraud.Fingerprint: true}, inhibit: muteFPs{fraud.Fingerprint: true}}, map[string]bool{"churn": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := told(tc.mu)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("told %v, want %v", got, tc.want)
			}
		})
	}
}
