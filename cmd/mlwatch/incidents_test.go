package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// Issue 11: one incident, one alert. Each incident kind is generated on
// traffic of the example's shape and evaluated with the example config as
// shipped (the drift twin included), on both engines: the right class and
// owner at the root, at most 2 roots and 4 alerts in all in `eval`, at
// most one page in a backtest over the incident, none at all on quiet
// traffic, the ramp found before it reaches 3x, and the same JSON every
// time. incidents_table_test.go runs the same check on seeds and rates
// these tests do not use (docs/reliability.md has its table).

// incidentAt is the evaluation time of the incident tests (a Wednesday
// afternoon); incidents run from an hour before it to half an hour after.
var incidentAt = time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)

// incidentSpan is the stretch of each day the tests generate: every
// window (1 h) of eval at incidentAt and of the backtest (runs 20 min
// before it to 20 min after), and the same stretch on each baseline day.
// The drift detector's 12-hour window then holds the same stretch of
// each day: the current one and its reference days compare like with
// like.
var incidentSpan = [2]time.Duration{-80 * time.Minute, 20 * time.Minute}

// baseDays are the quiet days before incidentAt's day: the seasonal
// baseline (7 days) and, from day 7 on, 3 days of the drift detector's
// reference (7 to 28 days back; fewer than 3 decide nothing).
var baseDays = []int{1, 2, 3, 4, 5, 6, 7, 8, 9}

// incidentRate is the generated traffic (requests a minute): enough for
// the canary stream (0.2% of requests) to pass the example's min_samples
// of 20 in an hour.
const incidentRate = 250

// incidentCase is one incident and what its root must be.
type incidentCase struct {
	name     string
	incident string // KIND:START:END[:ARG], times as offsets from incidentAt-1h, less back days
	class    string // the class of a root
	owner    string
	// back: the incident's offsets count from this many days before
	// incidentAt's day (a ramp); days: the days before incidentAt's that
	// are generated with the incident (at least back), not copied.
	back, days int
	// factor: for a ramp, its block-rate factor at incidentAt (it must be
	// found before 3x).
	factor float64
	// wide: the drift detector's days (incidentAt's and the reference
	// days) are generated over 6 hours of its 12-hour window, not only the
	// incident span: a ramp of one country is the drift detector's alone,
	// and 100 minutes of a day are too few rows to show it.
	wide bool
}

var incidentCases = []incidentCase{
	{name: "category_block", incident: "category_block:+0m:+90m:electronics:0.5", class: "model_behavior", owner: "product"},
	{name: "version_rollout", incident: "version_rollout:+0m:+90m:fraud-2026.12.0:4", class: "model_behavior", owner: "product"},
	{name: "cascade", incident: "cascade:+0m:+90m:device_age_days", class: "feature_pipeline", owner: "infra"},
	{name: "canary_fail", incident: "canary_fail:+0m:+90m", class: "model_behavior", owner: "product"},
	{name: "slice_block", incident: "slice_block:+0m:+90m:FR", class: "model_behavior", owner: "product"},
	{name: "shadow_divergence", incident: "shadow_divergence:+0m:+90m:0.2", class: "model_divergence", owner: "product"},
	{name: "null_spike", incident: "null_spike:+0m:+90m:device_age_days", class: "feature_pipeline", owner: "infra"},
	// US's production block rate from 1x to 3x over 6.5 days, evaluated
	// 6 days in (2.85x); days 7 to 9 are the drift detector's reference,
	// so the ramp starts after them. The factor is production's, canaries
	// aside (always blocked, 0.2% of requests, a third of US's quiet block
	// rate): the measured US rate is about 2x its old level then. With
	// only 3 reference days of 6 hours (their own spread about ±20%) the
	// drift detector did not find 2.5x (measured 1.9x) on seeds 11 and
	// 101; TestDriftFindsSlowRamp (full days, 3 weeks) finds it at 2.1x.
	{name: "ramp", incident: "ramp:+0m:+156h:US:3", class: "model_behavior", owner: "product", back: 6, days: 9, factor: 1 + 2*(6*24+1)/156.0, wide: true},
	// One country's logging stops for the last 45 minutes: a mid-size
	// country and the smallest one whose expected count in the hour
	// (about 230 rows at 250 requests a minute) passes min_samples.
	{name: "outage_mid", incident: "outage:+15m:+90m:NL", class: "pipeline_outage", owner: "infra"},
	{name: "outage_small", incident: "outage:+15m:+90m:CH", class: "pipeline_outage", owner: "infra"},
}

