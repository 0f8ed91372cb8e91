package alerts

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
)

// thirtySlices is one incident seen in thirty countries.
func thirtySlices() (fs []detectorsFinding) {
	for i := 0; i < 30; i++ {
		p := 1e-12 * float64(i+1)
		fs = append(fs, finding("fraud-block-rate", "model_behavior", "fraud", fmt.Sprintf("country=C%02d", i), 0.2+0.001*float64(i), 0.05, p))
	}
	return fs
}

func TestGroupingRepeatAndResolve(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, false)
	fs := thirtySlices()
	mustObserve(t, m, "fraud-block-rate", t0, fs...)

	// Settle wait: nothing before group_wait.
	if ns := mustProcess(t, m, t0.Add(10*time.Second)); len(ns) != 0 {
		t.Fatalf("sent %d notifications before group_wait", len(ns))
	}
	ns := mustProcess(t, m, t0.Add(30*time.Second))
	if len(ns) != 1 {
		t.Fatalf("thirty slices of one incident: %d notifications, want 1", len(ns))
	}
	n := ns[0]
	if n.Receiver != "fraud-product" || n.Kind != KindFiring || len(n.Alerts) != 30 || n.GroupKey != "model=fraud,class=model_behavior" {
		t.Fatalf("notification %s %s %q with %d alerts", n.Receiver, n.Kind, n.GroupKey, len(n.Alerts))
	}
	if n.Alerts[0].Slice["country"] != "C00" || n.Alerts[29].Slice["country"] != "C29" {
		t.Fatalf("not worst first: first %v last %v", n.Alerts[0].Slice, n.Alerts[29].Slice)
	}
	mustDeliver(t, m)
	if got := len(rec.all()); got != 1 {
		t.Fatalf("delivered %d, want 1", got)
	}

	// Same state an evaluation later: nothing new.
	mustObserve(t, m, "fraud-block-rate", t0.Add(5*time.Minute), fs...)
	if ns := mustProcess(t, m, t0.Add(5*time.Minute)); len(ns) != 0 {
		t.Fatalf("re-sent without change: %+v", ns)
	}
	// A 31st slice joins the open group as an update in its thread.
	extra := finding("fraud-block-rate", "model_behavior", "fraud", "country=ZZ", 0.9, 0.05, 1e-20)
	mustObserve(t, m, "fraud-block-rate", t0.Add(10*time.Minute), append(fs, extra)...)
	ns = mustProcess(t, m, t0.Add(10*time.Minute+30*time.Second))
	if len(ns) != 1 || ns[0].Kind != KindUpdate || ns[0].Thread != n.ID || len(ns[0].Alerts) != 31 || ns[0].Alerts[0].Change != ChangeNew {
		t.Fatalf("join: %+v", summarize(ns))
	}
	// Repeat after repeat_interval (4h since the last message), in the thread.
	at := t0.Add(10*time.Minute + 30*time.Second + 4*time.Hour)
	mustObserve(t, m, "fraud-block-rate", at, append(fs, extra)...)
	ns = mustProcess(t, m, at)
	if len(ns) != 1 || ns[0].Kind != KindUpdate || ns[0].Thread != n.ID || ns[0].Alerts[0].Change != ChangeFiring {
		t.Fatalf("repeat: %+v", summarize(ns))
	}
	// Partial resolution: an update; full resolution: resolved.
	at = at.Add(5 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at, fs[:10]...)
	ns = mustProcess(t, m, at)
	if len(ns) != 1 || ns[0].Kind != KindUpdate || countChange(ns[0], ChangeResolved) != 21 {
		t.Fatalf("partial resolution: %+v", summarize(ns))
	}
	at = at.Add(5 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at)
	ns = mustProcess(t, m, at)
	if len(ns) != 1 || ns[0].Kind != KindResolved || ns[0].Status != "resolved" || countChange(ns[0], ChangeResolved) != 10 || ns[0].Thread != n.ID {
		t.Fatalf("resolution: %+v", summarize(ns))
	}
	if ns := mustProcess(t, m, at.Add(time.Minute)); len(ns) != 0 {
		t.Fatalf("resolution sent twice: %+v", summarize(ns))
	}
	// The incident comes back: a new first message (the old group closed).
	at = at.Add(time.Hour)
	mustObserve(t, m, "fraud-block-rate", at, fs[0])
	ns = mustProcess(t, m, at.Add(time.Minute))
	if len(ns) != 1 || ns[0].Kind != KindFiring || ns[0].Thread != "" {
		t.Fatalf("refire: %+v", summarize(ns))
	}
}

type detectorsFinding = detectors.Finding

func countChange(n Notification, change string) int {
	c := 0
	for _, a := range n.Alerts {
		if a.Change == change {
			c++
		}
	}
	return c
}

func summarize(ns []Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s/%s thread=%q alerts=%d new=%d firing=%d caused=%d resolved=%d",
			n.Receiver, n.Kind, n.Thread, len(n.Alerts), countChange(n, ChangeNew), countChange(n, ChangeFiring), countChange(n, ChangeCaused), countChange(n, ChangeResolved)))
	}
	return out
}

