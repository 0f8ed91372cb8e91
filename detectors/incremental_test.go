package detectors_test

import (
	"context"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// incrDetectors are the detectors the equivalence test adds to the
// example: a golden-row expectation per country (slices), a volume per
// merchant category with a previous-span baseline, and a block rate whose
// windows end 150 s off the buckets (eval_delay), so every window has
// edges read from rows.
const incrDetectors = `
  - name: test-fr-expectation
    kind: expectation
    model: fraud
    window: 1h
    min_samples: 20
    expectation:
      match:
        - {column: country, op: in, values: [FR, DE]}
      max_rate: 0.1

  - name: test-volume-previous
    kind: volume
    model: fraud
    window: 30m
    baseline: {mode: previous, span: 6h}
    slices: [merchant_category]
    volume:
      drop_ratio: 0.5
      spike_ratio: 3

  - name: test-block-rate-offset
    kind: block_rate
    model: fraud
    window: 1h
    eval_delay: 150s
    baseline: {mode: seasonal, days: 7}
    slices: [country]
    block_rate:
      score_psi: true
`

// incrWeek is the equivalence test's data: a quiet week from Monday
// 2026-11-02, then a week with incidents, evaluated hourly.
var (
	incrFrom      = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	incrEval      = incrFrom.Add(7 * 24 * time.Hour)
	incrTo        = incrEval.Add(7 * 24 * time.Hour)
	incrIncidents = []string{
		"slice_block:+1d10h:+1d13h:FR",
		"world_shift:+2d14h:+2d17h:BR",
		"outage:+3d9h:+3d10h:US",
		"outage:+3d20h:+3d21h",
		"canary_fail:+4d11h:+4d13h",
		"version_rollout:+5d10h:+5d12h:v9",
		"ramp:+5d0h:+6d12h:DE:3",
		"category_block:+6d15h:+6d17h:digital_goods",
	}
)

func incrGenerate(t *testing.T, e storetest.Engine, extra string, from, to time.Time, rate float64, specs []string) *configs.Config {
	t.Helper()
	ctx := context.Background()
	defs := []store.TableDef{store.PredictionsDef("predictions"), store.LabelsDef("fraud_labels", "request_id", "label", "labeled_at")}
	if err := store.Apply(ctx, e.DB, e.Database, defs); err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, e.DB, e.Database, detectors.IncrementalTables(store.Table{Name: "partials"})); err != nil {
		t.Fatal(err)
	}
	cfg := exampleConfig(t, e.Database, extra)
	var ins []traffic.Incident
	for _, s := range specs {
		x, err := traffic.ParseIncident(s, incrEval)
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
	if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: from, To: to, Rate: rate, Seed: 17, Incidents: ins, Concurrency: workers}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: generated %s at %g req/min in %s", e.Name, to.Sub(from), rate, time.Since(start).Round(time.Millisecond))
	return cfg
}

// incrTimes are the times TestIncrementalEqualsRaw evaluates at, in
// order: every 12 hours of the incident week and the first two hours of
// each incident in make test (the partials are filled along the way all
// the same; the hourly week took 51-58 min on a 2-core machine loaded by
// other tests), every hour with MLWATCH_INCREMENTAL_HOURLY=1.
func incrTimes(t *testing.T) []time.Time {
	t.Helper()
	var out []time.Time
	if os.Getenv("MLWATCH_INCREMENTAL_HOURLY") == "1" {
		for at := incrEval.Add(time.Hour); !at.After(incrTo); at = at.Add(time.Hour) {
			out = append(out, at)
		}
		return out
	}
	for at := incrEval.Add(time.Hour); !at.After(incrTo); at = at.Add(12 * time.Hour) {
		out = append(out, at)
	}
	for _, spec := range incrIncidents {
		in, err := traffic.ParseIncident(spec, incrEval)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in.Start.Add(time.Hour), in.Start.Add(2*time.Hour))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return slices.Compact(out)
}

