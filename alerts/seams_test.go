package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
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

// oldAlertData is an alert row's data as versions before Finding embedded
// detectors.Evaluation wrote it (flat finding keys, no baseline_low,
// baseline_high or firing): an FR block-rate page fired at t0 and
// already notified to fraud-product. %s are its fingerprint and labels.
const oldAlertData = `{"fingerprint":"%s","source":"fraud-block-rate","labels":%s,` +
	`"finding":{"detector":"fraud-block-rate","kind":"block_rate","class":"model_behavior","severity":"page","model":"fraud",` +
	`"slice":{"country":"FR"},"feature":"","metric":"block_rate","value":0.3,"baseline":0.05,"p_value":1e-9,"effect":0.25,` +
	`"n_current":1000,"n_baseline":7000,"shadow_value":null,"shadow_baseline":null,"summary":"fraud FR moved",` +
	`"window_start":"2026-03-02T09:00:00Z","at":"2026-03-02T10:00:00Z","window_end":"2026-03-02T10:00:00Z"},` +
	`"owner":"product","severity":"page","runbook_url":"https://runbooks.example.com/fraud","state":"firing",` +
	`"active_at":"2026-03-02T10:00:00Z","fired_at":"2026-03-02T10:00:00Z","resolved_at":"0001-01-01T00:00:00Z",` +
	`"last_eval_at":"2026-03-02T10:00:00Z","keep_firing_since":"0001-01-01T00:00:00Z","caused_by":"","silenced_by":null,` +
	`"sent":{"fraud-product":{"group":"model=fraud,class=model_behavior","root":"n-old-1","at":"2026-03-02T10:01:00Z","resolved":false}}}`

// TestRestoresAlertStoredBeforeFindingEmbeddedEvaluation: an alert row in
// the previous shape restores with its figures (what it lacks keeps its
// meaning: firing, no band) and its Sent record, so the page it already
// made is not made again.
func TestRestoresAlertStoredBeforeFindingEmbeddedEvaluation(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := loadConfig(t, baseYAML+fmt.Sprintf("state: {database: %s}\n", eng.Database), nil)
			clock := newClock()
			f := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			fp := Fingerprint("fraud-block-rate", "fraud", "model_behavior", f.Slice, "")
			// The labels the manager gives this finding.
			mem := newManager(t, cfg, clock, &recorder{}, false)
			mustObserve(t, mem, "fraud-block-rate", clock.Now(), f)
			labels, err := json.Marshal(mem.alerts[fp].Labels)
			if err != nil {
				t.Fatal(err)
			}

			rec := &recorder{}
			durableManager(t, cfg, eng.DB, clock, rec) // creates the tables
			tables := store.Tables{Database: eng.Database, Prefix: cfg.State.TablePrefix}
			row := []any{fp, uint64(1), t0, "firing", "fraud-block-rate", "fraud-block-rate", "fraud", "model_behavior", "product", "page",
				string(labels), t0, t0, time.Unix(0, 0).UTC(), t0, 0.3, 0.05, 1e-9, "fraud FR moved", "", "", fmt.Sprintf(oldAlertData, fp, labels)}
			if err := eng.DB.Insert(ctx, tables.Alerts(), alertColumns, [][]any{row}); err != nil {
				t.Fatal(err)
			}

			m := durableManager(t, cfg, eng.DB, clock, rec)
			a := m.alerts[fp]
			if a == nil {
				t.Fatalf("old-shape alert not restored; alerts: %v", m.alerts)
			}
			got := a.Finding
			if got.Class != detectors.ClassModelBehavior || got.Metric != "block_rate" || got.Slice["country"] != "FR" ||
				got.Value != 0.3 || got.Baseline != 0.05 || got.PValue != 1e-9 || got.Effect != 0.25 || got.NCurrent != 1000 ||
				got.NBaseline != 7000 || !math.IsNaN(got.ShadowValue) || !math.IsNaN(got.ShadowBaseline) || got.Summary != "fraud FR moved" {
				t.Fatalf("restored finding %+v", got)
			}
			if !got.Firing || !math.IsNaN(got.BaselineLow) || !math.IsNaN(got.BaselineHigh) {
				t.Errorf("fields the old shape lacks: firing %v, band [%v, %v]; want firing, no band (NaN)", got.Firing, got.BaselineLow, got.BaselineHigh)
			}
			if a.State != StateFiring || a.Sent["fraud-product"] == nil {
				t.Fatalf("restored state %v, sent %v", a.State, a.Sent)
			}
			// Still firing an hour later (now with a band): the page it
			// made is not repeated.
			at := clock.Advance(time.Hour)
			f.BaselineLow, f.BaselineHigh, f.Firing = 0.01, 0.09, true
			mustObserve(t, m, "fraud-block-rate", at, f)
			if ns := mustProcess(t, m, at); len(ns) != 0 {
				t.Fatalf("the restored page was made again: %+v", ns)
			}
			// It clears: written back in the new shape, it restores the same.
			mustObserve(t, m, "fraud-block-rate", clock.Advance(5*time.Minute))
			m2 := durableManager(t, cfg, eng.DB, clock, rec)
			a2 := m2.alerts[fp]
			if a2 == nil || a2.State != StateResolved || a2.Finding.Value != 0.3 || !a2.Finding.Firing ||
				a2.Finding.BaselineLow != 0.01 || a2.Finding.BaselineHigh != 0.09 || a2.Finding.Slice["country"] != "FR" || a2.Sent["fraud-product"] == nil {
				t.Fatalf("rewritten alert restored as %+v", a2)
			}
		})
	}
}
