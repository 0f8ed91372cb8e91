package alerts

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
)

// divergence builds a shadow finding: production blocks what the shadow
// passes (prodBlocks) or the reverse.
func divergence(slice string, value, baseline float64, n uint64, prodBlocks bool) detectors.Finding {
	f := finding("fraud-shadow", detectors.ClassModelDivergence, "fraud", slice, value, baseline, 1e-12)
	f.Kind, f.Metric, f.NCurrent = "shadow", detectors.MetricProdBlocks, n
	if !prodBlocks {
		f.Metric = detectors.MetricShadowBlocks
	}
	return f
}

func withRollout(f detectors.Finding) detectors.Finding {
	f.Rollout = &detectors.Rollout{Model: "fraud", Role: "production", From: "v7", To: "v8", At: t0.Add(-20 * time.Minute), Share: 0.94}
	return f
}

func blockRate(slice string, value, baseline float64, n uint64) detectors.Finding {
	f := finding("fraud-block-rate", detectors.ClassModelBehavior, "fraud", slice, value, baseline, 1e-12)
	f.NCurrent = n
	return f
}

func TestConsolidation(t *testing.T) {
	type obs struct {
		detector string
		after    time.Duration
		f        detectors.Finding
	}
	nullSpike := func(moved float64) detectors.Finding {
		f := finding("fraud-features", detectors.ClassFeaturePipeline, "fraud", "", 0.9, 0.005, 1e-30)
		f.Kind, f.Metric, f.Feature = "feature_health", detectors.MetricNullRate, "device_age_days"
		if moved >= 0 {
			f.Details = map[string]float64{detectors.DetailAffectedMoved: moved}
		}
		return f
	}
	tests := []struct {
		name string
		obs  []obs
		// roots lists "metric:slice" of the roots; explained maps each
		// explained alert to its root's "metric:slice".
		roots     []string
		explained map[string]string
		summary   string // a root summary must contain this
	}{
		{
			name: "a slice block explains the slice's divergence",
			obs: []obs{
				{"fraud-block-rate", 0, blockRate("country=FR", 0.49, 0.006, 600)},
				{"fraud-shadow", 0, divergence("country=FR", 0.48, 0.001, 600, true)},
			},
			roots:     []string{"block_rate:country=FR"},
			explained: map[string]string{"disagreement_production_blocks:country=FR": "block_rate:country=FR"},
			summary:   "also moves divergence in country FR",
		},
		{
			name: "a broad move explains each country's divergence and the aggregate's",
			obs: []obs{
				{"fraud-block-rate", 0, blockRate("", 0.03, 0.01, 7000)},
				{"fraud-shadow", 0, divergence("", 0.019, 0.001, 7000, true)},
				{"fraud-shadow", 0, divergence("country=US", 0.022, 0.001, 1700, true)},
				{"fraud-shadow", 0, divergence("country=BR", 0.025, 0.002, 400, true)},
			},
			roots: []string{"block_rate:"},
			explained: map[string]string{"disagreement_production_blocks:": "block_rate:",
				"disagreement_production_blocks:country=US": "block_rate:", "disagreement_production_blocks:country=BR": "block_rate:"},
			summary: "also moves divergence overall and in country BR and US",
		},
		{
			name: "a divergence larger than the block move stands",
			obs: []obs{
				{"fraud-block-rate", 0, blockRate("country=FR", 0.05, 0.006, 600)},
				{"fraud-shadow", 0, divergence("country=FR", 0.3, 0.001, 600, true)},
			},
			roots: []string{"block_rate:country=FR", "disagreement_production_blocks:country=FR"},
		},
		{
			name: "production blocking less does not explain production blocking more",
			obs: []obs{
				{"fraud-block-rate", 0, blockRate("country=FR", 0.001, 0.006, 6000)},
				{"fraud-shadow", 0, divergence("country=FR", 0.02, 0.001, 6000, true)},
			},
			roots: []string{"block_rate:country=FR", "disagreement_production_blocks:country=FR"},
		},
		{
			name: "a divergence that started first is not a consequence",
			obs: []obs{
				{"fraud-shadow", 0, divergence("country=FR", 0.3, 0.001, 600, true)},
				{"fraud-block-rate", 20 * time.Minute, blockRate("country=FR", 0.49, 0.006, 600)},
			},
			roots: []string{"block_rate:country=FR", "disagreement_production_blocks:country=FR"},
		},
		{
			// A new production version blocks three times as much: BR
			// moves far more than the aggregate, yet it is the same fact.
			name: "a rollout is the root of the model's simultaneous moves",
			obs: []obs{
				{"fraud-block-rate", 0, withRollout(blockRate("country=BR", 0.041, 0.012, 1000))},
				{"fraud-block-rate", 0, withRollout(blockRate("merchant_category=gaming", 0.036, 0.014, 1300))},
				{"fraud-block-rate", 0, withRollout(blockRate("", 0.014, 0.007, 18000))},
				{"fraud-shadow", 0, withRollout(divergence("", 0.011, 0.001, 18000, true))},
			},
			roots: []string{"block_rate:"},
			explained: map[string]string{"block_rate:country=BR": "block_rate:", "block_rate:merchant_category=gaming": "block_rate:",
				"disagreement_production_blocks:": "block_rate:"},
			summary: "also moves block rate in country BR and merchant_category gaming, divergence overall",
		},
		{
			name: "a null spike that moves decisions explains the product page",
			obs: []obs{
				{"fraud-features", 0, nullSpike(1)},
				{"fraud-block-rate", 5 * time.Minute, blockRate("", 0.05, 0.01, 7000)},
			},
			roots:     []string{"null_rate:"},
			explained: map[string]string{"block_rate:": "null_rate:"},
			summary:   "also moves block rate overall",
		},
		{
			name: "a null spike that started after the product page explains nothing",
			obs: []obs{
				{"fraud-block-rate", 0, blockRate("country=FR", 0.49, 0.006, 600)},
				{"fraud-features", 14 * time.Minute, nullSpike(-1)},
			},
			roots: []string{"block_rate:country=FR", "null_rate:"},
		},
		{
			name: "a null spike whose rows are blocked like the rest explains nothing",
			obs: []obs{
				{"fraud-features", 0, nullSpike(0)},
				{"fraud-block-rate", 0, blockRate("country=FR", 0.49, 0.006, 600)},
			},
			roots: []string{"block_rate:country=FR", "null_rate:"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, baseYAML, nil)
			clock := newClock()
			m := newManager(t, cfg, clock, &recorder{}, false)
			var last time.Duration
			for _, o := range tc.obs {
				mustObserve(t, m, o.detector, t0.Add(o.after), o.f)
				mustProcess(t, m, t0.Add(o.after+time.Minute))
				last = o.after
			}
			// Everything still fires: observe again and process.
			at := t0.Add(last + 5*time.Minute)
			byDet := map[string][]detectors.Finding{}
			for _, o := range tc.obs {
				byDet[o.detector] = append(byDet[o.detector], o.f)
			}
			for d, fs := range byDet {
				mustObserve(t, m, d, at, fs...)
			}
			mustProcess(t, m, at.Add(time.Minute))
			name := map[string]string{}
			vs := m.Alerts()
			for _, v := range vs {
				name[v.Fingerprint] = v.Metric + ":" + SliceLabel(v.Slice)
			}
			var roots []string
			explained := map[string]string{}
			for _, v := range vs {
				if v.CausedBy == "" {
					roots = append(roots, name[v.Fingerprint])
					if tc.summary != "" && len(tc.roots) > 0 && name[v.Fingerprint] == tc.roots[0] && !strings.Contains(v.Summary, tc.summary) {
						t.Errorf("root summary %q lacks %q", v.Summary, tc.summary)
					}
				} else {
					explained[name[v.Fingerprint]] = name[v.CausedBy]
				}
			}
			if strings.Join(sorted(roots), " ") != strings.Join(sorted(tc.roots), " ") {
				t.Errorf("roots %v, want %v", roots, tc.roots)
			}
			if len(explained) != len(tc.explained) {
				t.Errorf("explained %v, want %v", explained, tc.explained)
			}
			for k, v := range tc.explained {
				if explained[k] != v {
					t.Errorf("%s explained by %q, want %q", k, explained[k], v)
				}
			}
		})
	}
}