func TestInhibitionByRootCause(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, false)

	// The product symptom shows up first, the infra cause 20 s later:
	// within the settle wait, so product is never paged.
	product := thirtySlices()[:5]
	mustObserve(t, m, "fraud-block-rate", t0, product...)
	if ns := mustProcess(t, m, t0.Add(20*time.Second)); len(ns) != 0 {
		t.Fatalf("paged before the settle wait: %v", summarize(ns))
	}
	cause := finding("fraud-features", "feature_pipeline", "fraud", "", 0.62, 0.01, 1e-30)
	cause.Feature, cause.Metric = "merchant_risk", "null_rate"
	mustObserve(t, m, "fraud-features", t0.Add(20*time.Second), cause)
	causeFP := Fingerprint("fraud-features", "fraud", "feature_pipeline", nil, "merchant_risk")

	ns := mustProcess(t, m, t0.Add(30*time.Second))
	for _, v := range m.Alerts() {
		if v.Owner == "product" && v.CausedBy != causeFP {
			t.Fatalf("product alert %s: caused_by %q, want %s", v.Fingerprint, v.CausedBy, causeFP)
		}
		if v.Owner == "product" && (len(v.Receivers) != 1 || v.Receivers[0] != "fraud-infra") {
			t.Fatalf("caused alert receivers %v, want the cause's [fraud-infra]", v.Receivers)
		}
	}
	// The product alerts settled at t0+30s but the cause has not: nothing
	// for product, and the cause waits for its own group_wait.
	for _, n := range ns {
		if n.Receiver == "fraud-product" {
			t.Fatalf("product paged: %v", summarize(ns))
		}
	}
	// The cause's first message carries the alerts it explains: one
	// message, not a message and a reply right after it.
	ns = mustProcess(t, m, t0.Add(50*time.Second))
	if len(ns) != 1 || ns[0].Receiver != "fraud-infra" || ns[0].Kind != KindFiring || countChange(ns[0], ChangeNew) != 1 || countChange(ns[0], ChangeCaused) != 5 {
		t.Fatalf("cause with the alerts it explains: %v", summarize(ns))
	}
	root := ns[0].ID
	mustDeliver(t, m)
	if got := rec.byReceiver("fraud-product"); len(got) != 0 {
		t.Fatalf("product got %d notifications", len(got))
	}
	// The cause resolves first: the infra thread hears it, but the group
	// is not closed while its caused members fire (a firing page never
	// reads RESOLVED); the product tail stays attributed to it and never
	// pages product (suppress creation) ...
	at := t0.Add(10 * time.Minute)
	mustObserve(t, m, "fraud-features", at)
	mustObserve(t, m, "fraud-block-rate", at, product...)
	ns = mustProcess(t, m, at)
	if len(ns) != 1 || ns[0].Receiver != "fraud-infra" || ns[0].Kind != KindUpdate || countChange(ns[0], ChangeResolved) != 1 {
		t.Fatalf("cause resolution: %v", summarize(ns))
	}
	// ... and its resolution is still told (never suppress resolution),
	// closing the group.
	at = at.Add(5 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at)
	ns = mustProcess(t, m, at)
	if len(ns) != 1 || ns[0].Receiver != "fraud-infra" || ns[0].Kind != KindResolved || countChange(ns[0], ChangeResolved) != 5 || ns[0].Thread != root {
		t.Fatalf("children's resolution: %v", summarize(ns))
	}
	mustDeliver(t, m)
	if got := rec.byReceiver("fraud-product"); len(got) != 0 {
		t.Fatalf("product got %d notifications", len(got))
	}
	// Another model's product alerts are not affected.
	mustObserve(t, m, "fraud-features", at, cause)
	mustObserve(t, m, "churn-block-rate", at, finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9))
	ns = mustProcess(t, m, at.Add(time.Minute))
	got := map[string]bool{}
	for _, n := range ns {
		got[n.Receiver] = true
	}
	if !got["churn-product"] || !got["fraud-infra"] {
		t.Fatalf("churn paged %v", summarize(ns))
	}
}