// exampleLabelsDef is the example's labels table (models[].labels): its
// performance detector reads it, empty here.
var exampleLabelsDef = store.LabelsDef("fraud_labels", "request_id", "label", "labeled_at")

// exampleFor returns the example config, as shipped, reading table
// db.table.
func exampleFor(t testing.TB, db, table string) *configs.Config {
	t.Helper()
	text, err := os.ReadFile("../../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(text), "  database: default", "  database: "+db, 1)
	s = strings.Replace(s, "table: predictions", "table: "+db+"."+table, 1)
	cfg, err := configs.Parse("example.yaml", []byte(s), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// generateDays fills table with the incident span of each day in days
// (0 is incidentAt's day) with the given incidents.
func generateDays(t testing.TB, e storetest.Engine, table string, seed uint64, rate float64, days []int, incidents []traffic.Incident, wide bool) {
	t.Helper()
	ctx := context.Background()
	cfg := exampleFor(t, e.Database, table)
	for _, d := range days {
		at := incidentAt.AddDate(0, 0, -d)
		from := at.Add(incidentSpan[0])
		if wide && (d == 0 || d >= 7) {
			from = at.Add(-6 * time.Hour)
		}
		_, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: from, To: at.Add(incidentSpan[1]),
			Rate: rate, Seed: seed + uint64(d), Incidents: incidents})
		if err != nil {
			t.Fatalf("generate day -%d: %v", d, err)
		}
	}
}

// newBaseTable creates table with the quiet baseline days.
func newBaseTable(t testing.TB, e storetest.Engine, table string, seed uint64, rate float64) {
	t.Helper()
	if err := store.Apply(context.Background(), e.DB, e.Database, []store.TableDef{store.PredictionsDef(table), exampleLabelsDef}); err != nil {
		t.Fatal(err)
	}
	generateDays(t, e, table, seed, rate, baseDays, nil, false)
}

// newIncidentTable creates table as a copy of the quiet baseline days in
// base that the incident does not reach and generates the others,
// incidentAt's day included, with the incident (none when tc.incident is
// empty).
func newIncidentTable(t testing.TB, e storetest.Engine, base, table string, seed uint64, rate float64, tc incidentCase) {
	t.Helper()
	ctx := context.Background()
	q := store.Table{Database: e.Database, Name: table}.Quoted()
	// The database may be shared (sharedBase): a table left by an earlier
	// run goes.
	if err := e.DB.Exec(ctx, "DROP TABLE IF EXISTS "+q); err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef(table), exampleLabelsDef}); err != nil {
		t.Fatal(err)
	}
	cut := incidentAt.AddDate(0, 0, -tc.days).Add(incidentSpan[0])
	if err := e.DB.Exec(ctx, "INSERT INTO "+q+" SELECT * FROM "+store.Table{Database: e.Database, Name: base}.Quoted()+" WHERE ts < ?", cut); err != nil {
		t.Fatalf("copy the baseline days: %v", err)
	}
	var ins []traffic.Incident
	if tc.incident != "" {
		in, err := traffic.ParseIncident(tc.incident, incidentAt.Add(-time.Hour).AddDate(0, 0, -tc.back))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	days := make([]int, tc.days+1)
	for i := range days {
		days[i] = i
	}
	generateDays(t, e, table, seed, rate, days, ins, tc.wide)
}

