package detectors

import (
	"fmt"
	"math"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Series of the kinds beyond block_rate and volume (series.go): each
// reads per bucket the counts its figure is a ratio of, and replays the
// detector's windows with the detector's own band.
//
//   - feature_health: the feature's null rate (rows of the slice, rows
//     where the feature holds a finite value) and its default-fill rate
//     (values equal to the feature's default among the finite ones); the
//     ceiling and all-NULL alerts draw the null rate.
//   - shadow: the disagreement rate in each direction among the paired
//     requests, with the pairs' score correlation as the second line (its
//     own axis on the chart); the score-correlation alert draws the
//     correlation against min_correlation.
//   - expectation: the golden rows' block rate against [min_rate,
//     max_rate] (no baseline: only the current windows are read).
//   - performance: precision, recall, false-positive rate, fraud rate and
//     label coverage of the matured predictions joined to their labels,
//     with the shadow's figure as the second line.
//   - block_rate's score PSI and feature_health's feature PSI
//     (serieshist.go): each bucket's fine histogram, summed per window,
//     and the detector's histDrift; the score's with the shadow's PSI as
//     the second line.
//   - feature_health's null-rate ceiling and all-NULL alerts draw the
//     null rate: SeriesShows names the metric drawn, and such a series
//     dates no onset.

// seriesStandIns maps a metric whose chart draws another figure to it.
var seriesStandIns = map[[2]string]string{
	{configs.KindFeatureHealth, MetricNullCeiling}: MetricNullRate,
	{configs.KindFeatureHealth, MetricAllNull}:     MetricNullRate,
}

// SeriesShows returns the metric a chart of kind's metric draws from the
// log: the metric itself, or the figure that stands for it (null_rate
// for null_rate_max and all_null); "" when the metric has no series.
func SeriesShows(kind, metric string) string {
	k := [2]string{kind, metric}
	if _, ok := seriesSpecs[k]; !ok {
		return ""
	}
	if m, ok := seriesStandIns[k]; ok {
		return m
	}
	return metric
}

// HasOnsetSeries reports whether the detector's metric has a series of
// its own figure and band, from which an onset can be read.
func (d *Detector) HasOnsetSeries(metric string) bool {
	return d.HasSeries(metric) && SeriesShows(d.cfg.Kind, metric) == metric
}

func init() {
	for _, m := range []string{MetricNullRate, MetricNullCeiling, MetricAllNull} {
		seriesSpecs[[2]string{configs.KindFeatureHealth, m}] = seriesSpec{cols: featureSeriesCols, feature: true, raw: featureBuckets, rollup: featureRollupBuckets, point: nullRatePoint}
	}
	seriesSpecs[[2]string{configs.KindFeatureHealth, MetricFillRate}] = seriesSpec{cols: featureSeriesCols, feature: true, raw: featureBuckets, rollup: featureRollupBuckets, point: fillRatePoint}
	seriesSpecs[[2]string{configs.KindBlockRate, MetricScorePSI}] = scorePSISpec
	seriesSpecs[[2]string{configs.KindFeatureHealth, MetricFeaturePSI}] = featurePSISpec
	for _, m := range []string{MetricProdBlocks, MetricShadowBlocks} {
		seriesSpecs[[2]string{configs.KindShadow, m}] = seriesSpec{cols: shadowSeriesCols, raw: shadowBuckets, point: disagreementPoint(m)}
	}
	seriesSpecs[[2]string{configs.KindShadow, MetricCorrelation}] = seriesSpec{cols: shadowSeriesCols, raw: shadowBuckets, point: correlationPoint}
	seriesSpecs[[2]string{configs.KindExpectation, MetricExpected}] = seriesSpec{cols: []string{"n", "x"}, raw: expectationBuckets, point: expectationPoint}
	for _, c := range perfChecks {
		seriesSpecs[[2]string{configs.KindPerformance, c.metric}] = seriesSpec{cols: performanceCols, raw: performanceBuckets, point: performancePoint(c)}
	}
}

// featureSeriesCols: the slice's production rows, the feature's finite
// values and those equal to its default.
var featureSeriesCols = []string{"n", "nn", "fills"}

// featureBuckets counts per bucket the slice's rows and the feature's
// finite and default values, element by element as the detector's ARRAY
// JOIN does (a value array shorter than its names counts as NULL).
func featureBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	f := d.impl.(*featureHealth)
	s := newSource(d)
	q.add("  SELECT " + bucketExpr(s.ts(), p.bucket) + " AS _b, count() AS n, ")
	fs := s.m.Features
	if fs.Layout == configs.LayoutColumns {
		v := "toNullable(toFloat64(" + store.MustIdent(slice.feature) + "))"
		q.add("countIf(ifNull(isFinite("+v+"), 0)) AS nn, countIf(ifNull("+v+" = ?, 0)) AS fills", f.defaultOf(slice.feature))
	} else {
		names := store.MustIdent(fs.NamesColumn)
		vals := "arrayResize(" + store.MustIdent(fs.ValuesColumn) + ", length(" + names + "), CAST(NULL AS Nullable(Float64)))"
		q.add("sum(arrayCount((_f, _v) -> _f = ? AND ifNull(isFinite(_v), 0), "+names+", "+vals+")) AS nn, ", slice.feature)
		q.add("sum(arrayCount((_f, _v) -> _f = ? AND ifNull(_v = ?, 0), "+names+", "+vals+")) AS fills", slice.feature, f.defaultOf(slice.feature))
	}
	q.add("\n")
	s.rawBuckets(q, p, slice, false, "_b")
}