// clock is the incremental evaluation's wall clock, set by the test.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newIncremental(t *testing.T, e storetest.Engine, c *clock) *detectors.Incremental {
	t.Helper()
	inc, err := detectors.NewIncremental(e.DB, detectors.IncrementalOptions{Partials: store.Table{Database: e.Database, Name: "partials"}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

// TestIncrementalEqualsRaw evaluates every detector of the example (and
// three more) hourly over a generated week with incidents, as a daemon
// would (the wall clock at the evaluation time: the newest minutes read
// from rows, the rest from partials filled along the way), and compares
// every evaluation's figures and every finding with the raw query's. Kinds
// without a partial form must pass through unchanged.
func TestIncrementalEqualsRaw(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			cfg := incrGenerate(t, e, incrDetectors, incrFrom, incrTo, 15, incrIncidents)
			dets := incrDets(t, cfg, "")
			c := &clock{}
			inc := newIncremental(t, e, c)
			checked, fired, covered := 0, 0, map[string]bool{}
			for i, at := range incrTimes(t) {
				c.now = at
				for _, d := range dets {
					name := d.Config().Name
					if !detectors.IncrementalCovers(d) && i%6 != 0 {
						continue // uncovered kinds pass through: a few times suffice
					}
					covered[name] = detectors.IncrementalCovers(d)
					raw := incrSame(t, e.DB, inc, d, at)
					checked += len(raw.Evaluations)
					fired += len(raw.Findings)
				}
			}
			for _, name := range []string{"fraud-block-rate", "fraud-block-rate-drift", "fraud-volume", "fraud-canaries", "test-fr-expectation", "test-volume-previous", "test-block-rate-offset"} {
				if !covered[name] {
					t.Errorf("%s is not evaluated incrementally", name)
				}
			}
			for _, name := range []string{"fraud-features", "fraud-shadow", "fraud-freshness", "fraud-staleness", "fraud-performance"} {
				if v, ok := covered[name]; !ok || v {
					t.Errorf("%s: covered %v, seen %v: want seen and passed through", name, v, ok)
				}
			}
			// 15 req/min over a week: most slices are below min_samples
			// at night (measured hourly: 7,437 evaluations, 52 findings).
			if floor := 4000 * len(incrTimes(t)) / 168; checked < floor || fired < 10 {
				t.Errorf("only %d evaluations and %d findings compared", checked, fired)
			}
			t.Logf("%d evaluations and %d findings equal with partials and rows", checked, fired)
		})
	}
}

// incrSame evaluates d at at raw and incrementally, fails t unless both
// give the same evaluations, findings and skipped count, and returns the
// raw result.
func incrSame(t *testing.T, db store.Store, inc *detectors.Incremental, d *detectors.Detector, at time.Time) *detectors.Result {
	t.Helper()
	ctx, name, when := context.Background(), d.Config().Name, at.Format(time.RFC3339)
	raw, err := d.Evaluate(ctx, db, at)
	if err != nil {
		t.Fatalf("%s at %s: raw: %v", name, when, err)
	}
	got, err := inc.Evaluate(ctx, d, at)
	if err != nil {
		t.Fatalf("%s at %s: incremental: %v\n%s", name, when, err, got.Query)
	}
	if g, w := evalKeys(got), evalKeys(raw); g != w {
		t.Fatalf("%s at %s: incremental evaluations differ from raw:\nincremental:\n%s\nraw:\n%s\nquery:\n%s", name, when, g, w, got.Query)
	}
	if g, w := list(got.Findings), list(raw.Findings); g != w {
		t.Fatalf("%s at %s: incremental findings differ from raw:\nincremental:\n%s\nraw:\n%s", name, when, g, w)
	}
	if got.Skipped != raw.Skipped {
		t.Fatalf("%s at %s: skipped %d, raw %d", name, when, got.Skipped, raw.Skipped)
	}
	return raw
}

