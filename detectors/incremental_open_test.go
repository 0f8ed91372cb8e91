package detectors_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// openDetectors read a few hours (previous-span baselines), so the test
// generates only those.
const openDetectors = `
  - name: test-open-block-rate
    kind: block_rate
    model: fraud
    window: 1h
    min_samples: 20
    baseline: {mode: previous, span: 3h}
    slices: [country]
    block_rate:
      score_psi: true

  - name: test-open-volume
    kind: volume
    model: fraud
    window: 30m
    baseline: {mode: previous, span: 2h}
    slices: [country]
    volume:
      drop_ratio: 0.5
      spike_ratio: 3
`

// TestIncrementalOpenBuckets runs two daemon cycles 5 minutes apart with
// rows arriving in between into the buckets the first cycle filled while
// they were open: one that closes before the second cycle and one still
// open. Each cycle must equal the raw query: an open bucket's provisional
// partials are replaced by the next cycle's fill (read together, the
// counts would double), the bucket that closed is filled once more as
// final, and the second cycle fills only the newest buckets.
func TestIncrementalOpenBuckets(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			at := incrEval.Add(15 * time.Hour) // 15:00 of a Monday
			cfg := incrGenerate(t, e, openDetectors, at.Add(-5*time.Hour), at, 30, nil)
			dets := incrDets(t, cfg, "test-open-")
			c := &clock{}
			inc := newIncremental(t, e, c)
			ctx := context.Background()
			cycle := func(at time.Time) map[string]string {
				c.now = at
				out := map[string]string{}
				for _, d := range dets {
					out[d.Config().Name] = evalKeys(incrSame(t, e.DB, inc, d, at))
				}
				return out
			}
			// 15:00, a cold start: every bucket filled, 14:50 and 14:55
			// provisionally (closed before 14:50).
			first := cycle(at)
			newest := newestFills(t, e.DB, e.Database)
			for _, d := range dets {
				if got := newest[d.Config().Name]; !strings.HasSuffix(got.buckets, " 14:45 14:50 14:55") || got.provisional != "14:50 14:55" {
					t.Errorf("%s at 15:00: newest fill %+v, want up to 14:55, 14:50 and 14:55 provisional", d.Config().Name, got)
				}
			}
			// Rows arrive for 14:50..15:05: FR blocked at 200 req/min.
			block, err := traffic.ParseIncident("slice_block:+14h50m:+15h05m:FR", incrEval)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: at.Add(-10 * time.Minute), To: at.Add(5 * time.Minute),
				Rate: 200, Seed: 23, Incidents: []traffic.Incident{block}}); err != nil {
				t.Fatal(err)
			}
			// 15:05: 14:50 closed (filled again, final), 14:55 and 15:00
			// open; the same cycle twice (an eval after the daemon's).
			second := cycle(at.Add(5 * time.Minute))
			for name, figs := range second {
				if figs == first[name] {
					t.Errorf("%s: the rows of 14:50..15:05 changed nothing", name)
				}
			}
			newest = newestFills(t, e.DB, e.Database)
			for _, d := range dets {
				if got := newest[d.Config().Name]; got.buckets != "14:50 14:55 15:00" || got.provisional != "14:55 15:00" {
					t.Errorf("%s at 15:05: newest fill %+v, want 14:50 (final), 14:55 and 15:00 (provisional)", d.Config().Name, got)
				}
			}
			cycle(at.Add(5 * time.Minute))
			// Superseded partials stay until their day is dropped (the
			// reader must skip them): 14:55 was filled by all three
			// cycles, 14:50 by the first two only (final since).
			for _, tc := range []struct {
				bucket time.Duration
				fills  int64
			}{{-5 * time.Minute, 3}, {-10 * time.Minute, 2}} {
				res, err := e.DB.Query(ctx, "SELECT count(DISTINCT fill) FROM "+store.Table{Database: e.Database, Name: "partials"}.Quoted()+" WHERE bucket = ?", at.Add(tc.bucket))
				if err != nil {
					t.Fatal(err)
				}
				if n := store.Int(res.Rows[0][0]); n != tc.fills*int64(len(dets)) {
					t.Errorf("bucket %s has %d fills in the partials, want %d per detector", at.Add(tc.bucket).Format("15:04"), n, tc.fills)
				}
			}
		})
	}
}

// fillSet is what a detector's newest fill holds: its buckets and those
// of them filled provisionally, as "15:04 ..." lists.
type fillSet struct{ buckets, provisional string }

// newestFills returns, per detector, the buckets of its newest fill.
func newestFills(t *testing.T, db store.Store, database string) map[string]fillSet {
	t.Helper()
	res, err := db.Query(context.Background(), "SELECT detector, bucket, provisional FROM "+store.Table{Database: database, Name: "partials_fills"}.Quoted()+
		" WHERE (detector, fill) IN (SELECT detector, max(fill) FROM "+store.Table{Database: database, Name: "partials_fills"}.Quoted()+" GROUP BY detector)")
	if err != nil {
		t.Fatal(err)
	}
	all, prov := map[string][]string{}, map[string][]string{}
	for _, row := range res.Rows {
		name, hm := store.Str(row[0]), store.Time(row[1]).UTC().Format("15:04")
		all[name] = append(all[name], hm)
		if store.Int(row[2]) != 0 {
			prov[name] = append(prov[name], hm)
		}
	}
	out := map[string]fillSet{}
	for name, bs := range all {
		sort.Strings(bs)
		sort.Strings(prov[name])
		out[name] = fillSet{strings.Join(bs, " "), strings.Join(prov[name], " ")}
	}
	return out
}
