package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Series of distribution drift (PSI): the query reads per bucket the
// fine histogram the detector reads per window (bin's 15-bit bins), the
// windows' histograms are the sums of their buckets', and the point runs
// the detector's histDrift on them: the PSI of the current window over
// the pooled baseline's deciles, the band its day-to-day excess plus
// psi_alert. A bucket's row carries one array of bins and one of counts
// per histogram, so the rows stay one per bucket.

// histSeriesSQL sums the inner rows (one per _b and _bin, possibly
// several) per bucket and bin, then collects each histogram's bins per
// bucket as <h>_bins and <h>_cnts.
func histSeriesSQL(spec seriesSpec, inner *sqlText) *sqlText {
	mid := &sqlText{}
	mid.add("  SELECT _b, _bin")
	for _, c := range append(append([]string{}, spec.cols...), spec.hists...) {
		mid.add(", sum(" + c + ") AS " + c)
	}
	mid.addFrom("  ", inner)
	mid.add("\n  GROUP BY _b, _bin")
	arrays := make([]string, len(spec.hists))
	for i, h := range spec.hists {
		arrays[i] = "groupArrayIf(_bin, " + h + " > 0) AS " + h + "_bins, groupArrayIf(" + h + ", " + h + " > 0) AS " + h + "_cnts"
	}
	return sumPerBucket(mid, spec.cols, arrays...)
}

// bucketHists reads each bucket's histograms (nil without hists).
func bucketHists(res *store.Result, hists []string) (map[int64][]Hist, error) {
	if len(hists) == 0 {
		return nil, nil
	}
	ib := res.Index("_b")
	idx := make([][2]int, len(hists))
	for i, h := range hists {
		idx[i] = [2]int{res.Index(h + "_bins"), res.Index(h + "_cnts")}
		if ib < 0 || idx[i][0] < 0 || idx[i][1] < 0 {
			return nil, fmt.Errorf("result lacks the columns of histogram %s", h)
		}
	}
	out := make(map[int64][]Hist, len(res.Rows))
	for _, row := range res.Rows {
		hs := make([]Hist, len(hists))
		for i, j := range idx {
			hs[i] = Hist{}
			bs, _ := row[j[0]].([]any)
			cs, _ := row[j[1]].([]any)
			for k := range bs {
				if k < len(cs) {
					hs[i][uint64(store.Int(bs[k]))] += store.Float(cs[k])
				}
			}
		}
		out[store.Int(row[ib])] = hs
	}
	return out, nil
}

// histSpan adds the histograms of the buckets that start inside sp.
func histSpan(hists map[int64][]Hist, sp span, b time.Duration, n int) []Hist {
	out := make([]Hist, n)
	for i := range out {
		out[i] = Hist{}
	}
	start := sp.from.Truncate(b)
	if start.Before(sp.from) {
		start = start.Add(b)
	}
	for t := start; t.Before(sp.to); t = t.Add(b) {
		for i, h := range hists[t.Unix()] {
			out[i].Add(h)
		}
	}
	return out
}

// valid drops nullBin (the NULL, NaN, infinite or out-of-range values)
// from a copy of h, as group.hist does.
func valid(h Hist) Hist {
	out := make(Hist, len(h))
	for b, c := range h {
		if b != nullBin {
			out[b] = c
		}
	}
	return out
}

// psiPoint fills a drift point from a current histogram and the baseline
// windows' (nullBin dropped): histDrift's PSI, the day-to-day excess as
// the baseline and excess + alert as the band's top, when both hold
// min_samples values.
func psiPoint(d *Detector, p *SeriesPoint, cur Hist, days []Hist, alert float64) {
	dr := histDrift(cur, days)
	var nBase float64
	for _, h := range days {
		nBase += h.Total()
	}
	p.N, p.BaselineN = cur.Total(), nBase
	if math.IsNaN(dr.psi) {
		return
	}
	p.Value = dr.psi
	if !d.enough(cur.Total()) || !d.enough(nBase) {
		return
	}
	p.Baseline, p.Low, p.High, p.HasBand = dr.excess, 0, dr.excess+alert, true
}

// scorePSISpec is block_rate's score PSI: production's valid decisions
// (n; the detector tests the score only where the block rate has
// min_samples), the shadow's (sn), and the score histograms of each role.
var scorePSISpec = seriesSpec{cols: []string{"n", "sn"}, hists: []string{"h", "sh"}, raw: scoreBuckets, rollup: scoreRollupBuckets, histPoint: scorePSIPoint}

// scoreBuckets counts per bucket and score bin each role's rows, as
// block_rate's level does (its _h, _sh), and the valid decisions.
func scoreBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	roleBuckets(d, q, p, slice, scoreBin("_score"), fmt.Sprintf("countIf(_role = 0 AND _dec < %[1]d) AS n, countIf(_role = 1 AND _dec < %[1]d) AS sn, countIf(_role = 0) AS h, countIf(_role = 1) AS sh", decInvalid))
}