// TestExplainedAlertsAreOneLine: a root's thread lists the root and one
// line counting what it explains; a new explained alert is told once, not
// at every run.
func TestExplainedAlertsAreOneLine(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, true)
	fs := []detectors.Finding{divergence("", 0.019, 0.001, 7000, true), divergence("country=US", 0.022, 0.001, 1700, true),
		divergence("country=BR", 0.025, 0.002, 400, true)}
	for run := 0; run < 3; run++ {
		at := t0.Add(time.Duration(run) * 5 * time.Minute)
		mustObserve(t, m, "fraud-block-rate", at, blockRate("", 0.03, 0.01, 7000))
		mustObserve(t, m, "fraud-shadow", at, fs...)
		mustProcess(t, m, at)
		mustDeliver(t, m)
	}
	ns := rec.byReceiver("fraud-product")
	if len(ns) != 1 || countChange(ns[0], ChangeCaused) != 3 {
		t.Fatalf("want the root's message counting its consequences, got %v", summarize(ns))
	}
	s := NewSlack(SlackOptions{Name: "fraud-product", Receiver: *cfg.Receivers[0].Slack, Global: cfg.Slack, ExternalURL: "http://mlwatch.test"})
	blocks, text := s.render(&ns[0], false)
	raw, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	joined := string(raw)
	rootFP := ns[0].Alerts[0].Fingerprint
	if !strings.Contains(joined, "3 alerts explained by this cause: `disagreement_production_blocks` in country=US, overall, country=BR") ||
		!strings.Contains(joined, "http://mlwatch.test/alerts/"+rootFP+"|all listed on the alert page") || strings.Count(joined, "country=US") != 1 {
		t.Errorf("the message should count the explained alerts on one line naming the first few, not list them:\n%s\n%s", joined, text)
	}
}

