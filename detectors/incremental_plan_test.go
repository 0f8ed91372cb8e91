package detectors

import (
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
)

func testIncremental(t *testing.T, now time.Time, opt IncrementalOptions) *Incremental {
	t.Helper()
	opt.Partials = store.Table{Name: "partials"}
	opt.Now = func() time.Time { return now }
	c, err := NewIncremental(nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A window is read from partials for its whole buckets, closed (cached) or
// not yet (open: filled provisionally), and from rows for its edges off the
// bucket grid.
func TestIncrementalPlan(t *testing.T) {
	d := testDetector(t, `
  - name: br
    kind: block_rate
    model: fraud
    window: 1h
    eval_delay: 150s
    baseline: {mode: seasonal, days: 2}
`)
	at := testAt.Add(30 * time.Second) // 15:00:30; windows end 14:58:00
	c := testIncremental(t, at, IncrementalOptions{})
	p := c.plan(d, newWindows(d.cfg, at))
	// closed: 15:00:30 - 2m30s - 10m = 14:48, on the grid 14:45.
	day := 24 * time.Hour
	end := testAt.Add(-2 * time.Minute)
	var want []span
	for i := 2; i >= 0; i-- {
		sh := time.Duration(i) * day
		want = append(want, span{end.Add(-time.Hour - sh), end.Add(-time.Hour - sh + 2*time.Minute)}, span{end.Add(-sh - 3*time.Minute), end.Add(-sh)})
	}
	if len(p.raw) != len(want) {
		t.Fatalf("raw spans %v, want %v", p.raw, want)
	}
	for i := range want {
		if !p.raw[i].from.Equal(want[i].from) || !p.raw[i].to.Equal(want[i].to) {
			t.Errorf("raw span %d: %s..%s, want %s..%s", i, p.raw[i].from, p.raw[i].to, want[i].from, want[i].to)
		}
	}
	// Current window 13:58..14:58: buckets 14:00..14:40 closed (9),
	// 14:45 and 14:50 open; each baseline day 13:58..14:58: 14:00..14:50
	// closed (11).
	if got := len(p.cached); got != 9+2*11 {
		t.Errorf("%d cached buckets, want %d", got, 9+2*11)
	}
	for _, b := range p.cached {
		if b.Truncate(5*time.Minute) != b || !b.Add(5*time.Minute).Before(at.Add(-12*time.Minute)) {
			t.Errorf("bucket %s is off the grid or not closed", b)
		}
	}
	if len(p.open) != 2 || !p.open[0].Equal(testAt.Add(-15*time.Minute)) || !p.open[1].Equal(testAt.Add(-10*time.Minute)) {
		t.Errorf("open buckets %v, want 14:45 and 14:50", p.open)
	}
	if !p.closed.Equal(testAt.Add(-15 * time.Minute)) {
		t.Errorf("closed from %s, want 14:45", p.closed)
	}
	if all := p.buckets(); len(all) != len(p.cached)+len(p.open) || !all[len(all)-1].Equal(p.open[1]) {
		t.Errorf("buckets(): %d, last %v", len(all), all[len(all)-1])
	}
}

// The partials' key follows what a bucket holds: a changed slice list or
// table is a new key, a changed threshold, window or baseline is not.
func TestIncrementalKey(t *testing.T) {
	base := `
  - name: br
    kind: block_rate
    model: fraud
%s`
	c := testIncremental(t, testAt, IncrementalOptions{})
	key := func(extra string) uint64 {
		d := testDetector(t, strings.Replace(base, "%s", extra, 1))
		k, err := c.key(d, d.impl.(partialKind).partial())
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k0 := key("")
	for _, same := range []string{"    min_samples: 50\n", "    window: 3h\n", "    baseline: {mode: previous, span: 1d}\n    fdr: 0.01\n"} {
		if key(same) != k0 {
			t.Errorf("%q changed the key", same)
		}
	}
	for _, other := range []string{"    slices: []\n", "    slices: [merchant_category]\n"} {
		if key(other) == k0 {
			t.Errorf("%q kept the key", other)
		}
	}
	c10 := testIncremental(t, testAt, IncrementalOptions{Bucket: 10 * time.Minute})
	d := testDetector(t, strings.Replace(base, "%s", "", 1))
	if k, _ := c10.key(d, d.impl.(partialKind).partial()); k == k0 {
		t.Error("another bucket size kept the key")
	}
}

// Bad options are refused naming the option.
func TestIncrementalOptions(t *testing.T) {
	for _, tc := range []struct {
		opt  IncrementalOptions
		want string
	}{
		{IncrementalOptions{}, "partials: table name is empty"},
		{IncrementalOptions{Partials: store.Table{Name: "p\x01"}}, "partials: invalid identifier"},
		{IncrementalOptions{Partials: store.Table{Name: "p"}, Bucket: 7 * time.Minute}, "bucket 7m0s"},
		{IncrementalOptions{Partials: store.Table{Name: "p"}, Bucket: 30 * time.Second}, "bucket 30s"},
		{IncrementalOptions{Partials: store.Table{Name: "p"}, LateMargin: -time.Minute}, "late_margin"},
		{IncrementalOptions{Partials: store.Table{Name: "p"}, Recheck: -time.Minute}, "recheck"},
	} {
		_, err := NewIncremental(nil, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to say %q", tc.opt, err, tc.want)
		}
	}
}
