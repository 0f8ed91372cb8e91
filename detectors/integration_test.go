package detectors_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// The generated dataset: two quiet weeks from Monday 2026-11-02, then a
// day (base+14d) with one incident an hour apart from the next, each
// evaluated at its end. The rate is low to keep the run short; slice
// incidents sit at their country's busy hours so the slice has
// min_samples requests.
var (
	base     = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	day14    = base.Add(14 * 24 * time.Hour)
	genRate  = 60.0
	genUntil = day14.Add(19 * time.Hour)
)

type incident struct {
	spec string // traffic.ParseIncident form, offsets from day14
	at   time.Duration
}

var incidents = map[string]incident{
	"null_spike":        {"null_spike:+2h:+3h:device_age_days", 3 * time.Hour},
	"default_fill":      {"default_fill:+4h:+5h:ip_risk_score", 5 * time.Hour},
	"shadow_divergence": {"shadow_divergence:+6h:+7h:0.2", 7 * time.Hour},
	"outage":            {"outage:+8h:+9h", 9 * time.Hour},
	"tiny_slice_block":  {"slice_block:+10h:+11h:NZ", 11 * time.Hour},
	"country_outage":    {"outage:+12h:+13h:US", 13 * time.Hour},
	"shadow_outage":     {"shadow_outage:+16h:+17h", 17 * time.Hour},
	"slice_block":       {"slice_block:+14h:+15h:FR", 15 * time.Hour},
	"world_shift":       {"world_shift:+18h:+19h:BR", 19 * time.Hour},
}

// testDetectors are added to the example config for the incident tests
// (not the quiet week): a golden-row expectation that France is rarely
// blocked, and a staleness check with a short max age.
const testDetectors = `
  - name: test-fr-expectation
    kind: expectation
    model: fraud
    window: 1h
    min_samples: 50
    slices: []
    expectation:
      match:
        - {column: country, op: eq, value: FR}
      max_rate: 0.1

  - name: test-stale
    kind: staleness
    model: fraud
    staleness:
      max_age: 3d
` + rollupTwins

// rollupTwins read the model's minute rollup; each must decide exactly as
// the example detector it copies.
const rollupTwins = `
  - name: test-rollup-block-rate
    kind: block_rate
    model: fraud
    source: rollup
    window: 1h
    baseline: {mode: seasonal, days: 7}
    block_rate:
      max_rate: 0.2
      score_psi: true

  - name: test-rollup-features
    kind: feature_health
    model: fraud
    source: rollup
    window: 1h
    baseline: {mode: seasonal, days: 7}
    slices: []
    feature_health:
      null_rate_max: 0.5
      default_value: 0

  - name: test-rollup-volume
    kind: volume
    model: fraud
    source: rollup
    window: 1h
    baseline: {mode: seasonal, days: 7}
    slices: [country]
    volume:
      drop_ratio: 0.5
      spike_ratio: 3
`

// twinOf maps each rollup twin to the example detector it copies.
var twinOf = map[string]string{
	"test-rollup-block-rate": "fraud-block-rate",
	"test-rollup-features":   "fraud-features",
	"test-rollup-volume":     "fraud-volume",
}

