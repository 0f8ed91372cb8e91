package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// volume compares the request count of the aggregate and every slice with
// its baseline: a drop below drop_ratio or a spike above spike_ratio of
// the expected count, decided by a Poisson test at that ratio (negative
// binomial when the baseline days spread more than Poisson), is the
// logging path or the pipeline failing.
type volume struct{ base[configs.VolumeParams] }

// Metrics of volume and freshness.
const (
	MetricVolume = "volume"
	MetricLag    = "lag_seconds"
)

func newVolume(d *Detector) (kind, error) {
	return newKind(d, configs.KindVolume, d.cfg.Volume, func(b base[configs.VolumeParams]) kind { return &volume{b} })
}

func (v *volume) query(w windows) *sqlText {
	return v.src.counted(w, v.d.slices(), nil, []string{"count()"}, []string{"n"}, false, nil)
}

// partial is volume's query in partial form (incremental.go).
func (v *volume) partial() partialSpec {
	return v.src.countedPartial(countedSpec{slices: v.d.slices(), aggs: []string{"count()"}, sums: []string{"n"}})
}

// rollupQuery is volume's query over the rollup's production rows.
func (v *volume) rollupQuery(w windows) *sqlText {
	s := v.src
	main, _ := rollupTables(s.m)
	inner := &sqlText{}
	inner.add("    SELECT ")
	s.rollupWindow(inner, w)
	inner.add(" AS w, slice AS sc, value AS sv, countMerge(n) AS n\n    FROM " + main.Quoted() + "\n   ")
	s.rollupFilter(inner, w.all(), "role_code = 0")
	inner.add(" AND has(?, slice)", append([]string{""}, v.d.slices()...))
	inner.add("\n    GROUP BY w, sc, sv")
	return s.ranked(inner, false, []string{"n"}, "n")
}

func (v *volume) evaluate(res *store.Result, r *run) error {
	groups, c, err := readGroups(res, "", foldSpec{sums: []string{"n"}}, v.d.cfg.TopK, "n")
	if err != nil {
		return err
	}
	n := c[0]
	nb := len(r.w.base)
	if len(groups) == 0 {
		// Not a row in any window: nothing to expect either.
		r.skip(map[string]string{}, "")
	}
	for _, g := range groups {
		x := g.num(0, n)
		days := make([]float64, nb)
		for w := 1; w <= nb; w++ {
			days[w-1] = g.num(w, n)
		}
		expect, expectVar, extra := v.expected(days, r.w.seasonal)
		// min_samples applies to what was expected: the current count may
		// be zero, that is the point.
		if !v.d.enough(expect) {
			r.skip(sliceOf(g.col, g.val), "")
			continue
		}
		h := newHyp(MetricVolume, sliceOf(g.col, g.val), "", ClassPipelineOutage)
		h.Value, h.Baseline = x, expect
		h.BaselineLow, h.BaselineHigh = v.band(expect)
		h.effect = x - expect
		h.NCurrent, h.NBaseline = uint64(x), uint64(g.base(nb, n))
		ratio := x / expect
		if ratio < 1 {
			d := v.p.DropRatio
			h.PValue = CountTest(x, d*expect, d*d*expectVar, TailDown)
			h.gate = ratio < d
			h.summary = fmt.Sprintf("%s request volume dropped to %s vs %s expected (%s of baseline, below %s)",
				label(g.col, g.val), count(x), count(expect), pct(ratio), pct(d))
		} else {
			s := v.p.SpikeRatio
			if s > 0 {
				h.PValue = CountTest(x, s*expect, s*s*expectVar, TailUp)
			}
			h.gate = s > 0 && ratio > s
			h.summary = fmt.Sprintf("%s request volume spiked to %s vs %s expected (%.1fx baseline, above %.1fx)",
				label(g.col, g.val), count(x), count(expect), ratio, s)
		}
		h.details = details("ratio", ratio, "day_to_day_sd", math.Sqrt(extra))
		r.add(h)
	}
	return nil
}