func sorted(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestRolloutStaysRoot: a finding names a rollout only while the switch is
// inside its window; an hour later a country that starts to fire is still
// the rollout's move, told under the alert that spoke for it.
func TestRolloutStaysRoot(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, false)
	agg := blockRate("", 0.014, 0.007, 18000)
	mustObserve(t, m, "fraud-block-rate", t0, withRollout(agg))
	mustProcess(t, m, t0.Add(time.Minute))
	at := t0.Add(80 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at, agg, blockRate("country=IN", 0.033, 0.007, 736))
	mustProcess(t, m, at.Add(time.Minute))
	aggFP := Fingerprint("fraud-block-rate", "fraud", string(detectors.ClassModelBehavior), nil, "")
	for _, v := range m.Alerts() {
		if v.Slice["country"] == "IN" && v.CausedBy != aggFP {
			t.Errorf("IN started with the rollout's incident open: want it explained by the aggregate, got caused_by %q", v.CausedBy)
		}
	}
	// A new incident after every alert of the rollout resolved stands.
	at = at.Add(10 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at)
	mustProcess(t, m, at.Add(time.Minute))
	at = at.Add(10 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at, blockRate("country=BR", 0.2, 0.01, 1000))
	mustProcess(t, m, at.Add(time.Minute))
	for _, v := range m.Alerts() {
		if v.Slice["country"] == "BR" && v.CausedBy != "" {
			t.Errorf("BR after the rollout's incident closed must stand, caused_by %q", v.CausedBy)
		}
	}
}

// driftYAML adds the drift twin to baseYAML: a second block-rate detector
// of the model (a reference baseline), a ticket.
var driftYAML = strings.Replace(baseYAML, `  - name: fraud-features
`, `  - name: fraud-block-rate-drift
    kind: block_rate
    model: fraud
    severity: ticket
  - name: fraud-features
`, 1)