func TestInhibitionNeverSuppressesResolution(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, false)
	// Product pages first; the cause appears long after.
	p := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
	mustObserve(t, m, "fraud-block-rate", t0, p)
	if ns := mustProcess(t, m, t0.Add(time.Minute)); len(ns) != 1 || ns[0].Receiver != "fraud-product" {
		t.Fatalf("product page: %v", summarize(ns))
	}
	cause := finding("fraud-volume", "pipeline_outage", "fraud", "", 10, 5000, 1e-50)
	mustObserve(t, m, "fraud-volume", t0.Add(2*time.Minute), cause)
	mustProcess(t, m, t0.Add(3*time.Minute)) // cause sent, child replied in its thread
	// Repeats to product are suppressed while caused ...
	at := t0.Add(5 * time.Hour)
	mustObserve(t, m, "fraud-block-rate", at, p)
	mustObserve(t, m, "fraud-volume", at, cause)
	for _, n := range mustProcess(t, m, at) {
		if n.Receiver == "fraud-product" {
			t.Fatalf("repeat paged product while caused: %v", summarize([]Notification{n}))
		}
	}
	// ... but product, which was paged, hears the resolution.
	mustObserve(t, m, "fraud-block-rate", at.Add(time.Minute))
	var productResolved bool
	for _, n := range mustProcess(t, m, at.Add(time.Minute)) {
		if n.Receiver == "fraud-product" && n.Kind == KindResolved {
			productResolved = true
		}
	}
	if !productResolved {
		t.Fatal("product was paged but not told of the resolution")
	}
}

func TestSilences(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, false)
	ctx := context.Background()
	ms, err := ParseMatchers([]string{"model=fraud", "country=~FR|DE"})
	if err != nil {
		t.Fatal(err)
	}
	sil, err := m.AddSilence(ctx, Silence{Matchers: ms, EndsAt: t0.Add(time.Hour), CreatedBy: "ana", Comment: "known FR rollout"})
	if err != nil {
		t.Fatal(err)
	}
	fr := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
	it := finding("fraud-block-rate", "model_behavior", "fraud", "country=IT", 0.3, 0.05, 1e-9)
	mustObserve(t, m, "fraud-block-rate", t0, fr, it)
	ns := mustProcess(t, m, t0.Add(time.Minute))
	if len(ns) != 1 || len(ns[0].Alerts) != 1 || ns[0].Alerts[0].Slice["country"] != "IT" {
		t.Fatalf("silenced alert notified: %v", summarize(ns))
	}
	frFP := Fingerprint("fraud-block-rate", "fraud", "model_behavior", fr.Slice, "")
	v := viewByFP(m.Alerts(), frFP)
	if v == nil || v.State != "firing" || !v.Silenced || v.SilencedBy[0] != sil.ID {
		t.Fatalf("silenced alert not tracked: %+v", v)
	}
	// Expiry resumes notification.
	clock.Advance(10 * time.Minute)
	if _, err := m.ExpireSilence(ctx, sil.ID); err != nil {
		t.Fatal(err)
	}
	ns = mustProcess(t, m, clock.Now())
	if len(ns) != 1 || ns[0].Alerts[0].Slice["country"] != "FR" || ns[0].Alerts[0].Change != ChangeNew {
		t.Fatalf("after expiry: %v", summarize(ns))
	}
	if v := viewByFP(m.Alerts(), frFP); v.Silenced {
		t.Fatal("still silenced after expiry")
	}
	if _, err := m.AddSilence(ctx, Silence{EndsAt: t0.Add(time.Hour), CreatedBy: "ana", Comment: "x"}); err == nil {
		t.Fatal("a silence without matchers was accepted")
	}
}

func TestReloadKeepsState(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, false)
	f := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
	mustObserve(t, m, "fraud-block-rate", t0, f)
	if ns := mustProcess(t, m, t0.Add(time.Minute)); len(ns) != 1 || ns[0].Receiver != "fraud-product" {
		t.Fatalf("before reload: %v", summarize(ns))
	}
	// The new config adds an audit route (continue) for pages.
	next := loadConfig(t, baseYAML+`
  - name: audit
    webhook: {url: "http://127.0.0.1:1/audit"}
route:
  routes:
    - matchers: [severity=page]
      receiver: audit
      continue: true
`, nil)
	if err := m.Reload(next); err != nil {
		t.Fatal(err)
	}
	vs := m.Alerts()
	if len(vs) != 1 || vs[0].State != "firing" || !vs[0].ActiveAt.Equal(t0) {
		t.Fatalf("state lost on reload: %+v", vs)
	}
	// Already told fraud-product: only the new receiver hears of it.
	ns := mustProcess(t, m, t0.Add(2*time.Minute))
	if len(ns) != 1 || ns[0].Receiver != "audit" {
		t.Fatalf("after reload: %v", summarize(ns))
	}
}

func TestConcurrentDeliveryAndEvaluation(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, _ = m.Deliver(ctx)
			_ = m.Alerts()
		}
	}()
	for i := 0; i < 50; i++ {
		at := clock.Advance(time.Minute)
		var fs []detectorsFinding
		for j := 0; j < i%7; j++ {
			fs = append(fs, finding("fraud-block-rate", "model_behavior", "fraud", fmt.Sprintf("country=C%d", j), 0.3, 0.05, 1e-9))
		}
		mustObserve(t, m, "fraud-block-rate", at, fs...)
		mustProcess(t, m, at)
	}
	cancel()
	<-done
	mustDeliver(t, m)
	if len(m.Outbox()) != 0 {
		t.Fatalf("%d left in the outbox", len(m.Outbox()))
	}
	if len(rec.all()) == 0 {
		t.Fatal("nothing delivered")
	}
}
