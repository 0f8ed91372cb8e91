package alerts

import (
	"context"
	"github.com/mlwatch/mlwatch/detectors"
	"math"
	"strings"
	"testing"
	"time"
)

const lifecycleYAML = `
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: p, infra: i}
detectors:
  - name: br
    kind: block_rate
    model: fraud
    for: 10m
    keep_firing_for: 10m
    severity: ticket
    labels: {team: fraud-ml}
  - name: plain
    kind: block_rate
    model: fraud
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/p"}
  - name: i
    webhook: {url: "http://127.0.0.1:1/i"}
`

func TestLifecycle(t *testing.T) {
	cfg := loadConfig(t, lifecycleYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, false)
	fr := finding("br", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
	fp := Fingerprint("br", "fraud", "model_behavior", fr.Slice, "")
	state := func() string {
		v := viewByFP(m.Alerts(), fp)
		if v == nil {
			return "inactive"
		}
		return v.State
	}

	mustObserve(t, m, "br", t0, fr)
	if s := state(); s != "pending" {
		t.Fatalf("t0: %s, want pending (for: 10m)", s)
	}
	mustObserve(t, m, "br", t0.Add(5*time.Minute), fr)
	if s := state(); s != "pending" {
		t.Fatalf("t0+5m: %s, want pending", s)
	}
	mustObserve(t, m, "br", t0.Add(10*time.Minute), fr)
	if s := state(); s != "firing" {
		t.Fatalf("t0+10m: %s, want firing", s)
	}
	v := viewByFP(m.Alerts(), fp)
	if v.Severity != "ticket" || v.Labels["team"] != "fraud-ml" || v.Labels["country"] != "FR" || v.Labels["slice"] != "country=FR" || v.Owner != "product" {
		t.Fatalf("labels/severity from config not applied: %+v", v)
	}
	// Clear: keep_firing_for 10m holds it.
	mustObserve(t, m, "br", t0.Add(15*time.Minute))
	if s := state(); s != "firing" {
		t.Fatalf("clear for 0m: %s, want firing (keep_firing_for)", s)
	}
	// The condition comes back: the keep-firing clock restarts.
	mustObserve(t, m, "br", t0.Add(20*time.Minute), fr)
	mustObserve(t, m, "br", t0.Add(25*time.Minute))
	mustObserve(t, m, "br", t0.Add(30*time.Minute))
	if s := state(); s != "firing" {
		t.Fatalf("clear for 5m: %s, want firing", s)
	}
	// A run of another detector does not clear this one.
	mustObserve(t, m, "plain", t0.Add(34*time.Minute))
	if s := state(); s != "firing" {
		t.Fatalf("another detector's run resolved it: %s", s)
	}
	mustObserve(t, m, "br", t0.Add(35*time.Minute))
	if s := state(); s != "resolved" {
		t.Fatalf("clear for 10m: %s, want resolved", s)
	}
	if v := viewByFP(m.Alerts(), fp); v.ResolvedAt == nil || !v.ResolvedAt.Equal(t0.Add(35*time.Minute)) {
		t.Fatalf("resolved_at %v", v.ResolvedAt)
	}
	// Active again: a new lifecycle starting pending.
	mustObserve(t, m, "br", t0.Add(40*time.Minute), fr)
	if s := state(); s != "pending" {
		t.Fatalf("reactivated: %s, want pending", s)
	}
	// Pending that clears goes away without ever firing.
	mustObserve(t, m, "br", t0.Add(45*time.Minute))
	mustProcess(t, m, t0.Add(45*time.Minute))
	if s := state(); s != "inactive" {
		t.Fatalf("pending then clear: %s, want inactive", s)
	}
}

func TestDefaultForIsOneEvaluation(t *testing.T) {
	cfg := loadConfig(t, lifecycleYAML, nil)
	m := newManager(t, cfg, newClock(), &recorder{}, false)
	f := finding("plain", "model_behavior", "fraud", "", 0.3, 0.05, 1e-9)
	mustObserve(t, m, "plain", t0, f)
	if vs := m.Alerts(); len(vs) != 1 || vs[0].State != "firing" || vs[0].Severity != "page" {
		t.Fatalf("want one firing page alert, got %+v", vs)
	}
	// No keep_firing_for: the first clear run resolves.
	mustObserve(t, m, "plain", t0.Add(5*time.Minute))
	if vs := m.Alerts(); vs[0].State != "resolved" {
		t.Fatalf("state %s, want resolved", vs[0].State)
	}
}

func TestOneShotIgnoresFor(t *testing.T) {
	cfg := loadConfig(t, lifecycleYAML, nil)
	m := newManager(t, cfg, newClock(), &recorder{}, true)
	mustObserve(t, m, "br", t0, finding("br", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9))
	if vs := m.Alerts(); len(vs) != 1 || vs[0].State != "firing" {
		t.Fatalf("one-shot: want firing, got %+v", vs)
	}
}

func TestDedupKeepsWorstFinding(t *testing.T) {
	cfg := loadConfig(t, lifecycleYAML, nil)
	m := newManager(t, cfg, newClock(), &recorder{}, false)
	a := finding("plain", "model_behavior", "fraud", "country=FR", 0.2, 0.05, 1e-3)
	b := finding("plain", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
	b.Metric = "score_psi"
	c := finding("plain", "model_behavior", "fraud", "country=DE", 0.3, 0.05, 1e-9)
	mustObserve(t, m, "plain", t0, a, b, c)
	vs := m.Alerts()
	if len(vs) != 2 {
		t.Fatalf("want 2 alerts (FR deduplicated), got %d", len(vs))
	}
	fr := viewByFP(vs, Fingerprint("plain", "fraud", "model_behavior", map[string]string{"country": "FR"}, ""))
	if fr == nil || fr.Metric != "score_psi" {
		t.Fatalf("dedup kept %+v, want the p=1e-9 finding", fr)
	}
}

func TestFingerprint(t *testing.T) {
	base := Fingerprint("d", "m", "c", map[string]string{"a": "1", "b": "2"}, "f")
	if base != Fingerprint("d", "m", "c", map[string]string{"b": "2", "a": "1"}, "f") {
		t.Fatal("fingerprint depends on map order")
	}
	for name, other := range map[string]string{
		"detector": Fingerprint("x", "m", "c", map[string]string{"a": "1", "b": "2"}, "f"),
		"model":    Fingerprint("d", "x", "c", map[string]string{"a": "1", "b": "2"}, "f"),
		"class":    Fingerprint("d", "m", "x", map[string]string{"a": "1", "b": "2"}, "f"),
		"slice":    Fingerprint("d", "m", "c", map[string]string{"a": "1"}, "f"),
		"feature":  Fingerprint("d", "m", "c", map[string]string{"a": "1", "b": "2"}, ""),
	} {
		if other == base {
			t.Errorf("fingerprint ignores the %s", name)
		}
	}
	if len(base) != 16 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Errorf("fingerprint %q: want 16 hex digits", base)
	}
}

func TestMonitorFindingsKeepTheirSeverity(t *testing.T) {
	// br pages for its own findings; its failures are still tickets.
	cfg := loadConfig(t, strings.Replace(lifecycleYAML, "severity: ticket", "severity: page", 1), nil)
	m := newManager(t, cfg, newClock(), &recorder{}, false)
	f := finding("br", "monitoring_failure", "fraud", "", 3, 0, math.NaN())
	f.Kind = KindMonitor
	mustObserve(t, m, "monitor", t0, f)
	vs := m.Alerts()
	if len(vs) != 1 || vs[0].Severity != "ticket" || vs[0].Owner != "infra" || vs[0].Receiver != "i" || vs[0].Labels["team"] != "fraud-ml" {
		t.Fatalf("monitoring failure: %+v", vs)
	}
	// The monitor's next report without it resolves it; a run of the
	// detector itself does not touch it.
	mustObserve(t, m, "br", t0.Add(time.Minute))
	if vs := m.Alerts(); vs[0].State != "firing" {
		t.Fatalf("state %s after the detector's own run", vs[0].State)
	}
	mustObserve(t, m, "monitor", t0.Add(2*time.Minute))
	if vs := m.Alerts(); vs[0].State != "resolved" {
		t.Fatalf("state %s after the monitor's clear report", vs[0].State)
	}
}

// TestUncheckedSlicesHold checks that a slice the detector could not decide
// (too few samples, e.g. at night) keeps its alert instead of resolving it,
// for at most UncheckedHold, and that a checked, clear slice resolves.
func TestUncheckedSlicesHold(t *testing.T) {
	cfg := loadConfig(t, lifecycleYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, false)
	fr := finding("br", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
	de := finding("br", "model_behavior", "fraud", "country=DE", 0.3, 0.05, 1e-9)
	fpFR := Fingerprint("br", "fraud", "model_behavior", fr.Slice, "")
	fpDE := Fingerprint("br", "fraud", "model_behavior", de.Slice, "")
	state := func(fp string) string {
		if v := viewByFP(m.Alerts(), fp); v != nil {
			return v.State
		}
		return "inactive"
	}
	t0 := clock.Now()
	fired := t0.Add(10 * time.Minute) // for: 10m
	mustObserve(t, m, "br", t0, fr, de)
	mustObserve(t, m, "br", fired, fr, de)
	if state(fpFR) != "firing" || state(fpDE) != "firing" {
		t.Fatalf("both should fire: %s %s", state(fpFR), state(fpDE))
	}
	// FR goes below min_samples; DE is checked and clear.
	quiet := detectors.Unchecked{Slice: map[string]string{"country": "FR"}}
	observe := func(at time.Time) {
		t.Helper()
		if err := m.Observe(context.Background(), "br", at, nil, quiet); err != nil {
			t.Fatal(err)
		}
	}
	for h := 1; h <= 5; h++ {
		observe(fired.Add(time.Duration(h) * time.Hour))
		if state(fpFR) != "firing" {
			t.Fatalf("hour %d: an unchecked slice must hold its alert, got %s", h, state(fpFR))
		}
		if h >= 2 && state(fpDE) != "resolved" {
			t.Fatalf("hour %d: a checked clear slice must resolve (after keep_firing_for), got %s", h, state(fpDE))
		}
	}
	// Past the hold it is treated as clear: keep_firing_for, then resolved.
	observe(fired.Add(UncheckedHold))
	observe(fired.Add(UncheckedHold + 10*time.Minute))
	if state(fpFR) != "resolved" {
		t.Fatalf("after %s unchecked the alert must resolve, got %s", UncheckedHold, state(fpFR))
	}
}

// Two findings share an alert's fingerprint (a slice's block rate and its
// score distribution). Once the alert shows one, later runs keep it while
// it still fires, even when the other is now the more extreme figure: the
// alert's thread and its resolution tell one story.
func TestAlertKeepsItsMetric(t *testing.T) {
	cfg := loadConfig(t, lifecycleYAML, nil)
	m := newManager(t, cfg, newClock(), &recorder{}, false)
	rate := finding("plain", "model_behavior", "fraud", "country=DE", 0.5, 0.005, 1e-12)
	psi := finding("plain", "model_behavior", "fraud", "country=DE", 1.1, 0.01, 1e-12)
	psi.Metric, psi.Summary = "score_psi", "DE score distribution PSI 1.1"
	fp := Fingerprint("plain", "fraud", "model_behavior", rate.Slice, "")

	mustObserve(t, m, "plain", t0, rate)
	if v := viewByFP(m.Alerts(), fp); v == nil || v.Metric != "block_rate" {
		t.Fatalf("first run: %+v, want the block rate", v)
	}
	// Both fire with the same p-value; PSI's relative change is larger.
	mustObserve(t, m, "plain", t0.Add(5*time.Minute), psi, rate)
	if v := viewByFP(m.Alerts(), fp); v.Metric != "block_rate" {
		t.Errorf("second run shows %s (%s), want the block rate it fired with", v.Metric, v.Summary)
	}
	// The block rate is gone: the PSI speaks for the alert.
	mustObserve(t, m, "plain", t0.Add(10*time.Minute), psi)
	if v := viewByFP(m.Alerts(), fp); v.Metric != "score_psi" {
		t.Errorf("third run shows %s, want score_psi", v.Metric)
	}
}
