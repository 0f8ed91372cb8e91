package alerts

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// flakyStore fails inserts into one table while failing is set: a crash
// between two writes, as the next process sees it.
type flakyStore struct {
	store.Store
	table   string
	failing bool
}

func (f *flakyStore) Insert(ctx context.Context, t store.Table, cols []string, rows [][]any) error {
	if f.failing && t.Name == f.table {
		return errors.New("injected: clickhouse went away")
	}
	return f.Store.Insert(ctx, t, cols, rows)
}

func durableManager(t *testing.T, cfg *configs.Config, db store.Store, clock *fakeClock, rec *recorder) *Manager {
	t.Helper()
	notifiers := map[string]Notifier{}
	for _, r := range cfg.Receivers {
		notifiers[r.Name] = rec
	}
	m, err := New(Options{Config: cfg, Store: db, Now: clock.Now, Sleep: clock.Sleep, Notifiers: notifiers})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(context.Background()); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return m
}

func TestRestartRebuildsStateFromClickHouse(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := loadConfig(t, baseYAML+fmt.Sprintf("state: {database: %s}\n", eng.Database), nil)
			clock := newClock()
			flaky := &flakyStore{Store: eng.DB, table: "mlwatch_alerts"}
			rec1 := &recorder{}
			m1 := durableManager(t, cfg, flaky, clock, rec1)

			// 1. An infra cause fires and is delivered.
			cause := finding("fraud-features", "feature_pipeline", "fraud", "", 0.62, 0.01, 1e-30)
			cause.Feature = "merchant_risk"
			causeFP := Fingerprint("fraud-features", "fraud", "feature_pipeline", nil, "merchant_risk")
			mustObserve(t, m1, "fraud-features", clock.Now(), cause)
			mustProcess(t, m1, clock.Advance(30*time.Second))
			if st := mustDeliver(t, m1); st.Sent != 1 {
				t.Fatalf("first delivery: %+v", st)
			}
			// 2. A churn page is recorded in the outbox but the process
			// dies before sending it.
			churn := finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9)
			mustObserve(t, m1, "churn-block-rate", clock.Now(), churn)
			mustProcess(t, m1, clock.Advance(30*time.Second))
			// 3. A fraud product alert is queued in the cause's thread while
			// the alerts table cannot be written: only the outbox knows.
			product := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			productFP := Fingerprint("fraud-block-rate", "fraud", "model_behavior", product.Slice, "")
			mustObserve(t, m1, "fraud-block-rate", clock.Now(), product)
			flaky.failing = true
			if _, err := m1.Process(ctx, clock.Advance(30*time.Second)); err == nil {
				t.Fatal("process: want the injected alerts-table error")
			}
			pendingBefore := m1.Outbox()
			if len(pendingBefore) != 2 {
				t.Fatalf("outbox before the crash: %d pending, want 2 (churn page, caused reply)", len(pendingBefore))
			}
			sil, err := m1.AddSilence(ctx, Silence{Matchers: mustMatchers(t, "model=churn", "country=IT"), EndsAt: clock.Now().Add(time.Hour), CreatedBy: "ana", Comment: "test"})
			if err != nil {
				t.Fatal(err)
			}
			before := m1.Alerts()
			// Crash: m1 is gone without another word.

			rec2 := &recorder{}
			m2 := durableManager(t, cfg, eng.DB, clock, rec2)
			after := m2.Alerts()
			if len(after) != len(before) || len(after) != 3 {
				t.Fatalf("restored %d alerts, had %d (want 3)", len(after), len(before))
			}
			for _, b := range before {
				a := viewByFP(after, b.Fingerprint)
				if a == nil || a.State != b.State || a.CausedBy != b.CausedBy || a.Class != b.Class || a.Model != b.Model ||
					!a.ActiveAt.Equal(b.ActiveAt) || float64(a.Value) != float64(b.Value) || fmt.Sprint(a.Slice) != fmt.Sprint(b.Slice) {
					t.Fatalf("alert %s restored as %+v, was %+v", b.Fingerprint, a, b)
				}
			}
			if v := viewByFP(after, productFP); v.CausedBy != causeFP {
				t.Fatalf("inhibition lost across restart: caused_by %q", v.CausedBy)
			}
			if ss := m2.Silences(); len(ss) != 1 || ss[0].ID != sil.ID || len(ss[0].Matchers) != 2 {
				t.Fatalf("silences restored: %+v", ss)
			}
			// The unsent entries are sent, in order, the reply in the
			// thread the first process started; nothing sent is sent again.
			if st := mustDeliver(t, m2); st.Sent != 2 {
				t.Fatalf("deliver after restart: %+v", st)
			}
			// Receivers deliver concurrently: compare by ID.
			got := map[string]Notification{}
			for _, n := range rec2.all() {
				got[n.ID] = n
			}
			if len(got) != 2 || got[pendingBefore[0].ID].ID == "" || got[pendingBefore[1].ID].ID == "" {
				t.Fatalf("delivered after restart: %v", summarize(rec2.all()))
			}
			if reply := got[pendingBefore[1].ID]; reply.ThreadRef != "C0FRAUDINFRA/1" {
				t.Fatalf("caused reply thread ref %q, want the first process's message C0FRAUDINFRA/1", reply.ThreadRef)
			}
			// Later evaluations: the firing alerts were notified, so nothing
			// goes out again (the product alert's Sent came from the outbox).
			at := clock.Advance(5 * time.Minute)
			mustObserve(t, m2, "fraud-features", at, cause)
			mustObserve(t, m2, "churn-block-rate", at, churn)
			mustObserve(t, m2, "fraud-block-rate", at, product)
			if ns := mustProcess(t, m2, at); len(ns) != 0 {
				t.Fatalf("re-sent after restart: %v", summarize(ns))
			}
			mustDeliver(t, m2)
			if n := len(rec2.all()); n != 2 {
				t.Fatalf("%d notifications after restart, want 2", n)
			}
			// A third process sees everything delivered: nothing pending.
			m3 := durableManager(t, cfg, eng.DB, clock, &recorder{})
			if p := m3.Outbox(); len(p) != 0 {
				t.Fatalf("third start: %d pending", len(p))
			}
			if ns := mustProcess(t, m3, clock.Advance(time.Minute)); len(ns) != 0 {
				t.Fatalf("third start re-sent: %v", summarize(ns))
			}
			// Resolution after restart goes to the restored thread.
			at = clock.Advance(time.Minute)
			mustObserve(t, m3, "fraud-features", at)
			mustObserve(t, m3, "fraud-block-rate", at) // the caused member too: the group closes
			ns := mustProcess(t, m3, at)
			if len(ns) != 1 || ns[0].Kind != KindResolved || ns[0].Thread != rec1.all()[0].ID {
				t.Fatalf("resolution after restart: %v", summarize(ns))
			}
		})
	}
}