// exampleConfig loads configs/example.yaml with the model's table in the
// test database, plus extra detectors.
func exampleConfig(t testing.TB, database, extra string) *configs.Config {
	t.Helper()
	b, err := os.ReadFile("../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "    table: predictions", "    table: "+database+".predictions\n    rollup: {table: predictions_1m}", 1)
	text = strings.Replace(text, "\nreceivers:", extra+"\nreceivers:", 1)
	cfg, err := configs.Parse("example.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

type dataset struct {
	eng  storetest.Engine
	cfg  *configs.Config
	dets []*detectors.Detector
}

// generate fills one engine's database with the dataset.
func generate(t *testing.T, e storetest.Engine) *dataset {
	t.Helper()
	ctx := context.Background()
	// The example's performance detector reads its labels table (empty
	// here: the dataset's windows are younger than the labels' maturity).
	defs := []store.TableDef{store.PredictionsDef("predictions"), store.LabelsDef("fraud_labels", "request_id", "label", "labeled_at")}
	if err := store.Apply(ctx, e.DB, e.Database, defs); err != nil {
		t.Fatal(err)
	}
	cfg := exampleConfig(t, e.Database, testDetectors)
	var ins []traffic.Incident
	for _, in := range incidents {
		x, err := traffic.ParseIncident(in.spec, day14)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, x)
	}
	workers := 1
	if e.Name == "server" {
		workers = 2
	}
	start := time.Now()
	// The rollup: rows of the incident day reach it through its views
	// (they see the rows inserted after them), the baseline hours before
	// through Backfill, only those testRollup reads (rolling up whole days
	// costs a minute on the embedded engine: sumMap states).
	if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: base, To: day14, Rate: genRate, Seed: 11, Concurrency: workers}); err != nil {
		t.Fatal(err)
	}
	r, err := detectors.Rollup(&cfg.Models[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, e.DB, r.Database, r.Tables); err != nil {
		t.Fatal(err)
	}
	for _, sp := range backfillRanges(t, cfg) {
		stmts, err := r.Backfill(sp[0], sp[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range stmts {
			if err := e.DB.Exec(ctx, st); err != nil {
				t.Fatalf("backfill: %v\n%s", err, st)
			}
		}
	}
	if err := store.ApplyViews(ctx, e.DB, r.Database, r.Views); err != nil {
		t.Fatal(err)
	}
	if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: day14, To: genUntil, Rate: genRate, Seed: 12, Incidents: ins, Concurrency: workers}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: generated %s at %g req/min in %s", e.Name, genUntil.Sub(base), genRate, time.Since(start).Round(time.Millisecond))
	ds := &dataset{eng: e, cfg: cfg}
	for i := range cfg.Detectors {
		d, err := detectors.New(cfg, &cfg.Detectors[i])
		if err != nil {
			t.Fatal(err)
		}
		ds.dets = append(ds.dets, d)
	}
	return ds
}

// evaluate runs every detector (or those only keeps) at `at`; safe to
// call from several goroutines.
func (ds *dataset) evaluate(t *testing.T, at time.Time, only func(*configs.Detector) bool) []*detectors.Result {
	t.Helper()
	var out []*detectors.Result
	for _, d := range ds.dets {
		if only != nil && !only(d.Config()) {
			continue
		}
		res, err := d.Evaluate(context.Background(), ds.eng.DB, at)
		if err != nil {
			t.Errorf("%s at %s: %v\n%s", d.Config().Name, at.Format(time.RFC3339), err, res.Query)
			continue
		}
		out = append(out, res)
	}
	return out
}

func findings(rs []*detectors.Result) []detectors.Finding {
	var out []detectors.Finding
	for _, r := range rs {
		out = append(out, r.Findings...)
	}
	return out
}

func exampleOnly(d *configs.Detector) bool { return !strings.HasPrefix(d.Name, "test-") }

func TestGenerated(t *testing.T) {
	engines := storetest.Engines(t)
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			ds := generate(t, e)
			t.Run("one query per evaluation", func(t *testing.T) { testOneQuery(t, ds) })
			t.Run("incidents", func(t *testing.T) { testIncidents(t, ds) })
			t.Run("quiet week", func(t *testing.T) { testQuietWeek(t, ds) })
			t.Run("rollup equals raw", func(t *testing.T) { testRollup(t, ds) })
		})
	}
}

