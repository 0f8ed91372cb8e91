package alerts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestRemovedDetectorResolves: alerts of a detector removed by a reload
// resolve with a notification that says why, and stay resolved after a
// restart; a detector removed while the daemon was down is retired at
// start-up the same way.
func TestRemovedDetectorResolves(t *testing.T) {
	withoutBlockRate := strings.Replace(baseYAML, "  - name: fraud-block-rate\n    kind: block_rate\n    model: fraud\n", "", 1)
	withoutFeatures := strings.Replace(withoutBlockRate, "  - name: fraud-features\n    kind: feature_health\n    model: fraud\n", "", 1)
	if withoutBlockRate == baseYAML || withoutFeatures == withoutBlockRate {
		t.Fatal("test configs: detector not removed")
	}
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			state := fmt.Sprintf("state: {database: %s}\n", eng.Database)
			cfg := loadConfig(t, baseYAML+state, nil)
			clock := newClock()
			rec := &recorder{}
			m1 := durableManager(t, cfg, eng.DB, clock, rec)
			fr := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			frFP := Fingerprint("fraud-block-rate", "fraud", "model_behavior", fr.Slice, "")
			churn := finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9)
			mustObserve(t, m1, "fraud-block-rate", clock.Now(), fr)
			mustObserve(t, m1, "churn-block-rate", clock.Now(), churn)
			mustProcess(t, m1, clock.Advance(time.Minute))
			if st := mustDeliver(t, m1); st.Sent != 2 {
				t.Fatalf("first delivery: %+v", st)
			}

			// Reload without fraud-block-rate: its alert resolves, saying why.
			if err := m1.Reload(loadConfig(t, withoutBlockRate+state, nil)); err != nil {
				t.Fatal(err)
			}
			if v := viewByFP(m1.Alerts(), frFP); v == nil || v.State != "resolved" {
				t.Fatalf("alert of the removed detector after reload: %+v", v)
			}
			// A run of the removed detector that was in flight during the
			// reload ends after it: it does not bring the alert back.
			mustObserve(t, m1, "fraud-block-rate", clock.Now(), fr)
			if v := viewByFP(m1.Alerts(), frFP); v == nil || v.State != "resolved" {
				t.Fatalf("alert of the removed detector after a late run: %+v", v)
			}
			ns := mustProcess(t, m1, clock.Advance(time.Minute))
			if len(ns) != 1 || ns[0].Kind != KindResolved || ns[0].Receiver != "fraud-product" ||
				!strings.Contains(ns[0].Alerts[0].Summary, "detector removed from config (fraud-block-rate)") {
				t.Fatalf("notifications after the reload: %v", summarize(ns))
			}
			mustDeliver(t, m1)
			// The churn alert, whose detector stays, keeps firing.
			if v := viewByFP(m1.Alerts(), Fingerprint("churn-block-rate", "churn", "model_behavior", nil, "")); v == nil || v.State != "firing" {
				t.Fatalf("alert of a detector still configured: %+v", v)
			}

			// Restart with the same config: the removed detector's alert
			// does not come back, nothing is sent again.
			rec2 := &recorder{}
			m2 := durableManager(t, loadConfig(t, withoutBlockRate+state, nil), eng.DB, clock, rec2)
			if v := viewByFP(m2.Alerts(), frFP); v != nil && v.State != "resolved" {
				t.Fatalf("alert of the removed detector after restart: %+v", v)
			}
			if ns := mustProcess(t, m2, clock.Advance(time.Minute)); len(ns) != 0 {
				t.Fatalf("sent after restart: %v", summarize(ns))
			}

			// A detector removed while the daemon was down: fraud-features
			// fires, the process stops, the config loses it, the next
			// process resolves it at start-up.
			feat := finding("fraud-features", "feature_pipeline", "fraud", "", 0.6, 0.01, 1e-30)
			feat.Feature = "merchant_risk"
			mustObserve(t, m2, "fraud-features", clock.Now(), feat)
			mustProcess(t, m2, clock.Advance(time.Minute))
			if st := mustDeliver(t, m2); st.Sent != 1 {
				t.Fatalf("features delivery: %+v", st)
			}
			m3 := durableManager(t, loadConfig(t, withoutFeatures+state, nil), eng.DB, clock, &recorder{})
			ns = mustProcess(t, m3, clock.Advance(time.Minute))
			if len(ns) != 1 || ns[0].Kind != KindResolved || ns[0].Receiver != "fraud-infra" ||
				!strings.Contains(ns[0].Alerts[0].Summary, "detector removed from config (fraud-features)") {
				t.Fatalf("notifications at the start-up without fraud-features: %v", summarize(ns))
			}
		})
	}
}

// countingStore counts the INSERTs into one table and slows each a little,
// as a loaded server does, so concurrent callers overlap.
type countingStore struct {
	store.Store
	table   string
	delay   time.Duration
	inserts atomic.Int64
}

func (c *countingStore) Insert(ctx context.Context, t store.Table, cols []string, rows [][]any) error {
	if t.Name == c.table {
		c.inserts.Add(1)
		time.Sleep(c.delay)
	}
	return c.Store.Insert(ctx, t, cols, rows)
}

