package detectors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Series of a metric read from the prediction log. An alert's chart
// must show the hours before the incident even when the daemon started a
// minute ago, so it cannot be drawn from the daemon's own evaluations
// alone. A series reads, in ONE bounded query, the sums a metric needs
// per time bucket for one slice (the rollup when the detector reads one),
// then replays the detector's windows over those buckets: the point at an
// evaluation time t is the figure an evaluation at t computes (current
// window, baseline windows, band), with the same statistics. Buckets are
// the greatest common divisor of the step, the window, eval_delay and the
// baseline's shifts, so every window is a whole number of buckets.

// SeriesPoint is one evaluation time of a series: the figure of the
// window ending there, its baseline and band (NaN where the windows hold
// fewer than min_samples), and the shadow model's figure (NaN without).
type SeriesPoint struct {
	At                    time.Time
	Value, Baseline       float64
	Low, High             float64
	Shadow                float64
	N                     float64
	BaselineN             float64
	HasBand, HasShadowVal bool
}

// Outside reports whether the point's value lies outside its band.
func (p SeriesPoint) Outside() bool {
	return p.HasBand && !math.IsNaN(p.Value) && (p.Value < p.Low || p.Value > p.High)
}

// Series is a metric's figures for one slice over a time range.
type Series struct {
	Detector string
	Metric   string
	Slice    map[string]string
	Feature  string
	// Step is the time between points (the detector's schedule period,
	// widened to keep at most MaxSeriesPoints); Bucket the query's time
	// bucket.
	Step, Bucket time.Duration
	// Query is the exact SQL that ran.
	Query  string
	Points []SeriesPoint
	Stats  store.Stats
}

// MaxSeriesPoints bounds a series: a longer range takes a wider step.
const MaxSeriesPoints = 400

// maxSeriesBuckets bounds what the query returns (rows of one slice).
const maxSeriesBuckets = 60000

// ErrNoSeries is returned for a metric whose figures cannot be rebuilt
// from per-bucket sums or histograms (frozen features, lags, bounds,
// validity): its chart comes from the evaluations table instead.
var ErrNoSeries = errors.New("no series from the log for this metric")

// seriesSpec is how one (kind, metric) reads its buckets and turns the
// sums of a point's windows into the point.
type seriesSpec struct {
	// cols are the summed result columns after _b, the bucket.
	cols []string
	// feature: the metric is a feature's (the series needs one).
	feature bool
	// raw and rollup write the per-bucket aggregation into q (one row per
	// _b, summed by the caller) for the given ranges and slice filter.
	raw    func(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter)
	rollup func(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter)
	// point fills a point's figures from the current window's sums and
	// each baseline window's.
	point func(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool)
	// hists are histogram columns: the inner query then returns one row
	// per _b and _bin with a count per hist column, and histPoint (used
	// instead of point) gets each window's histograms too.
	hists     []string
	histPoint func(d *Detector, p *SeriesPoint, cur seriesWin, base []seriesWin, seasonal bool)
}

// seriesWin is one window's sums (cols) and histograms (hists, nullBin
// included).
type seriesWin struct {
	sums  []float64
	hists []Hist
}

// seriesSpecs are the metrics with a series: rates and counts.
var seriesSpecs = map[[2]string]seriesSpec{
	{configs.KindBlockRate, MetricBlockRate}: {cols: []string{"n", "x", "sn", "sx"}, raw: blockRateBuckets, rollup: blockRateRollupBuckets, point: blockRatePoint},
	{configs.KindVolume, MetricVolume}:       {cols: []string{"n"}, raw: volumeBuckets, rollup: volumeRollupBuckets, point: volumePoint},
}

// HasSeries reports whether the detector's metric can be read as a series.
func (d *Detector) HasSeries(metric string) bool {
	spec, ok := seriesSpecs[[2]string{d.cfg.Kind, metric}]
	return ok && (d.cfg.Source != configs.SourceRollup || spec.rollup != nil)
}

// sliceFilter is the one slice column and its value as the query reads
// it (sliceValue's rendering); col "" is the aggregate. feature is the
// feature of a feature_health series.
type sliceFilter struct{ col, val, feature string }