func testOneQuery(t *testing.T, ds *dataset) {
	var mu sync.Mutex
	var seen []string
	storetest.Listen(t, func(ev store.QueryEvent) {
		if strings.Contains(ev.SQL, ds.eng.Database) {
			mu.Lock()
			seen = append(seen, ev.SQL)
			mu.Unlock()
		}
	})
	for _, d := range ds.dets {
		mu.Lock()
		seen = nil
		mu.Unlock()
		res, err := d.Evaluate(context.Background(), ds.eng.DB, day14.Add(15*time.Hour))
		if err != nil {
			t.Fatalf("%s: %v", d.Config().Name, err)
		}
		mu.Lock()
		if len(seen) != 1 || seen[0] != res.Query {
			t.Errorf("%s: %d queries during one evaluation, want exactly 1 (the one in Result.Query)", d.Config().Name, len(seen))
		}
		mu.Unlock()
	}
}

func testIncidents(t *testing.T, ds *dataset) {
	type want struct {
		class  detectors.Class // a finding of this class must exist ...
		metric string          // ... with this metric
		slice  map[string]string
		feat   string
		pages  detectors.Class // the only class allowed to page ("" none)
	}
	cases := map[string]want{
		"slice_block":       {detectors.ClassModelBehavior, detectors.MetricBlockRate, map[string]string{"country": "FR"}, "", detectors.ClassModelBehavior},
		"null_spike":        {detectors.ClassFeaturePipeline, detectors.MetricNullRate, map[string]string{}, "device_age_days", detectors.ClassFeaturePipeline},
		"default_fill":      {detectors.ClassFeaturePipeline, detectors.MetricFillRate, map[string]string{}, "ip_risk_score", detectors.ClassFeaturePipeline},
		"world_shift":       {detectors.ClassPopulationShift, detectors.MetricBlockRate, map[string]string{"country": "BR"}, "", ""},
		"shadow_divergence": {detectors.ClassModelDivergence, detectors.MetricShadowBlocks, map[string]string{}, "", ""},
		"outage":            {detectors.ClassPipelineOutage, detectors.MetricVolume, map[string]string{}, "", detectors.ClassPipelineOutage},
		"country_outage":    {detectors.ClassPipelineOutage, detectors.MetricVolume, map[string]string{"country": "US"}, "", detectors.ClassPipelineOutage},
		"shadow_outage":     {detectors.ClassMonitoringFailure, detectors.MetricPaired, map[string]string{}, "", ""},
	}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			at := day14.Add(incidents[name].at)
			fs := findings(ds.evaluate(t, at, func(d *configs.Detector) bool { return d.Name != "test-stale" }))
			found := false
			for _, f := range fs {
				if f.Class == w.class && f.Metric == w.metric && detectors.SliceKey(f.Slice) == detectors.SliceKey(w.slice) && f.Feature == w.feat {
					found = true
					// The drift detector sees fast incidents too, at its
					// configured severity (ticket).
					if f.Severity != detectors.Classes[w.class].Severity && f.Detector != "fraud-block-rate-drift" {
						t.Errorf("severity %s, want %s", f.Severity, detectors.Classes[w.class].Severity)
					}
					t.Logf("found (%s owner): %s", detectors.Classes[f.Class].Owner, f.Summary)
				}
				if f.Severity == configs.SeverityPage && f.Class != w.pages {
					t.Errorf("unexpected page: %s %s %s: %s", f.Detector, f.Class, f.Metric, f.Summary)
				}
			}
			if !found {
				t.Errorf("no %s finding %s slice %v feature %q; findings:\n%s", w.class, w.metric, w.slice, w.feat, list(fs))
			}
			if name == "outage" || name == "country_outage" {
				// A total outage is said once, at the aggregate; one
				// country's, at that country.
				for _, f := range fs {
					if f.Metric == detectors.MetricVolume && detectors.SliceKey(f.Slice) != detectors.SliceKey(w.slice) {
						t.Errorf("volume finding beside the outage's own: %s", f.Summary)
					}
				}
			}
			if name == "default_fill" {
				for _, f := range fs {
					if f.Feature == "ip_risk_score" && f.Metric != detectors.MetricFillRate {
						t.Errorf("the fill is also reported as %s: %s", f.Metric, f.Summary)
					}
				}
			}
			if name == "slice_block" {
				exp := false
				for _, f := range fs {
					exp = exp || f.Detector == "test-fr-expectation" && f.Class == detectors.ClassModelBehavior
				}
				if !exp {
					t.Errorf("the FR golden-row expectation did not fire:\n%s", list(fs))
				}
			}
		})
	}
	t.Run("outage freshness", func(t *testing.T) {
		fs := findings(ds.evaluate(t, day14.Add(incidents["outage"].at), func(d *configs.Detector) bool { return d.Kind == configs.KindFreshness }))
		if len(fs) != 1 || fs[0].Class != detectors.ClassPipelineOutage || detectors.Classes[fs[0].Class].Owner != detectors.OwnerInfra {
			t.Errorf("freshness at the outage's end: want one infra pipeline_outage, got\n%s", list(fs))
		}
	})
	t.Run("staleness", func(t *testing.T) {
		fs := findings(ds.evaluate(t, day14.Add(9*time.Hour), func(d *configs.Detector) bool { return d.Kind == configs.KindStaleness }))
		if len(fs) != 1 || fs[0].Detector != "test-stale" || fs[0].Class != detectors.ClassModelStaleness || fs[0].Severity != configs.SeverityTicket {
			t.Errorf("want one model_staleness ticket from test-stale, got\n%s", list(fs))
		}
	})
	t.Run("slice below min_samples", func(t *testing.T) {
		rs := ds.evaluate(t, day14.Add(incidents["tiny_slice_block"].at), nil)
		for _, r := range rs {
			for _, e := range r.Evaluations {
				if e.Slice["country"] == "NZ" {
					t.Errorf("%s evaluated NZ (n=%d) below min_samples", r.Detector, e.NCurrent)
				}
			}
			for _, f := range r.Findings {
				if f.Severity == configs.SeverityPage {
					t.Errorf("unexpected page: %s", f.Summary)
				}
			}
		}
	})
}