// incrDets builds cfg's detectors whose names start with prefix.
func incrDets(t *testing.T, cfg *configs.Config, prefix string) []*detectors.Detector {
	t.Helper()
	var out []*detectors.Detector
	for i := range cfg.Detectors {
		if strings.HasPrefix(cfg.Detectors[i].Name, prefix) {
			d, err := detectors.New(cfg, &cfg.Detectors[i])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

// TestIncrementalLateRows inserts rows into buckets already closed and
// filled: the next evaluation within the recheck period must count them
// (the raw query does), and one before the recheck is due still reads the
// old partials (so the check is what finds them).
func TestIncrementalLateRows(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			from, to := incrEval.Add(-8*24*time.Hour), incrEval.Add(15*time.Hour)
			cfg := incrGenerate(t, e, "", from, to, 20, nil)
			var vol, br *detectors.Detector
			for i := range cfg.Detectors {
				d, err := detectors.New(cfg, &cfg.Detectors[i])
				if err != nil {
					t.Fatal(err)
				}
				switch d.Config().Name {
				case "fraud-volume":
					vol = d
				case "fraud-block-rate":
					br = d
				}
			}
			at := to
			c := &clock{now: at}
			inc := newIncremental(t, e, c)
			ctx := context.Background()
			before := map[*detectors.Detector]string{}
			for _, d := range []*detectors.Detector{vol, br} {
				res, err := inc.Evaluate(ctx, d, at)
				if err != nil {
					t.Fatalf("%v\n%s", err, res.Query)
				}
				before[d] = evalKeys(res)
			}
			// Late rows: FR blocked for 20 minutes that ended 40 minutes
			// ago, in buckets closed and filled above.
			late, err := traffic.ParseIncident("slice_block:+14h10m:+14h30m:FR", incrEval)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: incrEval.Add(14*time.Hour + 10*time.Minute),
				To: incrEval.Add(14*time.Hour + 30*time.Minute), Rate: 200, Seed: 99, Incidents: []traffic.Incident{late}}); err != nil {
				t.Fatal(err)
			}
			for _, d := range []*detectors.Detector{vol, br} {
				name := d.Config().Name
				raw, err := d.Evaluate(ctx, e.DB, at)
				if err != nil {
					t.Fatal(err)
				}
				if evalKeys(raw) == before[d] {
					t.Fatalf("%s: the late rows changed nothing in the raw figures", name)
				}
				// Before the recheck is due: the partials are stale.
				c.now = at.Add(5 * time.Minute)
				stale, err := inc.Evaluate(ctx, d, at)
				if err != nil {
					t.Fatal(err)
				}
				if evalKeys(stale) != before[d] {
					t.Errorf("%s: the partials changed before the late-row check was due", name)
				}
				// The check is due: the closed buckets are counted again,
				// the changed ones filled anew.
				c.now = at.Add(31 * time.Minute)
				got, err := inc.Evaluate(ctx, d, at)
				if err != nil {
					t.Fatal(err)
				}
				if g, w := evalKeys(got), evalKeys(raw); g != w {
					t.Errorf("%s: after late rows, incremental differs from raw:\nincremental:\n%s\nraw:\n%s", name, g, w)
				}
				if g, w := list(got.Findings), list(raw.Findings); g != w {
					t.Errorf("%s: findings after late rows:\nincremental:\n%s\nraw:\n%s", name, g, w)
				}
				if name == "fraud-block-rate" && !strings.Contains(list(raw.Findings), "FR") {
					t.Errorf("the late FR block was not found by the raw query either:\n%s", list(raw.Findings))
				}
			}
		})
	}
}

// TestIncrementalClean: Clean drops the day partitions of partials and
// fills that end before Keep, keeps the rest, and looks at most hourly.
func TestIncrementalClean(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := store.Table{Database: e.Database, Name: "partials"}
			if err := store.Apply(ctx, e.DB, e.Database, detectors.IncrementalTables(p)); err != nil {
				t.Fatal(err)
			}
			// Noon of 2026-11-01 .. 2026-11-20 (noon: the day is the same
			// in any server time zone within ±11 h).
			first := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).Unix()
			fills := store.Table{Database: e.Database, Name: "partials_fills"}
			for _, sql := range []string{
				"INSERT INTO " + p.Quoted() + " (hash, bucket, fill, keys, rows, sub, sums) SELECT 1, toDateTime(toUInt32(? + number * 86400)), 1, ['0'], 1, [0], [[1]] FROM system.numbers LIMIT 20",
				"INSERT INTO " + fills.Quoted() + " (hash, bucket, fill, rows, detector, filled_at) SELECT 1, toDateTime(toUInt32(? + number * 86400)), 1, 1, 'd', now() FROM system.numbers LIMIT 20",
			} {
				if err := e.DB.Exec(ctx, strings.ReplaceAll(sql, "?", strconv.FormatInt(first, 10))); err != nil {
					t.Fatal(err)
				}
			}
			c := &clock{now: time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)}
			inc, err := detectors.NewIncremental(e.DB, detectors.IncrementalOptions{Partials: p, Now: c.Now,
				Keep: func(now time.Time) time.Time { return now.Add(-10 * 24 * time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			n, err := inc.Clean(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != 18 {
				t.Errorf("dropped %d partitions, want 9 days of 2 tables", n)
			}
			for _, tb := range []store.Table{p, fills} {
				res, err := e.DB.Query(ctx, "SELECT count(), toUInt32(min(bucket)) FROM "+tb.Quoted())
				if err != nil {
					t.Fatal(err)
				}
				if got, oldest := store.Int(res.Rows[0][0]), store.Int(res.Rows[0][1]); got != 11 || oldest != first+9*86400 {
					t.Errorf("%s: %d rows from %s left, want 11 from 2026-11-10", tb.Name, got, time.Unix(oldest, 0).UTC())
				}
			}
			c.now = c.now.Add(30 * time.Minute)
			if n, err := inc.Clean(ctx); n != 0 || err != nil {
				t.Errorf("a second Clean within the hour dropped %d (%v)", n, err)
			}
		})
	}
}