// scoreRollupBuckets reads the rollup's score histograms per bucket and
// role, one row per bin (the valid decisions on the first bin's row).
func scoreRollupBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	s := newSource(d)
	main, _ := rollupTables(s.m)
	q.add("  SELECT _b, _bin, if(_i = 1 AND _r = 0, _nv, 0) AS n, if(_i = 1 AND _r = 1, _nv, 0) AS sn,\n")
	q.add("    if(_r = 0, _c, 0) AS h, if(_r = 1, _c, 0) AS sh\n  FROM (\n")
	q.add("    SELECT " + bucketExpr("minute", p.bucket) + " AS _b, role_code AS _r, countMerge(n) - sumMerge(bad_decisions) AS _nv, sumMapMerge(score_hist) AS _hm\n    FROM " + main.Quoted() + "\n   ")
	s.rollupFilter(q, p.ranges, "")
	q.add(" AND slice = ? AND value = ?", slice.col, slice.val)
	q.add("\n    GROUP BY _b, _r\n  )\n  ARRAY JOIN _hm.1 AS _bin, _hm.2 AS _c, arrayEnumerate(_hm.1) AS _i")
}

// scorePSIPoint is block_rate's score PSI at a point (blockRate.scorePSI
// over the windows' histograms), the shadow's score PSI as the second
// line where the shadow has min_samples decisions.
func scorePSIPoint(d *Detector, p *SeriesPoint, cur seriesWin, base []seriesWin, _ bool) {
	b := d.impl.(*blockRate)
	var nb, snb float64
	days, sdays := make([]Hist, len(base)), make([]Hist, len(base))
	for i, w := range base {
		nb += w.sums[0]
		snb += w.sums[1]
		days[i], sdays[i] = valid(w.hists[0]), valid(w.hists[1])
	}
	psiPoint(d, p, valid(cur.hists[0]), days, b.p.PSIAlert)
	if !d.enough(cur.sums[0]) || !d.enough(nb) {
		p.HasBand = false
		return
	}
	if b.src.m.Shadow.Mode != configs.ShadowNone && d.enough(cur.sums[1]) && d.enough(snb) {
		if sd := histDrift(valid(cur.hists[1]), sdays); !math.IsNaN(sd.psi) {
			p.Shadow, p.HasShadowVal = sd.psi, true
		}
	}
}

// featurePSISpec is feature_health's drift: the slice's rows (n; the
// detector tests a feature only where they reach min_samples) and the
// feature's value histogram (h; its nullBin the NULL and non-finite
// values, dropped before the PSI). Over the features rollup it has no
// series (not written yet): its chart comes from the evaluations.
var featurePSISpec = seriesSpec{cols: []string{"n"}, hists: []string{"h"}, feature: true, raw: featureHistBuckets, histPoint: featurePSIPoint}

// binSentinel is a bin no value has (bins are 15 bits, nullBin 65535):
// the row that carries a bucket's counts without a value.
const binSentinel = 65536

// featureHistBuckets array-joins the feature arrays as the detector does
// (featureHealth.columns): each row counts once (its first element), each
// element of the feature in its value's bin.
func featureHistBuckets(d *Detector, q *sqlText, p seriesPlan, slice sliceFilter) {
	f := d.impl.(*featureHealth)
	s := newSource(d)
	q.add(fmt.Sprintf("  SELECT %s AS _b, if(_f = ?, %s, %d) AS _bin, countIf(_i <= 1) AS n, countIf(_f = ?) AS h\n  FROM %s\n  LEFT ARRAY JOIN ",
		bucketExpr(s.ts(), p.bucket), bin("_v"), binSentinel, s.table), slice.feature, slice.feature)
	f.columns(q)
	q.add("\n ")
	s.prefilter(q, p.ranges, false)
	q.add(" AND (_i <= 1 OR _f = ?)", slice.feature)
	s.rawSliceFilter(q, slice)
	q.add("\n  GROUP BY _b, _bin")
}

// featurePSIPoint is the feature's PSI at a point (featureHealth.drift),
// where the slice's rows and the feature's finite values both reach
// min_samples now and in the baseline.
func featurePSIPoint(d *Detector, p *SeriesPoint, cur seriesWin, base []seriesWin, _ bool) {
	f := d.impl.(*featureHealth)
	var rows float64
	days := make([]Hist, len(base))
	for i, w := range base {
		rows += w.sums[0]
		days[i] = valid(w.hists[0])
	}
	psiPoint(d, p, valid(cur.hists[0]), days, f.p.PSIAlert)
	if !d.enough(cur.sums[0]) || !d.enough(rows) {
		p.HasBand = false
	}
}