func list(fs []detectors.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s %s %s %q p=%.3g: %s\n", f.Detector, f.Class, f.Severity, f.Metric, detectors.SliceKey(f.Slice), f.Feature, f.PValue, f.Summary)
	}
	return b.String()
}

func testQuietWeek(t *testing.T, ds *dataset) {
	start := time.Now()
	// The engines share the week's 168 hourly evaluations: the server
	// (three workers) takes two hours in three, the embedded engine the
	// third, so together they evaluate every hour of the week once and
	// each engine sees every day and every hour of the day.
	var ats []time.Time
	i := 0
	for at := base.Add(7*24*time.Hour + time.Hour); !at.After(day14); at = at.Add(time.Hour) {
		if (i%3 == 0) == (ds.eng.Name == "embedded") {
			ats = append(ats, at)
		}
		i++
	}
	// The server runs queries in parallel; the embedded engine serialises
	// them anyway.
	workers := 1
	if ds.eng.Name == "server" {
		workers = 3
	}
	results := make([][]detectors.Finding, len(ats))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = findings(ds.evaluate(t, ats[i], exampleOnly))
			}
		}()
	}
	for i := range ats {
		next <- i
	}
	close(next)
	wg.Wait()
	counts := map[configs.Severity]int{}
	total, pages := 0, 0
	for i, at := range ats {
		for _, f := range results[i] {
			total++
			counts[f.Severity]++
			if f.Severity == configs.SeverityPage {
				pages++
				t.Errorf("page in a quiet week at %s: %s %s %s: %s", at.Format(time.RFC3339), f.Detector, f.Class, f.Metric, f.Summary)
			} else {
				t.Logf("%s at %s: %s %s: %s", f.Severity, at.Format(time.RFC3339), f.Detector, f.Metric, f.Summary)
			}
		}
	}
	fmt.Printf("quiet week (%s engine, %d of the 168 hourly evaluations of %d detectors): %d alerts of any severity (%d page, %d ticket, %d info) in %s\n",
		ds.eng.Name, len(ats), countExample(ds), total, pages, counts[configs.SeverityTicket], counts[configs.SeverityInfo], time.Since(start).Round(time.Millisecond))
}