// TestDriftTwinFolds: a second detector of the same metric that sees the
// root's move (the drift twin of a seasonal block rate) is folded into the
// root: no alert, no Slack line, no count of its own; the root's view
// carries it and its summary names it. Alone (a slow ramp) it is a ticket.
func TestDriftTwinFolds(t *testing.T) {
	cfg := loadConfig(t, driftYAML, nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, false)
	twinF := func(slice string, v, b float64, n uint64) detectors.Finding {
		f := blockRate(slice, v, b, n)
		f.Detector = "fraud-block-rate-drift"
		return f
	}
	for run := 0; run < 3; run++ {
		at := t0.Add(time.Duration(run) * 5 * time.Minute)
		mustObserve(t, m, "fraud-block-rate", at, blockRate("country=FR", 0.49, 0.006, 600))
		if run > 0 { // the twin runs hourly: it joins later
			mustObserve(t, m, "fraud-block-rate-drift", at, twinF("country=FR", 0.4, 0.006, 7000), twinF("", 0.03, 0.01, 90000))
		}
		mustProcess(t, m, at.Add(time.Minute))
		mustDeliver(t, m)
	}
	vs := m.Alerts()
	if len(vs) != 1 {
		for _, v := range vs {
			t.Errorf("alert %s %s %s caused_by %q", v.Detector, SliceLabel(v.Slice), v.Severity, v.CausedBy)
		}
		t.Fatalf("want one alert (the seasonal root), got %d", len(vs))
	}
	root := vs[0]
	if root.Detector != "fraud-block-rate" || len(root.Folded) != 2 {
		t.Errorf("root %s with %d folded twins, want fraud-block-rate with 2", root.Detector, len(root.Folded))
	}
	if !strings.Contains(root.Summary, "also seen by fraud-block-rate-drift (country=FR, overall)") {
		t.Errorf("root summary %q does not name the twin", root.Summary)
	}
	for _, f := range root.Folded {
		if _, ok := m.Alert(f.Fingerprint); !ok {
			t.Errorf("folded twin %s not found by fingerprint", f.Fingerprint)
		}
	}
	for _, n := range rec.all() {
		for _, v := range n.Alerts {
			if v.Detector == "fraud-block-rate-drift" {
				t.Errorf("the twin was notified (%s to %s)", v.Change, n.Receiver)
			}
		}
	}
	if ns := rec.byReceiver("fraud-product"); len(ns) != 1 {
		t.Errorf("want the root's one message, got %v", summarize(ns))
	}

	// A slow ramp: only the twin fires, and it is a ticket of its own.
	m2 := newManager(t, cfg, clock, &recorder{}, false)
	mustObserve(t, m2, "fraud-block-rate-drift", t0, twinF("country=US", 0.012, 0.006, 9000))
	mustProcess(t, m2, t0.Add(time.Minute))
	vs = m2.Alerts()
	if len(vs) != 1 || vs[0].Severity != "ticket" || vs[0].CausedBy != "" || len(vs[0].Folded) != 0 {
		t.Errorf("a ramp only the twin sees must be its own ticket, got %+v", vs)
	}
}

// TestIncidentRootStaysWhileItsMovesFire: a version rollout shows first in
// the riskiest category (digital_goods pages, gaming is its move); the
// next run the overall block rate carries the broad move and the category,
// now part of it, clears. The incident goes on (gaming still fires), so
// the overall joins the category's thread: no second page. Once nothing
// of the incident fires, a new alert stands on its own.
func TestIncidentRootStaysWhileItsMovesFire(t *testing.T) {
	cfg := loadConfig(t, strings.Replace(baseYAML, "slices: [country]", "slices: [country, merchant_category]", 1), nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, false)
	dg := withRollout(blockRate("merchant_category=digital_goods", 0.049, 0.018, 1476))
	gaming := withRollout(blockRate("merchant_category=gaming", 0.036, 0.013, 1221))
	at := t0
	mustObserve(t, m, "fraud-block-rate", at, dg, gaming)
	mustProcess(t, m, at.Add(30*time.Second))
	mustDeliver(t, m)
	at = at.Add(20 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at, gaming, withRollout(blockRate("", 0.018, 0.007, 18929)))
	mustProcess(t, m, at.Add(30*time.Second))
	mustDeliver(t, m)
	dgFP := Fingerprint("fraud-block-rate", "fraud", string(detectors.ClassModelBehavior), dg.Slice, "")
	for _, v := range m.Alerts() {
		if len(v.Slice) == 0 && v.CausedBy != dgFP {
			t.Errorf("the overall block rate started while digital_goods' incident went on: want it explained by digital_goods, caused_by %q", v.CausedBy)
		}
	}
	var firsts int
	for _, n := range rec.byReceiver("fraud-product") {
		if n.Kind == KindFiring {
			firsts++
		}
	}
	if firsts != 1 {
		t.Errorf("%d first messages (pages) for one incident, want 1: %v", firsts, summarize(rec.byReceiver("fraud-product")))
	}
	// Everything clears; digital_goods is forgotten once its thread is
	// told; a new FR page later stands.
	for k := 0; k < 3; k++ {
		at = at.Add(20 * time.Minute)
		mustObserve(t, m, "fraud-block-rate", at)
		mustProcess(t, m, at.Add(30*time.Second))
		mustDeliver(t, m)
	}
	at = at.Add(20 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at, blockRate("country=FR", 0.49, 0.006, 600))
	mustProcess(t, m, at.Add(30*time.Second))
	for _, v := range m.Alerts() {
		if v.Slice["country"] == "FR" && v.CausedBy != "" {
			t.Errorf("FR after the incident closed must stand, caused_by %q", v.CausedBy)
		}
	}
}