// TestStateWritesBatched: 200 detector runs observed at the same moment
// write their alert states in a few INSERTs, not one each, and every
// state is stored before its Observe returns (a restart sees them all).
func TestStateWritesBatched(t *testing.T) {
	const runs = 200
	var dets strings.Builder
	for i := 0; i < runs; i++ {
		fmt.Fprintf(&dets, "  - {name: d%03d, kind: block_rate, model: fraud}\n", i)
	}
	text := strings.Replace(baseYAML, "detectors:\n", "detectors:\n"+dets.String(), 1)
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			cfg := loadConfig(t, text+fmt.Sprintf("state: {database: %s}\n", eng.Database), nil)
			if len(cfg.Detectors) != 5+runs {
				t.Fatalf("config has %d detectors", len(cfg.Detectors))
			}
			clock := newClock()
			cs := &countingStore{Store: eng.DB, table: "mlwatch_alerts", delay: 50 * time.Millisecond}
			m := durableManager(t, cfg, cs, clock, &recorder{})
			cs.inserts.Store(0)
			var wg sync.WaitGroup
			errs := make(chan error, runs)
			at := clock.Now()
			for i := 0; i < runs; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					name := fmt.Sprintf("d%03d", i)
					errs <- m.Observe(context.Background(), name, at, []detectors.Finding{finding(name, "model_behavior", "fraud", fmt.Sprintf("country=C%d", i), 0.3, 0.05, 1e-9)})
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("observe: %v", err)
				}
			}
			n := cs.inserts.Load()
			t.Logf("%d concurrent runs wrote their states in %d INSERTs", runs, n)
			if n < 1 || n > runs/4 {
				t.Errorf("%d INSERTs of alert states for %d runs: not batched", n, runs)
			}
			m2 := durableManager(t, cfg, eng.DB, clock, &recorder{})
			firing := 0
			for _, v := range m2.Alerts() {
				if v.State == "firing" {
					firing++
				}
			}
			if firing != runs {
				t.Errorf("a restart restored %d firing alerts, want %d", firing, runs)
			}
		})
	}
}

// TestSilenceLimits: oversized matchers and too many silences are refused
// before anything is compiled or stored, naming the limit; stored matchers
// are compiled once, not on every pipeline pass.
func TestSilenceLimits(t *testing.T) {
	huge := "class=~" + strings.Repeat("(a|b)*", 200)
	if _, err := ParseMatchers([]string{huge}); err == nil || !strings.Contains(err.Error(), "at most 1024 are allowed") {
		t.Errorf("a %d-byte matcher: %v", len(huge), err)
	}
	many := make([]string, MaxSilenceMatchers+1)
	for i := range many {
		many[i] = fmt.Sprintf("l%d=x", i)
	}
	if _, err := ParseMatchers(many); err == nil || !strings.Contains(err.Error(), "33 matchers: at most 32 are allowed") {
		t.Errorf("33 matchers: %v", err)
	}
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			tables := store.Tables{Database: eng.Database, Prefix: "mlwatch_"}
			if err := store.Apply(ctx, eng.DB, eng.Database, TableDefs(tables)); err != nil {
				t.Fatal(err)
			}
			s := NewSilences(eng.DB, tables)
			// A silence built in code with an oversized matcher (the API and
			// CLI refuse it earlier, in ParseMatchers).
			big := Silence{Matchers: mustMatchers(t, "class=x"), StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "a", Comment: "b"}
			big.Matchers[0].Value = strings.Repeat("x", 2000)
			if _, err := s.Add(ctx, big, t0); err == nil || !strings.Contains(err.Error(), "at most 1024 are allowed") {
				t.Errorf("oversized matcher stored: %v", err)
			}
			// MaxSilences active ones, written in one batch.
			rows := make([][]any, 0, MaxSilences)
			for i := 0; i < MaxSilences; i++ {
				rows = append(rows, []any{fmt.Sprintf("s%04d", i), uint64(i + 1), `[{"name":"country","op":"=~","value":"C` + fmt.Sprint(i) + `|X.*"}]`,
					t0, t0.Add(time.Hour), "a", "b", t0})
			}
			if err := eng.DB.Insert(ctx, tables.Silences(), silenceColumns, rows); err != nil {
				t.Fatal(err)
			}
			ok := Silence{Matchers: mustMatchers(t, "class=x"), StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "a", Comment: "b"}
			if _, err := s.Add(ctx, ok, t0); !errors.Is(err, ErrTooManySilences) || !strings.Contains(err.Error(), "at most 1000") {
				t.Errorf("silence %d: %v, want ErrTooManySilences", MaxSilences+1, err)
			}
			// Once they are over, a new one is accepted.
			later := t0.Add(2 * time.Hour)
			ok.StartsAt, ok.EndsAt = later, later.Add(time.Hour)
			if _, err := s.Add(ctx, ok, later); err != nil {
				t.Errorf("silence after the others expired: %v", err)
			}
			// Compiled once: two lists share the compiled matchers.
			l1, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			l2, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(l1) != MaxSilences+1 || len(l2) != len(l1) {
				t.Fatalf("listed %d and %d silences", len(l1), len(l2))
			}
			for i := range l1 {
				if &l1[i].Matchers[0] != &l2[i].Matchers[0] {
					t.Fatalf("silence %s: matchers compiled again on the second list", l1[i].ID)
				}
			}
			if !l1[0].Matches(map[string]string{"class": "x"}) {
				t.Error("the cached matchers do not match")
			}
		})
	}
}