func countExample(ds *dataset) int {
	n := 0
	for _, d := range ds.dets {
		if exampleOnly(d.Config()) {
			n++
		}
	}
	return n
}

// testRollup checks that the detectors reading the minute rollup decide
// exactly as their twins reading the rows: every incident hour and a few
// quiet ones, every evaluation's figures, every finding.
func testRollup(t *testing.T, ds *dataset) {
	byName := map[string]*detectors.Detector{}
	for _, d := range ds.dets {
		byName[d.Config().Name] = d
	}
	ats := rollupAts()
	ctx := context.Background()
	checked := 0
	for twin, raw := range twinOf {
		for _, at := range ats {
			a, err := byName[raw].Evaluate(ctx, ds.eng.DB, at)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			b, err := byName[twin].Evaluate(ctx, ds.eng.DB, at)
			if err != nil {
				t.Fatalf("%s: %v\n%s", twin, err, b.Query)
			}
			if got, want := evalKeys(b), evalKeys(a); got != want {
				t.Errorf("%s at %s: rollup evaluations differ from raw:\nrollup:\n%s\nraw:\n%s", twin, at.Format(time.RFC3339), got, want)
			}
			if got, want := list(b.Findings), list(a.Findings); strings.ReplaceAll(got, twin, raw) != want {
				t.Errorf("%s at %s: rollup findings differ from raw:\nrollup:\n%s\nraw:\n%s", twin, at.Format(time.RFC3339), got, want)
			}
			checked += len(a.Evaluations)
		}
	}
	if checked < 500 {
		t.Errorf("only %d evaluations compared", checked)
	}
	t.Logf("%d evaluations and their findings equal on the rollup and the rows", checked)
}

// evalKeys renders evaluations with their figures rounded (sums of the
// same counts in another order differ in the last bits).
func evalKeys(r *detectors.Result) string {
	var b strings.Builder
	for _, e := range r.Evaluations {
		fmt.Fprintf(&b, "  %s %s %q n=%d/%d value=%.9g baseline=%.9g p=%.6g shadow=%.9g firing=%v\n", e.Metric, detectors.SliceKey(e.Slice), e.Feature,
			e.NCurrent, e.NBaseline, e.Value, e.Baseline, e.PValue, e.ShadowValue, e.Firing)
	}
	return b.String()
}

// rollupAts are the times testRollup evaluates: two quiet hours and the
// end of every incident.
func rollupAts() []time.Time {
	ats := []time.Time{day14.Add(-6 * time.Hour), day14.Add(-1 * time.Hour)}
	for _, in := range incidents {
		ats = append(ats, day14.Add(in.at))
	}
	return ats
}

// backfillRanges are the time ranges before day14 that the rollup twins
// read at rollupAts, merged.
func backfillRanges(t *testing.T, cfg *configs.Config) [][2]time.Time {
	var all [][2]time.Time
	for i := range cfg.Detectors {
		if _, ok := twinOf[cfg.Detectors[i].Name]; !ok {
			continue
		}
		d, err := detectors.New(cfg, &cfg.Detectors[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range rollupAts() {
			for _, r := range d.Ranges(at) {
				if r[1].After(day14) {
					r[1] = day14
				}
				if r[0].Before(r[1]) {
					all = append(all, r)
				}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i][0].Before(all[j][0]) })
	var out [][2]time.Time
	for _, r := range all {
		if n := len(out); n > 0 && !r[0].After(out[n-1][1]) {
			if r[1].After(out[n-1][1]) {
				out[n-1][1] = r[1]
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