// TestDriftTwinFoldsIntoSibling: a null spike explains both block-rate
// detectors' overall move; the drift twin folds into the seasonal one.
func TestDriftTwinFoldsIntoSibling(t *testing.T) {
	cfg := loadConfig(t, driftYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, false)
	spike := finding("fraud-features", detectors.ClassFeaturePipeline, "fraud", "", 0.9, 0.005, 1e-30)
	spike.Kind, spike.Metric, spike.Feature = "feature_health", detectors.MetricNullRate, "device_age_days"
	tw := blockRate("", 0.15, 0.007, 25000)
	tw.Detector = "fraud-block-rate-drift"
	mustObserve(t, m, "fraud-features", t0, spike)
	mustObserve(t, m, "fraud-block-rate", t0, blockRate("", 0.2, 0.007, 19000))
	mustObserve(t, m, "fraud-block-rate-drift", t0, tw)
	mustProcess(t, m, t0.Add(time.Minute))
	vs := m.Alerts()
	if len(vs) != 2 {
		t.Fatalf("want the null spike and the seasonal block rate, got %d alerts", len(vs))
	}
	for _, v := range vs {
		if v.Detector == "fraud-block-rate" && (len(v.Folded) != 1 || v.CausedBy == "" || !strings.Contains(v.Summary, "also seen by fraud-block-rate-drift (overall)")) {
			t.Errorf("seasonal block rate: %d folded, caused_by %q, summary %q", len(v.Folded), v.CausedBy, v.Summary)
		}
	}
}