// withIncident generates incidentAt's day with tc's incident into base
// (the day is a partition of its own), calls run with the table to
// evaluate, and drops the day again: the cases share the baseline days
// without copying them. A case that reaches earlier days (the ramp) gets
// a table of its own.
func withIncident(t testing.TB, e storetest.Engine, base string, seed uint64, rate float64, tc incidentCase, run func(table string)) {
	t.Helper()
	if tc.days > 0 || tc.wide {
		newIncidentTable(t, e, base, base+"_"+tc.name, seed, rate, tc)
		run(base + "_" + tc.name)
		return
	}
	var ins []traffic.Incident
	if tc.incident != "" {
		in, err := traffic.ParseIncident(tc.incident, incidentAt.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	drop := func() {
		q := "ALTER TABLE " + store.Table{Database: e.Database, Name: base}.Quoted() + " DROP PARTITION " + incidentAt.Format("20060102")
		if err := e.DB.Exec(context.Background(), q); err != nil {
			t.Fatalf("drop incidentAt's day: %v", err)
		}
	}
	drop() // a case that failed half-way may have left it
	generateDays(t, e, base, seed, rate, []int{0}, ins, false)
	defer drop()
	run(base)
}

// evalJSON runs what `mlwatch eval --format json` runs (the whole alert
// pipeline once, in memory, at `at`) and returns its output.
func evalJSON(t testing.TB, cfg *configs.Config, db store.Store, at time.Time) []byte {
	t.Helper()
	ctx := context.Background()
	notifiers := map[string]alerts.Notifier{}
	for _, r := range cfg.Receivers {
		notifiers[r.Name] = alerts.NotifierFunc(func(context.Context, *alerts.Notification) (string, bool, error) { return "", false, nil })
	}
	mgr, err := alerts.New(alerts.Options{Config: cfg, OneShot: true, Now: func() time.Time { return at }, Notifiers: notifiers})
	if err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(monitor.Options{Config: cfg, Store: db, Alerts: mgr})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range mon.Names() {
		if _, err := mon.Run(ctx, name, at); err != nil {
			t.Fatalf("eval: %v", err)
		}
	}
	if _, err := mgr.Process(ctx, at); err != nil {
		t.Fatal(err)
	}
	var firing []alerts.View
	for _, v := range mgr.Alerts() {
		if v.State == "firing" {
			firing = append(firing, v)
		}
	}
	sortViews(firing)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, v := range firing {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func parseViews(t testing.TB, out []byte) []alerts.View {
	t.Helper()
	var vs []alerts.View
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var v alerts.View
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		vs = append(vs, v)
	}
	return vs
}

// backtestPages replays (incidentAt-40m, incidentAt+20m] every 20 minutes
// (the incident's start, its middle and the evaluation time of eval's
// check) and counts the pages that fired as roots.
func backtestPages(t testing.TB, cfg *configs.Config, db store.Store) (pages int, fired []string) {
	t.Helper()
	rep, err := monitor.Backtest(context.Background(), monitor.BacktestOptions{Config: cfg, Store: db,
		From: incidentAt.Add(-40 * time.Minute), To: incidentAt.Add(20 * time.Minute), Step: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Detectors {
		pages += s.Pages
	}
	for _, v := range rep.Fired {
		fired = append(fired, describe(v))
	}
	sort.Strings(fired)
	return pages, fired
}

func describe(v alerts.View) string {
	root := "root"
	if v.CausedBy != "" {
		root = "explained"
	}
	s := fmt.Sprintf("%s %s %s %s %s %s%s: %s", root, v.Severity, v.Class, v.Detector, v.Metric, alerts.SliceLabel(v.Slice), v.Feature, v.Summary)
	for _, f := range v.Folded {
		s += fmt.Sprintf("\n    folded: %s %s %s %s", f.Detector, f.Severity, f.Metric, alerts.SliceLabel(f.Slice))
	}
	return s
}

// incidentOutcome is what one incident gave: eval's roots and alerts, the
// backtest's pages, and whether a root has the wanted class and owner.
type incidentOutcome struct {
	roots, alerts, pages int
	found                bool
	eval, fired          []string
}

// runIncident evaluates table (the incident's data) with the example
// config, in eval and in a backtest over the incident, through db: the
// backtest's run at incidentAt asks eval's queries again, and the engine
// answers them once.
func runIncident(t testing.TB, e storetest.Engine, table string, tc incidentCase, db *replayStore) incidentOutcome {
	t.Helper()
	cfg := exampleFor(t, e.Database, table)
	var o incidentOutcome
	for _, v := range parseViews(t, evalJSON(t, cfg, db, incidentAt)) {
		o.alerts++
		o.eval = append(o.eval, describe(v))
		if v.CausedBy == "" {
			o.roots++
			if v.Class == tc.class && v.Owner == tc.owner {
				o.found = true
			}
		}
	}
	o.pages, o.fired = backtestPages(t, cfg, db)
	return o
}

// check reports every limit o breaks.
func (o incidentOutcome) check(tc incidentCase) []string {
	var bad []string
	all := strings.Join(o.eval, "\n")
	if tc.incident == "" {
		if o.alerts != 0 || len(o.fired) != 0 {
			bad = append(bad, fmt.Sprintf("quiet traffic: %d alerts in eval, %d in the backtest:\n%s\n%s", o.alerts, len(o.fired), all, strings.Join(o.fired, "\n")))
		}
		return bad
	}
	if !o.found {
		what := "no %s root owned by %s"
		if tc.factor > 0 {
			what += fmt.Sprintf(" at %.2fx the starting level", tc.factor)
		}
		bad = append(bad, fmt.Sprintf(what+":\n%s", tc.class, tc.owner, all))
	}
	if o.roots > 2 || o.alerts > 4 {
		bad = append(bad, fmt.Sprintf("%d roots and %d alerts in all, want at most 2 and 4:\n%s", o.roots, o.alerts, all))
	}
	if o.pages > 1 {
		bad = append(bad, fmt.Sprintf("backtest: %d pages, want at most 1:\n%s", o.pages, strings.Join(o.fired, "\n")))
	}
	return bad
}

func TestIncidentsAreOneAlert(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel() // the two engines share no data
			// The baseline days, and each case's answers, are shared with
			// TestRootsAgreeAcrossEvalBacktestDaemon.
			sb := sharedIncidentBase(t, e, 11, incidentRate)
			cases := append([]incidentCase{{name: "quiet"}}, incidentCases...)
			for _, tc := range cases {
				// Not parallel: the cases take turns on the base table.
				t.Run(tc.name, func(t *testing.T) {
					start := time.Now()
					sb.withCase(t, tc, func(table string, db *replayStore) {
						e := sb.e
						gen := time.Since(start).Round(time.Second)
						o := runIncident(t, e, table, tc, db)
						for _, b := range o.check(tc) {
							t.Error(b)
						}
						t.Logf("%s: %d roots, %d alerts, %d pages in the backtest (generated in %s, evaluated in %s)\n%s",
							tc.name, o.roots, o.alerts, o.pages, gen, time.Since(start).Round(time.Second)-gen, strings.Join(o.eval, "\n"))
					})
				})
			}
		})
	}
}

// TestEvalIsDeterministic: the same evaluation, 50 times, prints the same
// bytes (consolidation and summaries never depend on map order).
func TestEvalIsDeterministic(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel() // the two engines share no data
			ctx := context.Background()
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("base"), exampleLabelsDef}); err != nil {
				t.Fatal(err)
			}
			// A small table: two baseline days (the seasonal baseline takes
			// what it finds) and a category block with a slice block.
			generateDays(t, e, "base", 5, incidentRate, []int{1, 2}, nil, false)
			in1, _ := traffic.ParseIncident("category_block:+0m:+90m:electronics:0.5", incidentAt.Add(-time.Hour))
			in2, _ := traffic.ParseIncident("slice_block:+0m:+90m:FR", incidentAt.Add(-time.Hour))
			generateDays(t, e, "base", 5, incidentRate, []int{0}, []traffic.Incident{in1, in2}, false)
			cfg := exampleFor(t, e.Database, "base")
			first := evalJSON(t, cfg, e.DB, incidentAt)
			if len(parseViews(t, first)) < 2 {
				t.Fatalf("want several alerts to order, got:\n%s", first)
			}
			// The engine answers twice more; the other runs replay its
			// answers (the same query text gets the same result), so 50
			// evaluations take seconds on a busy machine.
			replay := newReplay(e.DB)
			for i := 1; i < 50; i++ {
				var db store.Store = replay
				if i < 3 {
					db = e.DB
				}
				if out := evalJSON(t, cfg, db, incidentAt); !bytes.Equal(out, first) {
					t.Fatalf("run %d differs:\n%s\nfirst:\n%s", i+1, out, first)
				}
			}
		})
	}
}

// replayStore answers each query text with the engine's first answer to
// it (a copy: evaluation must not see another run's changes).
type replayStore struct {
	store.Store
	mu      sync.Mutex
	results map[string]*store.Result
}

func newReplay(s store.Store) *replayStore {
	return &replayStore{Store: s, results: map[string]*store.Result{}}
}

func (r *replayStore) Query(ctx context.Context, query string, args ...any) (*store.Result, error) {
	key := fmt.Sprint(query, args)
	r.mu.Lock()
	res, ok := r.results[key]
	r.mu.Unlock()
	if !ok {
		var err error
		if res, err = r.Store.Query(ctx, query, args...); err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.results[key] = res
		r.mu.Unlock()
	}
	cp := *res
	cp.Rows = make([][]any, len(res.Rows))
	for i, row := range res.Rows {
		cp.Rows[i] = append([]any(nil), row...)
	}
	return &cp, nil
}