// seriesSlice checks the slice against the detector's slice columns and
// returns its filter.
func (d *Detector) seriesSlice(slice map[string]string) (sliceFilter, error) {
	if len(slice) == 0 {
		return sliceFilter{}, nil
	}
	if len(slice) > 1 {
		return sliceFilter{}, fmt.Errorf("slice %v: a series reads one slice column", slice)
	}
	for col, label := range slice {
		known := false
		for _, c := range d.slices() {
			known = known || c == col
		}
		if !known {
			return sliceFilter{}, fmt.Errorf("slice column %q is not one of detector %s's slices %v", col, d.cfg.Name, d.slices())
		}
		val, err := sliceSQLValue(label)
		if err != nil {
			return sliceFilter{}, fmt.Errorf("slice %s=%s: %w", col, label, err)
		}
		return sliceFilter{col: col, val: val}, nil
	}
	return sliceFilter{}, nil
}

// seriesFeature checks the feature a series asks for: a feature_health
// metric needs one the detector watches, other metrics none.
func (d *Detector) seriesFeature(spec seriesSpec, metric, feature string) (string, error) {
	if !spec.feature {
		if feature != "" {
			return "", fmt.Errorf("metric %s has no feature (asked for %q)", metric, feature)
		}
		return "", nil
	}
	if feature == "" {
		return "", fmt.Errorf("metric %s is a feature's: name the feature", metric)
	}
	f := d.impl.(*featureHealth)
	if len(f.names) == 0 {
		return feature, nil // every feature in the arrays
	}
	for _, n := range f.names {
		if n == feature {
			return feature, nil
		}
	}
	return "", fmt.Errorf("feature %q is not one of the features detector %s watches %v", feature, d.cfg.Name, f.names)
}

// sliceSQLValue undoes sliceLabel: the value sliceValue renders for a
// slice label.
func sliceSQLValue(label string) (string, error) {
	switch {
	case label == OtherSlice:
		return "", fmt.Errorf("the %s bucket is the tail beyond top_k, not one value: it has no series", OtherSlice)
	case label == NullSlice:
		return NullSlice, nil
	case strings.HasPrefix(label, `"`):
		v, err := strconv.Unquote(label)
		if err != nil {
			return "", fmt.Errorf("bad quoted slice value: %w", err)
		}
		label = v
	}
	if strings.HasPrefix(label, "(") {
		return "(" + label, nil
	}
	return label, nil
}

// seriesPlan is a series' evaluation times, bucket and query ranges.
type seriesPlan struct {
	times  []time.Time
	wins   []windows
	bucket time.Duration
	ranges []span
}