// featureRollupBuckets reads the features rollup (aggregate only): the
// pseudo-feature ” counts the rows; fills are its zeros.
func featureRollupBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	s := newSource(d)
	_, feats := rollupTables(s.m)
	q.add("  SELECT _b, sumIf(_n, feature = '') AS n, sumIf(_nn, feature = ?) AS nn, sumIf(_z, feature = ?) AS fills\n  FROM (\n", slice.feature, slice.feature)
	q.add("    SELECT " + bucketExpr("minute", p.bucket) + " AS _b, feature, countMerge(n) AS _n, sumMerge(nn) AS _nn, sumMerge(zeros) AS _z\n    FROM " + feats.Quoted() + "\n   ")
	s.rollupFilter(q, p.ranges, "")
	q.add(" AND has(?, feature)", []string{"", slice.feature})
	q.add("\n    GROUP BY _b, feature\n  )\n  GROUP BY _b")
}

// ratioPoint fills a rate point: x of n now against the baseline
// windows' sums, with rateChange's band (the detector's) on the tail.
func ratioPoint(d *Detector, p *SeriesPoint, metric string, cur Prop, days []Prop, seasonal bool, tail Tail) {
	var b Prop
	for _, w := range days {
		b.X += w.X
		b.N += w.N
	}
	p.N, p.BaselineN = cur.N, b.N
	if cur.N > 0 {
		p.Value = cur.Rate()
	}
	if !d.enough(cur.N) || !d.enough(b.N) {
		return
	}
	var spread float64
	if seasonal {
		spread = SeasonalVar(days)
	}
	h, _ := d.rateChange(metric, nil, "", ClassModelBehavior, cur, b, spread, tail)
	p.Baseline, p.Low, p.High, p.HasBand = h.Baseline, h.BaselineLow, h.BaselineHigh, true
}

// nullRatePoint is the feature's null rate: rows without a finite value.
func nullRatePoint(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
	days := make([]Prop, len(base))
	for i, w := range base {
		days[i] = Prop{w[0] - w[1], w[0]}
	}
	ratioPoint(d, p, MetricNullRate, Prop{cur[0] - cur[1], cur[0]}, days, seasonal, TailUp)
}

// fillRatePoint is the feature's default-fill rate among finite values;
// the detector checks it only where the slice's rows are enough too.
func fillRatePoint(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
	days := make([]Prop, len(base))
	var rows float64
	for i, w := range base {
		days[i] = Prop{w[2], w[1]}
		rows += w[0]
	}
	ratioPoint(d, p, MetricFillRate, Prop{cur[2], cur[1]}, days, seasonal, TailUp)
	if !d.enough(cur[0]) || !d.enough(rows) {
		p.HasBand = false
	}
}

// shadowSeriesCols: valid pairs, disagreements each way, and the score
// sums of the pairs with both scores in [0, 1] (corr).
var shadowSeriesCols = []string{"n", "pb", "sb", "nc", "sa", "sbs", "saa", "sbb", "sab"}