// expected is the count a window should hold given the baseline
// windows' counts (days: one per seasonal day, or the previous span), the
// variance of that expectation and the day-to-day excess variance.
func (v *volume) expected(days []float64, seasonal bool) (expect, expectVar, extra float64) {
	var sum float64
	for _, d := range days {
		sum += d
	}
	if seasonal {
		nb := float64(len(days))
		if nb == 0 {
			return math.NaN(), math.NaN(), 0 // no baseline day: nothing expected, skipped
		}
		expect = sum / nb
		extra = CountVar(days)
		// A new day's count spreads by the day-to-day excess, and the
		// mean of nb days is itself uncertain.
		return expect, extra*(1+1/nb) + expect/nb, extra
	}
	scale := float64(v.d.cfg.Window.D()) / float64(v.d.cfg.Baseline.Span.D())
	return sum * scale, sum * scale * scale, 0
}

// band is the range of counts that does not alert: drop_ratio and
// spike_ratio (none: unbounded) of the expected count.
func (v *volume) band(expect float64) (low, high float64) {
	low, high = expect*v.p.DropRatio, math.Inf(1)
	if v.p.SpikeRatio > 0 {
		high = expect * v.p.SpikeRatio
	}
	return low, high
}

// freshness reports when the newest production row is older than max_lag
// at the evaluation time: logging stopped (pipeline_outage). Rows stamped
// after the evaluation time are ignored, so a backtest sees what the
// daemon saw.
type freshness struct{ base[configs.FreshnessParams] }

func newFreshness(d *Detector) (kind, error) {
	return newKind(d, configs.KindFreshness, d.cfg.Freshness, func(b base[configs.FreshnessParams]) kind { return &freshness{b} })
}

// lookback is how far back the newest row is looked for: no row within it
// means the lag is at least that.
func (f *freshness) lookback() time.Duration {
	return max(f.d.cfg.Window.D(), 2*f.p.MaxLag.D())
}

func (f *freshness) query(w windows) *sqlText {
	s := f.src
	q := &sqlText{}
	q.add("SELECT max(" + s.ts() + ") AS newest, count() AS n FROM " + s.table)
	s.filter(q, []span{{w.at.Add(-f.lookback()), w.at}}, false)
	return q
}

func (f *freshness) evaluate(res *store.Result, r *run) error {
	c, err := cols(res, "newest", "n")
	if err != nil {
		return err
	}
	if len(res.Rows) != 1 {
		return fmt.Errorf("freshness: want one row, got %d", len(res.Rows))
	}
	row := res.Rows[0]
	n := store.Float(row[c[1]])
	lag := f.lookback()
	newest := store.Time(row[c[0]])
	if n > 0 {
		lag = r.w.at.Sub(newest)
	}
	h := newHyp(MetricLag, map[string]string{}, "", ClassPipelineOutage)
	h.Value, h.Baseline, h.BaselineHigh = lag.Seconds(), f.p.MaxLag.D().Seconds(), f.p.MaxLag.D().Seconds()
	h.effect = h.Value - h.Baseline
	h.NCurrent = uint64(n)
	h.gate = lag > f.p.MaxLag.D()
	if n > 0 {
		h.summary = fmt.Sprintf("newest prediction row is %s old at %s (max lag %s)", configs.FormatDuration(lag.Round(time.Second)), r.w.at.Format(time.RFC3339), f.p.MaxLag)
	} else {
		// No age to give: say what was looked for, so a model_value
		// that matches nothing reads as that and not as an old row.
		h.summary = fmt.Sprintf("no rows for model value %q (column %s) in the %s before %s (max lag %s)",
			f.src.m.ModelValue, f.src.m.Columns.Model, configs.FormatDuration(lag), r.w.at.Format(time.RFC3339), f.p.MaxLag)
	}
	r.add(h)
	return nil
}

func (v *volume) spans(w windows) []span { return w.all() }

func (f *freshness) spans(w windows) []span { return []span{{w.at.Add(-f.lookback()), w.at}} }