// plan lays out the points of (from, to]: the detector's schedule period
// as the step (widened to at most MaxSeriesPoints), each point's windows
// as an evaluation would have them, and the ranges they read.
func (d *Detector) plan(from, to time.Time) (seriesPlan, error) {
	if !to.After(from) {
		return seriesPlan{}, fmt.Errorf("series: from %s is not before to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	step := d.period(to)
	if n := to.Sub(from) / step; n > MaxSeriesPoints {
		step *= (n + MaxSeriesPoints - 1) / MaxSeriesPoints
	}
	var p seriesPlan
	for t := to.Truncate(step); t.After(from); t = t.Add(-step) {
		p.times = append([]time.Time{t}, p.times...)
	}
	secs := []int64{int64(step / time.Second), int64(d.cfg.Window.D() / time.Second), int64(d.cfg.EvalDelay.D() / time.Second)}
	switch d.cfg.Baseline.Mode {
	case configs.BaselineSeasonal, configs.BaselineReference:
		secs = append(secs, 86400)
	default:
		secs = append(secs, int64(d.cfg.Baseline.Span.D()/time.Second))
	}
	g := int64(0)
	for _, s := range secs {
		g = gcd(g, s)
	}
	if g%60 != 0 {
		g = 60 // whole minutes: the rollup's grain, and fine enough for any window
	}
	p.bucket = time.Duration(g) * time.Second
	var all []span
	for _, t := range p.times {
		w := newWindows(d.cfg, t)
		p.wins = append(p.wins, w)
		all = append(all, d.impl.spans(w)...)
	}
	p.ranges = mergeSpans(widenSpans(all, p.bucket))
	var n time.Duration
	for _, r := range p.ranges {
		n += r.to.Sub(r.from)
	}
	if n/p.bucket > maxSeriesBuckets {
		return seriesPlan{}, fmt.Errorf("series of %s over %s would read %d buckets of %s (limit %d): ask for a shorter range", d.cfg.Name, to.Sub(from), n/p.bucket, p.bucket, maxSeriesBuckets)
	}
	return p, nil
}

// period is the detector's schedule period around t (its window when the
// schedule gives none).
func (d *Detector) period(t time.Time) time.Duration {
	if d.cfg.Cron != nil {
		a := d.cfg.Cron.Next(t)
		if p := d.cfg.Cron.Next(a).Sub(a); p >= time.Minute {
			return p.Truncate(time.Second)
		}
		return time.Minute
	}
	return d.cfg.Window.D()
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	if a < 0 {
		return -a
	}
	return a
}

// widenSpans widens spans to whole buckets of b (mergeSpans then joins
// the overlapping ones).
func widenSpans(spans []span, b time.Duration) []span {
	out := make([]span, 0, len(spans))
	for _, s := range spans {
		to := s.to.Truncate(b)
		if to.Before(s.to) {
			to = to.Add(b)
		}
		out = append(out, span{s.from.Truncate(b), to})
	}
	return out
}

// seriesSQL renders the series query of metric for one slice over plan p:
// the per-bucket aggregation of the raw table or the rollup, summed per
// bucket.
func (d *Detector) seriesSQL(spec seriesSpec, p seriesPlan, slice sliceFilter) *sqlText {
	inner := &sqlText{}
	if d.cfg.Source == configs.SourceRollup {
		spec.rollup(d, inner, p, slice)
	} else {
		spec.raw(d, inner, p, slice)
	}
	if len(spec.hists) > 0 {
		return histSeriesSQL(spec, inner)
	}
	return sumPerBucket(inner, spec.cols)
}

// sumPerBucket sums cols of inner's rows per bucket _b, in bucket order;
// more are further columns, after the sums.
func sumPerBucket(inner *sqlText, cols []string, more ...string) *sqlText {
	q := &sqlText{}
	q.add("SELECT _b")
	for _, c := range cols {
		q.add(", sum(" + c + ") AS " + c)
	}
	for _, m := range more {
		q.add(", " + m)
	}
	q.addFrom("", inner)
	q.add("\nGROUP BY _b\nORDER BY _b")
	return q
}

// bucketExpr renders the bucket (unix seconds) of a DateTime expression.
func bucketExpr(ts string, b time.Duration) string {
	return fmt.Sprintf("toUInt32(intDiv(toUInt32(%s), %d) * %d)", ts, int64(b/time.Second), int64(b/time.Second))
}

// rawSliceFilter appends the slice condition to a raw WHERE clause.
func (s source) rawSliceFilter(q *sqlText, slice sliceFilter) {
	if slice.col != "" {
		q.add(" AND "+s.sliceValue(slice.col)+" = ?", slice.val)
	}
}

// rawBuckets ends a per-bucket SELECT of the raw table (its columns and a
// newline written): FROM the table, the plan's ranges and rows (every
// role with allRoles), the conditions of where, the slice, GROUP BY keys.
func (s source) rawBuckets(q *sqlText, p seriesPlan, slice sliceFilter, allRoles bool, keys string, where ...func(*sqlText)) {
	q.add("  FROM " + s.table + "\n ")
	s.filter(q, p.ranges, allRoles)
	for _, w := range where {
		w(q)
	}
	s.rawSliceFilter(q, slice)
	q.add("\n  GROUP BY " + keys)
}

func blockRateBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	roleBuckets(d, q, p, slice, "", fmt.Sprintf("countIf(_role = 0 AND _dec < %[1]d) AS n, countIf(_role = 0 AND _dec = 1) AS x, countIf(_role = 1 AND _dec < %[1]d) AS sn, countIf(_role = 1 AND _dec = 1) AS sx", decInvalid))
}

// roleBuckets aggregates aggs (over the rows' _role, _dec and _score, see
// roles) per bucket, and per binExpr's _bin unless it is "".
func roleBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter, binExpr, aggs string) {
	s := newSource(d)
	q.add("  SELECT " + bucketExpr(s.ts(), p.bucket) + " AS _b")
	keys := "_b"
	if binExpr != "" {
		q.add(", " + binExpr + " AS _bin")
		keys += ", _bin"
	}
	if s.m.Shadow.Mode == configs.ShadowColumns {
		q.add(", _r")
		keys += ", _r"
	}
	q.add(",\n    " + aggs + "\n")
	s.rawBuckets(q, p, slice, true, keys)
	inline(q, s.roles()...)
}

func blockRateRollupBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	s := newSource(d)
	main, _ := rollupTables(s.m)
	q.add("  SELECT _b, sumIf(_n - _bd, _r = 0) AS n, sumIf(_x, _r = 0) AS x, sumIf(_n - _bd, _r = 1) AS sn, sumIf(_x, _r = 1) AS sx\n  FROM (\n")
	q.add("    SELECT " + bucketExpr("minute", p.bucket) + " AS _b, role_code AS _r, countMerge(n) AS _n, sumMerge(blocked) AS _x, sumMerge(bad_decisions) AS _bd\n    FROM " + main.Quoted() + "\n   ")
	s.rollupFilter(q, p.ranges, "")
	q.add(" AND slice = ? AND value = ?", slice.col, slice.val)
	q.add("\n    GROUP BY _b, _r\n  )\n  GROUP BY _b")
}

func volumeBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	s := newSource(d)
	q.add("  SELECT " + bucketExpr(s.ts(), p.bucket) + " AS _b, count() AS n\n")
	s.rawBuckets(q, p, slice, false, "_b")
}

func volumeRollupBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	s := newSource(d)
	main, _ := rollupTables(s.m)
	q.add("  SELECT " + bucketExpr("minute", p.bucket) + " AS _b, countMerge(n) AS n\n  FROM " + main.Quoted() + "\n ")
	s.rollupFilter(q, p.ranges, "role_code = 0")
	q.add(" AND slice = ? AND value = ?", slice.col, slice.val)
	q.add("\n  GROUP BY _b")
}

// blockRatePoint is block_rate's figure, band and shadow rate at a point:
// the detector's own rateChange over the windows' sums.
func blockRatePoint(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
	days := make([]Prop, len(base))
	for i, w := range base {
		days[i] = Prop{w[1], w[0]}
	}
	if cur[2] > 0 {
		p.Shadow, p.HasShadowVal = cur[3]/cur[2], true
	}
	ratioPoint(d, p, MetricBlockRate, Prop{cur[1], cur[0]}, days, seasonal, TailBoth)
}

// volumePoint is volume's count, expected count and band at a point.
func volumePoint(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
	v := d.impl.(*volume)
	days := make([]float64, len(base))
	var sum float64
	for i, w := range base {
		days[i] = w[0]
		sum += w[0]
	}
	p.Value, p.N, p.BaselineN = cur[0], cur[0], sum
	if len(base) == 0 {
		return
	}
	expect, _, _ := v.expected(days, seasonal)
	if !d.enough(expect) {
		return
	}
	p.Baseline = expect
	p.Low, p.High = v.band(expect)
	p.HasBand = true
}

// SeriesQuery renders the SQL a series of metric for slice over (from,
// to] runs, without running it.
func (d *Detector) SeriesQuery(metric string, slice map[string]string, feature string, from, to time.Time) (string, error) {
	spec, p, sf, err := d.seriesSetup(metric, slice, feature, from, to)
	if err != nil {
		return "", err
	}
	return d.seriesSQL(spec, p, sf).bind()
}

func (d *Detector) seriesSetup(metric string, slice map[string]string, feature string, from, to time.Time) (seriesSpec, seriesPlan, sliceFilter, error) {
	spec, ok := seriesSpecs[[2]string{d.cfg.Kind, metric}]
	if ok && d.cfg.Source == configs.SourceRollup && spec.rollup == nil {
		ok = false
	}
	if !ok {
		return spec, seriesPlan{}, sliceFilter{}, fmt.Errorf("detector %s (%s) metric %q: %w", d.cfg.Name, d.cfg.Kind, metric, ErrNoSeries)
	}
	sf, err := d.seriesSlice(slice)
	if err == nil {
		sf.feature, err = d.seriesFeature(spec, metric, feature)
	}
	if err != nil {
		return spec, seriesPlan{}, sf, fmt.Errorf("detector %s: %w", d.cfg.Name, err)
	}
	p, err := d.plan(from.UTC(), to.UTC())
	if err != nil {
		return spec, p, sf, fmt.Errorf("detector %s: %w", d.cfg.Name, err)
	}
	return spec, p, sf, nil
}