// shadowBuckets pairs each request's production and shadow rows (by
// request id in the rows mode; one row carries both in the columns mode)
// and counts per bucket, for the slice of the production row.
func shadowBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	s := newSource(d)
	c := s.m.Columns
	ok := fmt.Sprintf("paired AND pd < %[1]d AND sd < %[1]d", decInvalid)
	fin := "paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)"
	q.add("  SELECT _b, countIf(" + ok + ") AS n, countIf(" + ok + " AND pd = 1 AND sd = 0) AS pb, countIf(" + ok + " AND pd = 0 AND sd = 1) AS sb,\n")
	q.add("    countIf(" + fin + ") AS nc, sumIf(a, " + fin + ") AS sa, sumIf(b, " + fin + ") AS sbs, sumIf(a * a, " + fin + ") AS saa, sumIf(b * b, " + fin + ") AS sbb, sumIf(a * b, " + fin + ") AS sab\n  FROM (\n    ")
	sv := "''"
	if slice.col != "" {
		sv = s.sliceValue(slice.col)
	}
	b := bucketExpr(s.ts(), p.bucket)
	if s.m.Shadow.Mode == configs.ShadowColumns {
		q.add("SELECT " + b + " AS _b, " + decision(s.col(c.Decision)) + " AS pd, " + decision(s.col(s.m.Shadow.DecisionColumn)) + " AS sd,\n")
		q.add("      toFloat64(" + s.col(c.Score) + ") AS a, toFloat64(" + s.col(s.m.Shadow.ScoreColumn) + ") AS b, isNotNull(" + s.col(s.m.Shadow.DecisionColumn) + ") AS paired, " + sv + " AS _c\n    FROM " + s.table + "\n   ")
		s.filter(q, p.ranges, false)
	} else {
		q.add("SELECT min(_b0) AS _b, anyIf(_d, _p) AS pd, anyIf(_d, NOT _p) AS sd, anyIf(_sc, _p) AS a, anyIf(_sc, NOT _p) AS b,\n")
		q.add("      NOT min(_e) AND countIf(_p) = 1 AND countIf(NOT _p) = 1 AS paired, argMax(_v, _p) AS _c\n    FROM (\n      SELECT ")
		q.add(b+" AS _b0, "+s.col(c.Role)+" = ? AS _p, "+decision(s.col(c.Decision))+" AS _d, toFloat64("+s.col(c.Score)+") AS _sc, "+s.col(c.RequestID)+" AS _id, _id = '' AS _e, "+sv+" AS _v\n      FROM "+s.table+"\n     ", s.m.Shadow.ProductionRole)
		s.filter(q, p.ranges, true)
		q.add("\n    )\n    GROUP BY if(_e, rand64(), cityHash64(_id))")
	}
	q.add("\n  )\n  WHERE paired")
	if slice.col != "" {
		q.add(" AND _c = ?", slice.val)
	}
	q.add("\n  GROUP BY _b")
}

// corrOf is the score correlation of a window's shadow sums.
func corrOf(w []float64) float64 { return corr(w[3], w[4], w[5], w[6], w[7], w[8]) }

// disagreementPoint is one direction's disagreement rate with the shadow
// detector's band (baseline + margin + two standard deviations) and the
// pairs' score correlation as the shadow line.
func disagreementPoint(metric string) func(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
	x := 1
	if metric == MetricShadowBlocks {
		x = 2
	}
	return func(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
		days := make([]Prop, len(base))
		for i, w := range base {
			days[i] = Prop{w[x], w[0]}
		}
		if cc := corrOf(cur); !math.IsNaN(cc) {
			p.Shadow, p.HasShadowVal = cc, true
		}
		// The shadow detector's band is rateChange's upper one.
		ratioPoint(d, p, metric, Prop{cur[x], cur[0]}, days, seasonal, TailUp)
	}
}

// correlationPoint is the pairs' score correlation against
// min_correlation (the band's floor), its baseline the baseline windows'.
func correlationPoint(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, _ bool) {
	sum := make([]float64, len(shadowSeriesCols))
	for _, w := range base {
		for i, v := range w {
			sum[i] += v
		}
	}
	p.N, p.BaselineN = cur[0], sum[0]
	p.Value = corrOf(cur)
	if math.IsNaN(p.Value) || !d.enough(cur[0]) || !d.enough(sum[0]) {
		return
	}
	p.Baseline, p.Low, p.High, p.HasBand = corrOf(sum), d.cfg.ShadowParams.MinCorrelation, 1, true
}

// expectationBuckets counts the golden rows' valid and blocked decisions.
func expectationBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	e := d.impl.(*expectation)
	s := newSource(d)
	dec := decision(s.col(s.m.Columns.Decision))
	q.add(fmt.Sprintf("  SELECT %s AS _b, countIf(%s < %d) AS n, countIf(%s = 1) AS x\n", bucketExpr(s.ts(), p.bucket), dec, decInvalid, dec))
	s.rawBuckets(q, p, slice, false, "_b", e.match)
}

// expectationPoint is the golden rows' block rate; the band is the
// configured [min_rate, max_rate] (no baseline).
func expectationPoint(d *Detector, p *SeriesPoint, cur []float64, _ [][]float64, _ bool) {
	e := d.impl.(*expectation)
	p.N = cur[0]
	if cur[0] > 0 {
		p.Value = cur[1] / cur[0]
	}
	if !d.enough(cur[0]) {
		return
	}
	p.Low, p.High, p.HasBand = 0, 1, true
	if e.p.MinRate != nil {
		p.Low = *e.p.MinRate
	}
	if e.p.MaxRate != nil {
		p.High = *e.p.MaxRate
	}
}