func mustMatchers(t *testing.T, s ...string) []configs.Matcher {
	t.Helper()
	ms, err := ParseMatchers(s)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestSilencesInClickHouse(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			tables := store.Tables{Database: eng.Database, Prefix: "mlwatch_"}
			if err := store.Apply(ctx, eng.DB, eng.Database, TableDefs(tables)); err != nil {
				t.Fatal(err)
			}
			s := NewSilences(eng.DB, tables)
			a, err := s.Add(ctx, Silence{Matchers: mustMatchers(t, `class="model_behavior"`, "country=~FR|DE"),
				StartsAt: t0, EndsAt: t0.Add(2 * time.Hour), CreatedBy: "ana", Comment: "FR rollout, it's known"}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Add(ctx, Silence{Matchers: mustMatchers(t, "model=churn"), StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(3 * time.Hour), CreatedBy: "bo", Comment: "later"}, t0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Add(ctx, Silence{Matchers: nil, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "x", Comment: "y"}, t0); err == nil {
				t.Fatal("silence without matchers accepted")
			}
			list, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 2 || list[1].ID != a.ID || list[1].Comment != a.Comment || !list[1].EndsAt.Equal(a.EndsAt) {
				t.Fatalf("list: %+v", list)
			}
			if st := list[1].State(t0.Add(time.Minute)); st != SilenceActive {
				t.Fatalf("state %s", st)
			}
			if st := list[0].State(t0.Add(time.Minute)); st != SilencePending {
				t.Fatalf("state %s", st)
			}
			labels := map[string]string{"class": "model_behavior", "country": "DE"}
			if !list[1].Matches(labels) || list[1].Matches(map[string]string{"class": "model_behavior", "country": "IT"}) {
				t.Fatal("matchers did not survive storage")
			}
			exp, err := s.Expire(ctx, a.ID, t0.Add(10*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if exp.State(t0.Add(10*time.Minute)) != SilenceExpired {
				t.Fatalf("expired silence state %s", exp.State(t0.Add(10*time.Minute)))
			}
			list, _ = s.List(ctx)
			if len(list) != 2 || !list[1].EndsAt.Equal(t0.Add(10*time.Minute)) {
				t.Fatalf("after expire: %+v", list)
			}
			if _, err := s.Expire(ctx, "nope", t0); !errors.Is(err, ErrSilenceNotFound) {
				t.Fatalf("expire unknown: %v", err)
			}
		})
	}
}

func TestDeliveryMarkSurvivesAFailedWrite(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			cfg := loadConfig(t, baseYAML+fmt.Sprintf("state: {database: %s}\n", eng.Database), nil)
			clock := newClock()
			flaky := &flakyStore{Store: eng.DB, table: "mlwatch_outbox"}
			rec := &recorder{}
			m1 := durableManager(t, cfg, flaky, clock, rec)
			mustObserve(t, m1, "churn-block-rate", clock.Now(), finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9))
			mustProcess(t, m1, clock.Advance(time.Minute))
			// Sent, but the "sent" mark cannot be written ...
			flaky.failing = true
			if st := mustDeliver(t, m1); st.Sent != 1 {
				t.Fatalf("deliver: %+v", st)
			}
			// ... until the next Process, which writes it.
			flaky.failing = false
			mustProcess(t, m1, clock.Advance(time.Minute))
			m2 := durableManager(t, cfg, eng.DB, clock, rec)
			if p := m2.Outbox(); len(p) != 0 {
				t.Fatalf("after restart %d entries pending: the delivery would repeat", len(p))
			}
		})
	}
}