// Series reads metric for one slice over (from, to] from the prediction
// log (or the rollup) in one query and replays the detector's windows:
// one point per evaluation time.
func (d *Detector) Series(ctx context.Context, q Querier, metric string, slice map[string]string, feature string, from, to time.Time) (*Series, error) {
	spec, p, sf, err := d.seriesSetup(metric, slice, feature, from, to)
	if err != nil {
		return nil, err
	}
	sql, err := d.seriesSQL(spec, p, sf).bind()
	if err != nil {
		return nil, fmt.Errorf("series of %s: %w", d.cfg.Name, err)
	}
	out := &Series{Detector: d.cfg.Name, Metric: metric, Slice: slice, Feature: feature, Step: d.step(p), Bucket: p.bucket, Query: sql}
	res, err := q.Query(ctx, sql)
	if err != nil {
		return out, fmt.Errorf("series of %s: query: %w", d.cfg.Name, err)
	}
	out.Stats = res.Stats
	sums, err := bucketSums(res, spec.cols)
	if err != nil {
		return out, fmt.Errorf("series of %s: %w", d.cfg.Name, err)
	}
	hists, err := bucketHists(res, spec.hists)
	if err != nil {
		return out, fmt.Errorf("series of %s: %w", d.cfg.Name, err)
	}
	for i, t := range p.times {
		w := p.wins[i]
		pt := SeriesPoint{At: t, Value: math.NaN(), Baseline: math.NaN(), Low: math.NaN(), High: math.NaN(), Shadow: math.NaN()}
		cur := sumSpan(sums, w.cur, p.bucket, len(spec.cols))
		base := make([][]float64, len(w.base))
		for j, sp := range w.base {
			base[j] = sumSpan(sums, sp, p.bucket, len(spec.cols))
		}
		if spec.histPoint != nil {
			bw := make([]seriesWin, len(w.base))
			for j, sp := range w.base {
				bw[j] = seriesWin{base[j], histSpan(hists, sp, p.bucket, len(spec.hists))}
			}
			spec.histPoint(d, &pt, seriesWin{cur, histSpan(hists, w.cur, p.bucket, len(spec.hists))}, bw, w.seasonal)
		} else {
			spec.point(d, &pt, cur, base, w.seasonal)
		}
		out.Points = append(out.Points, pt)
	}
	return out, nil
}

// step is the time between a plan's points.
func (d *Detector) step(p seriesPlan) time.Duration {
	if len(p.times) > 1 {
		return p.times[1].Sub(p.times[0])
	}
	return d.period(p.times[0])
}

// bucketSums reads the query's rows: bucket start (unix seconds) → sums.
func bucketSums(res *store.Result, cols []string) (map[int64][]float64, error) {
	ib := res.Index("_b")
	if ib < 0 {
		return nil, fmt.Errorf("result lacks column _b")
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		if idx[i] = res.Index(c); idx[i] < 0 {
			return nil, fmt.Errorf("result lacks column %s", c)
		}
	}
	out := make(map[int64][]float64, len(res.Rows))
	for _, row := range res.Rows {
		v := make([]float64, len(cols))
		for i, j := range idx {
			if f := store.Float(row[j]); !math.IsNaN(f) {
				v[i] = f
			}
		}
		out[store.Int(row[ib])] = v
	}
	return out, nil
}

// sumSpan adds the buckets that start inside sp.
func sumSpan(sums map[int64][]float64, sp span, b time.Duration, n int) []float64 {
	out := make([]float64, n)
	start := sp.from.Truncate(b)
	if start.Before(sp.from) {
		start = start.Add(b)
	}
	for t := start; t.Before(sp.to); t = t.Add(b) {
		for i, v := range sums[t.Unix()] {
			out[i] += v
		}
	}
	return out
}

// Onset walks a series back from the newest point at or before at while
// the metric stays outside its band, and returns the first evaluation
// time of that run: when an evaluation would first have seen the
// incident. Points without a band (too few samples) neither end nor
// start the run. ok is false when the newest point with a band is inside
// it: the log shows no incident going on at `at`.
func Onset(points []SeriesPoint, at time.Time) (onset time.Time, ok bool) {
	for i := len(points) - 1; i >= 0; i-- {
		p := points[i]
		if p.At.After(at) || !p.HasBand || math.IsNaN(p.Value) {
			continue
		}
		if !p.Outside() {
			break
		}
		onset, ok = p.At, true
	}
	return onset, ok
}