// performanceBuckets joins the predictions of the plan's ranges to their
// labels (performance.query's join) and counts per bucket.
func performanceBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	pf := d.impl.(*performance)
	s := newSource(d)
	maturity := int64(pf.labels.Maturity.D().Seconds())
	okDec := fmt.Sprintf("_dec < %d", decInvalid)
	q.add("  SELECT _b")
	for i, role := range []string{"0", "1"} {
		v := "_role = " + role + " AND " + okDec
		aggs := []string{"countIf(" + v + ")", "countIf(" + v + " AND _ok)", "countIf(" + v + " AND _ok AND _y = 1)",
			"countIf(" + v + " AND _ok AND _dec = 1)", "countIf(" + v + " AND _ok AND _y = 1 AND _dec = 1)"}
		for j, a := range aggs {
			q.add(", " + a + " AS " + performanceCols[5*i+j])
		}
	}
	q.add(fmt.Sprintf("\n  FROM (\n    SELECT _b, _role, _dec, _y, _lab = 1 AND toUInt32(_lat) < toUInt32(_ts) + %d AS _ok\n    FROM (\n      SELECT ", maturity))
	q.add(bucketExpr(s.ts(), p.bucket) + " AS _b, " + s.ts() + " AS _ts, " + s.col(s.m.Columns.RequestID) + " AS _id, ")
	columns(q, s.roles())
	q.add("\n      FROM " + s.table + "\n     ")
	s.filter(q, p.ranges, true)
	s.rawSliceFilter(q, slice)
	q.add("\n    ) AS p\n    ANY LEFT JOIN (\n      ")
	first, last := p.ranges[0].from, p.ranges[len(p.ranges)-1].to
	pf.labelSource(q, first, last.Add(pf.labels.Maturity.D()))
	q.add("\n    ) AS l USING _id\n    WHERE _role < 2\n  )\n  GROUP BY _b")
}

// perfCheck is one performance figure as sums of performanceCols: x of n
// (production at offset 0, the shadow at 5), and its tail.
type perfCheck struct {
	metric string
	x, n   func(w []float64, o int) float64
	tail   Tail
}

// perfChecks are performance's figures (performance.evaluate's checks
// and the coverage) over the columns n, l, f, b, tp.
var perfChecks = []perfCheck{
	{MetricPrecision, func(w []float64, o int) float64 { return w[o+4] }, func(w []float64, o int) float64 { return w[o+3] }, TailDown},
	{MetricRecall, func(w []float64, o int) float64 { return w[o+4] }, func(w []float64, o int) float64 { return w[o+2] }, TailDown},
	{MetricFalsePositive, func(w []float64, o int) float64 { return w[o+3] - w[o+4] }, func(w []float64, o int) float64 { return w[o+1] - w[o+2] }, TailUp},
	{MetricFraudRate, func(w []float64, o int) float64 { return w[o+2] }, func(w []float64, o int) float64 { return w[o+1] }, TailBoth},
	{MetricLabelCoverage, func(w []float64, o int) float64 { return w[o+1] }, func(w []float64, o int) float64 { return w[o] }, TailDown},
}

// performancePoint is one performance figure with the detector's band
// (perfBand; the coverage's floor is coverage_drop of the baseline) and
// the shadow's figure.
func performancePoint(c perfCheck) func(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
	return func(d *Detector, p *SeriesPoint, cur []float64, base [][]float64, seasonal bool) {
		pf := d.impl.(*performance)
		now := Prop{c.x(cur, 0), c.n(cur, 0)}
		days := make([]Prop, len(base))
		var b Prop
		for i, w := range base {
			days[i] = Prop{c.x(w, 0), c.n(w, 0)}
			b.X += days[i].X
			b.N += days[i].N
		}
		p.N, p.BaselineN = now.N, b.N
		if now.N > 0 {
			p.Value = now.Rate()
		}
		if sn := c.n(cur, 5); sn > 0 && c.metric != MetricFraudRate && c.metric != MetricLabelCoverage {
			p.Shadow, p.HasShadowVal = c.x(cur, 5)/sn, true
		}
		if !d.enough(now.N) || !d.enough(b.N) {
			return
		}
		pb := b.Rate()
		p.Baseline, p.HasBand = pb, true
		if c.metric == MetricLabelCoverage {
			p.Low, p.High, p.HasBand = pf.p.CoverageDrop*pb, 1, b.X > 0
			return
		}
		var spread float64
		if seasonal {
			spread = SeasonalVar(days)
		}
		p.Low, p.High = perfBand(pb, d.margin(pb), spread, now.N, c.tail)
	}
}