// TestBroadRootFoldsItsSlices: a broad root (a rollout's, or the
// aggregate's from an earlier run) folds the slices of its own detector
// that moved with it, small or not: they are part of its view and its
// "also moves", not alerts. A slice far beyond it, or moving against it,
// stays an alert of its own.
func TestBroadRootFoldsItsSlices(t *testing.T) {
	cfg := loadConfig(t, strings.Replace(baseYAML, "slices: [country]", "slices: [country, merchant_category]", 1), nil)
	at := func(f detectors.Finding, when time.Time) detectors.Finding {
		f.At = when
		return f
	}
	t.Run("rollout root in a category", func(t *testing.T) {
		m := newManager(t, cfg, newClock(), &recorder{}, false)
		dg := withRollout(blockRate("merchant_category=digital_goods", 0.049, 0.018, 1476))
		// AR: 18 blocks of 270 where the rollout's move predicts about
		// 10 (2.7 times 1%): beyond twice the root's relative change only
		// by noise. FR blocks half its traffic: an incident of its own.
		// US blocks less: against the rollout.
		ar := withRollout(blockRate("country=AR", 0.067, 0.010, 270))
		ar.NBaseline = 1849
		fr := withRollout(blockRate("country=FR", 0.49, 0.006, 600))
		us := withRollout(blockRate("country=US", 0.002, 0.012, 4000))
		mustObserve(t, m, "fraud-block-rate", t0, at(dg, t0), at(ar, t0), at(fr, t0), at(us, t0))
		mustProcess(t, m, t0.Add(time.Minute))
		got := map[string]View{}
		for _, v := range m.Alerts() {
			got[SliceLabel(v.Slice)] = v
		}
		root, ok := got["merchant_category=digital_goods"]
		if !ok || root.CausedBy != "" {
			t.Fatalf("want digital_goods as the root, got %v", got)
		}
		if _, ok := got["country=AR"]; ok {
			t.Errorf("AR moved with the rollout: want it folded into the root, got an alert")
		}
		if len(root.Folded) != 1 || root.Folded[0].Slice["country"] != "AR" {
			t.Errorf("root's folded %v, want AR", root.Folded)
		}
		if !strings.Contains(root.Summary, "also moves block rate in country AR") {
			t.Errorf("root summary %q does not name AR", root.Summary)
		}
		for _, s := range []string{"country=FR", "country=US"} {
			if _, ok := got[s]; !ok {
				t.Errorf("%s (far beyond, or against, the rollout) must stay an alert", s)
			}
		}
	})
	t.Run("aggregate root of an earlier run", func(t *testing.T) {
		m := newManager(t, cfg, newClock(), &recorder{}, false)
		agg := blockRate("", 0.021, 0.007, 23534)
		mustObserve(t, m, "fraud-block-rate", t0, at(agg, t0))
		mustProcess(t, m, t0.Add(time.Minute))
		later := t0.Add(20 * time.Minute)
		// The aggregate still fires (its last finding is from t0's run in
		// this hand-made sequence); MX joins later, noisy but with it: 20
		// blocks of 404 where twice the overall's move predicts 14.
		mx := blockRate("country=MX", 0.0495, 0.007, 404)
		mx.NBaseline = 3077
		br := blockRate("country=BR", 0.3, 0.01, 1000)
		mustObserve(t, m, "fraud-block-rate", later, at(agg, t0), at(mx, later), at(br, later))
		mustProcess(t, m, later.Add(time.Minute))
		n := 0
		for _, v := range m.Alerts() {
			n++
			if v.Slice["country"] == "MX" {
				t.Errorf("MX moved with the overall root: want it folded, got an alert caused by %q", v.CausedBy)
			}
		}
		if n != 2 {
			t.Errorf("want the overall root and BR (far beyond it), got %d alerts", n)
		}
	})
}

// TestRolloutPageNotHiddenUnderTicket: a rollout's drift ticket (a 12-hour
// window sees it first) is notified as the incident's root; when the
// seasonal block rate pages for the same rollout a run later, the page is
// not explained by (nor folded into) the ticket: it pages.
func TestRolloutPageNotHiddenUnderTicket(t *testing.T) {
	cfg := loadConfig(t, driftYAML, nil)
	clock := newClock()
	rec := &recorder{}
	m := newManager(t, cfg, clock, rec, false)
	tw := withRollout(blockRate("", 0.013, 0.007, 14412))
	tw.Detector, tw.Severity = "fraud-block-rate-drift", "ticket"
	mustObserve(t, m, "fraud-block-rate-drift", t0, tw)
	mustProcess(t, m, t0.Add(time.Minute))
	mustDeliver(t, m)
	later := t0.Add(20 * time.Minute)
	mustObserve(t, m, "fraud-block-rate-drift", later, tw)
	mustObserve(t, m, "fraud-block-rate", later, withRollout(blockRate("", 0.016, 0.007, 14663)))
	mustProcess(t, m, later.Add(time.Minute))
	mustDeliver(t, m)
	var page *View
	vs := m.Alerts()
	for i := range vs {
		if vs[i].Detector == "fraud-block-rate" {
			page = &vs[i]
		}
	}
	if page == nil || page.CausedBy != "" || page.Severity != "page" {
		t.Fatalf("want the seasonal page as a root of its own, got %+v", vs)
	}
	paged := false
	for _, n := range rec.all() {
		for _, v := range n.Alerts {
			paged = paged || v.Detector == "fraud-block-rate" && v.Severity == "page"
		}
	}
	if !paged {
		t.Errorf("the rollout's page was never notified: %v", summarize(rec.all()))
	}
}
