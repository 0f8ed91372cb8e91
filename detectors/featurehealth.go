package detectors

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// featureHealth watches each feature's null rate (a rise, an absolute
// ceiling, all values NULL), default-value fill, frozen (constant) values
// and the distribution of its non-null values. The first four are the
// feature pipeline breaking (infra); drift of healthy values is the world
// changing (population_shift, info) and is only reported when none of the
// pipeline checks explains it.
type featureHealth struct {
	d     *Detector
	src   source
	p     *configs.FeatureHealthParams
	names []string // features to watch; empty: every name in the data (arrays layout)
}

// Metrics of feature_health.
const (
	MetricNullRate    = "null_rate"
	MetricNullCeiling = "null_rate_max"
	MetricAllNull     = "all_null"
	MetricFillRate    = "fill_rate"
	MetricFrozen      = "frozen"
	MetricFeaturePSI  = "feature_psi"
)

// DetailAffectedMoved is the detail of a feature_pipeline finding that
// says whether production blocks the rows where the feature is broken
// differently from the rest (1) or not (0), measured in the same query;
// absent where it was not measured. Consolidation lets a broken feature
// explain product moves only when it moves decisions.
const DetailAffectedMoved = "affected_blocks_moved"

func newFeatureHealth(d *Detector) (kind, error) {
	p := d.cfg.FeatureHealth
	if p == nil || p.DefaultValue == nil {
		return nil, fmt.Errorf("feature_health parameters missing (load the config with configs.Load)")
	}
	f := &featureHealth{d: d, src: newSource(d), p: p, names: p.Features}
	if len(f.names) == 0 {
		f.names = d.model.Features.Names
	}
	if d.model.Features.Layout == configs.LayoutColumns && len(f.names) == 0 {
		return nil, fmt.Errorf("the columns feature layout needs feature names")
	}
	for _, n := range f.names {
		if n == "" {
			return nil, fmt.Errorf("empty feature name")
		}
	}
	return f, nil
}

// columns renders, in the per-row level, the feature arrays the next level
// array-joins: _names and _vals (values as Nullable(Float64)).
func (f *featureHealth) columns(q *sqlText) {
	fs := f.src.m.Features
	if fs.Layout == configs.LayoutColumns {
		vals := make([]string, 0, len(f.names))
		for _, n := range f.names {
			vals = append(vals, "toNullable(toFloat64("+store.MustIdent(n)+"))")
		}
		q.add("? AS _f, ["+strings.Join(vals, ", ")+"] AS _v, arrayEnumerate(?) AS _i", f.names, f.names)
		return
	}
	// A row whose value array is shorter or longer than its name array (a
	// logging bug) must not fail the whole query, as ARRAY JOIN of unequal
	// arrays does: a missing value counts as NULL, an extra one is dropped.
	names := store.MustIdent(fs.NamesColumn)
	q.add(names + " AS _f, arrayResize(" + store.MustIdent(fs.ValuesColumn) + ", length(" + names + "), CAST(NULL AS Nullable(Float64))) AS _v, arrayEnumerate(" + names + ") AS _i")
}

// filter keeps the listed features (arrays layout with a list), and the
// first element of every row, which counts the row.
func (f *featureHealth) filter(q *sqlText) {
	if f.src.m.Features.Layout == configs.LayoutArrays && len(f.names) > 0 {
		q.add(" AND (_i <= 1 OR has(?, _f))", f.names)
	}
}

// fill renders the default value of feature _f.
func (f *featureHealth) fill(q *sqlText) {
	if len(f.p.Defaults) == 0 {
		q.add("?", *f.p.DefaultValue)
		return
	}
	keys := make([]string, 0, len(f.p.Defaults))
	for k := range f.p.Defaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = f.p.Defaults[k]
	}
	q.add("transform(_f, ?, ?, ?)", keys, vals, *f.p.DefaultValue)
}

// featureCols are feature_health's result columns after sc, sv, feature, w.
// rows counts each row once, under the feature first in its arrays (the
// row's count is the sum over features); a row without features counts
// under the feature ”.
// blk counts blocked rows the way rows counts rows; nblk and fblk count
// the blocked rows among those where the feature is NULL or equals its
// default, so that a broken feature can be told apart from a coincident
// product move (DetailAffectedMoved).
var featureCols = []string{"rows", "nn", "fills", "mn", "mx", "bins", "cnts", "blk", "nblk", "fblk"}

// featureFold says which of featureCols add up (all but the extremes).
var featureFold = foldSpec{sums: []string{"rows", "nn", "fills", "blk", "nblk", "fblk"}, hists: [][2]string{{"bins", "cnts"}}}

// One aggregation over the table, after the feature ARRAY JOIN, groups
// elements by slice number and value, feature, window, bin and fill flag
// (so a Distributed table aggregates on its shards); the next collects
// the bins.
func (f *featureHealth) query(w windows) *sqlText {
	if f.d.cfg.Source == configs.SourceRollup {
		return f.rollupQuery(w)
	}
	s := f.src
	level := &sqlText{}
	level.add("      SELECT ")
	expand(level, s.sliceExprs(f.d.slices()))
	level.add(", _f AS feature, ")
	s.window(level, w)
	level.add(" AS w, " + bin("_v") + " AS _k, toUInt8(ifNull(_v = ")
	f.fill(level)
	level.add(", 0)) AS _fl,\n")
	level.add("        count() AS _c, sum(toUInt8(_i <= 1) AS _e1) AS _c1, min(ifNull(_v, 0) AS _x) AS _mn, max(_x) AS _mx, sum(_d) AS _cd, sum(_e1 * _d) AS _cd1\n")
	level.add("      FROM " + s.table + "\n      LEFT ARRAY JOIN ")
	f.columns(level)
	level.add("\n     ")
	s.prefilter(level, w.all(), false)
	f.filter(level)
	level.add("\n      GROUP BY _si, sv, feature, w, _k, _fl")
	inline(level, def("_d", "toUInt8(ifNull("+s.col(s.m.Columns.Decision)+" != 0, 0))"))
	inner := &sqlText{}
	inner.add("    SELECT ")
	sliceName(inner, f.d.slices())
	inner.add(", sv, feature, w, sum(_c1) AS rows, sumIf(_c, _k != 65535) AS nn, sumIf(_c, _fl = 1) AS fills,\n")
	inner.add("      minIf(_mn, _k != 65535) AS mn, maxIf(_mx, _k != 65535) AS mx,\n")
	inner.add("      groupArrayIf(_k, _k != 65535) AS bins, groupArrayIf(_c, _k != 65535) AS cnts,\n")
	inner.add("      sum(_cd1) AS blk, sumIf(_cd, _k = 65535) AS nblk, sumIf(_cd, _fl = 1) AS fblk\n")
	inner.add("    FROM (\n")
	inner.add(level.b.String(), level.args...)
	inner.err = level.err
	inner.add("\n    )\n    GROUP BY _si, sv, feature, w")
	q := &sqlText{}
	s.ranked(q, inner, true, featureCols, "rows")
	return q
}

func (f *featureHealth) evaluate(res *store.Result, r *run) error {
	groups, err := groupRows(res, "feature")
	if err != nil {
		return err
	}
	if groups, err = fold(res, groups, featureFold, f.d.cfg.TopK); err != nil {
		return err
	}
	c, err := cols(res, featureCols...)
	if err != nil {
		return err
	}
	rows, nn, fills, mn, mx, bins, cnts := c[0], c[1], c[2], c[3], c[4], c[5], c[6]
	blk, nblk, fblk := c[7], c[8], c[9]
	nb := len(r.w.base)
	// A slice's rows in a window: the sum of rows over its features; its
	// blocked rows in the current window likewise.
	counts := map[[2]string]map[int]float64{}
	blocked := map[[2]string]float64{}
	for _, g := range groups {
		k := [2]string{g.col, g.val}
		if counts[k] == nil {
			counts[k] = map[int]float64{}
		}
		for w := 0; w <= nb; w++ {
			counts[k][w] += g.num(w, rows)
		}
		blocked[k] += g.num(0, blk)
	}
	// affected sets DetailAffectedMoved on a pipeline hypothesis: whether
	// the x blocked of the n affected rows differ from the rest of the
	// window's rows (a rollup does not keep decisions: not measured).
	affected := func(h *hypothesis, g *group, x, n float64) {
		if f.d.cfg.Source == configs.SourceRollup {
			return
		}
		k := [2]string{g.col, g.val}
		moved, ok := f.decisionsMoved(Prop{x, n}, Prop{blocked[k] - x, counts[k][0] - n})
		if !ok {
			return
		}
		if h.details == nil {
			h.details = map[string]float64{}
		}
		h.details[DetailAffectedMoved] = moved
		h.details["affected_block_rate"] = x / n
		h.details["rest_block_rate"] = (blocked[k] - x) / (counts[k][0] - n)
	}
	listed := map[string]bool{}
	for _, n := range f.names {
		listed[n] = true
	}
	for _, g := range groups {
		if g.feature == "" || len(listed) > 0 && !listed[g.feature] {
			continue
		}
		rc := counts[[2]string{g.col, g.val}]
		slice := sliceOf(g.col, g.val)
		lbl := label(g.col, g.val)
		if g.col == "" {
			lbl = "all rows"
		}
		nCur, nBase := rc[0], 0.0
		for w := 1; w <= nb; w++ {
			nBase += rc[w]
		}
		vCur, vBase := g.num(0, nn), g.base(nb, nn)
		if !f.d.enough(nCur) || !f.d.enough(nBase) {
			r.skip(slice, g.feature)
			continue
		}
		curNull := Prop{nCur - vCur, nCur}
		baseNull := Prop{nBase - vBase, nBase}
		days := make([]Prop, nb)
		for w := 1; w <= nb; w++ {
			days[w-1] = Prop{rc[w] - g.num(w, nn), rc[w]}
		}
		var spread float64
		if r.w.seasonal {
			spread = SeasonalVar(days)
		}

		// All values NULL: the feature is missing.
		if vBase >= float64(f.d.cfg.MinSamples) {
			h := newHyp(MetricAllNull, slice, g.feature, ClassFeaturePipeline)
			q := (baseNull.X + 0.5) / (baseNull.N + 1)
			h.Value, h.Baseline = curNull.Rate(), baseNull.Rate()
			h.effect = h.Value - h.Baseline
			h.NCurrent, h.NBaseline = uint64(nCur), uint64(nBase)
			h.PValue = math.Exp(nCur * math.Log(q))
			h.gate = vCur == 0
			h.summary = fmt.Sprintf("feature %s is NULL in every row (%s rows; %s null in the baseline)", g.feature, count(nCur), pct(baseNull.Rate()))
			if g.col != "" {
				h.summary = lbl + ": " + h.summary
			}
			r.add(h)
		}

		// Null rate rise.
		h := newHyp(MetricNullRate, slice, g.feature, ClassFeaturePipeline)
		margin := f.d.margin(baseNull.Rate())
		h.PValue = ChangeTest(curNull, baseNull, Change{Margin: margin, Var: spread, Tail: TailUp})
		h.Value, h.Baseline = curNull.Rate(), baseNull.Rate()
		h.effect = h.Value - h.Baseline
		h.BaselineLow, h.BaselineHigh = 0, math.Min(1, h.Baseline+margin+2*math.Sqrt(spread+h.Baseline*(1-h.Baseline)/nCur))
		h.NCurrent, h.NBaseline = uint64(nCur), uint64(nBase)
		h.gate = h.effect >= margin
		h.summary = fmt.Sprintf("%s: feature %s null rate %s vs %s baseline (n=%s vs %s)", lbl, g.feature, pct(h.Value), pct(h.Baseline), count(nCur), count(nBase))
		h.details = details("seasonal_sd", math.Sqrt(spread), "margin", margin)
		affected(h, g, g.num(0, nblk), curNull.X)
		r.add(h)

		// Null rate above the ceiling (newly: a feature that is always
		// sparse is not broken).
		if curNull.Rate() > f.p.NullRateMax && baseNull.Rate() <= f.p.NullRateMax {
			h := newHyp(MetricNullCeiling, slice, g.feature, ClassFeaturePipeline)
			h.Value, h.Baseline, h.BaselineHigh = curNull.Rate(), f.p.NullRateMax, f.p.NullRateMax
			h.effect = h.Value - f.p.NullRateMax
			h.NCurrent, h.NBaseline = uint64(nCur), uint64(nBase)
			h.PValue = BinomSF(curNull.X, curNull.N, f.p.NullRateMax)
			h.gate = true
			h.summary = fmt.Sprintf("%s: feature %s null rate %s is above the ceiling %s (baseline %s, n=%s)", lbl, g.feature, pct(h.Value), pct(f.p.NullRateMax), pct(baseNull.Rate()), count(nCur))
			affected(h, g, g.num(0, nblk), curNull.X)
			r.add(h)
		}

		if !f.d.enough(vCur) || !f.d.enough(vBase) {
			continue
		}
		curH := g.hist(0, bins, cnts)
		dayH := make([]Hist, nb)
		baseH := Hist{}
		for w := 1; w <= nb; w++ {
			dayH[w-1] = g.hist(w, bins, cnts)
			baseH.Add(dayH[w-1])
		}

		// Default-value fill among non-null values.
		def := *f.p.DefaultValue
		if v, ok := f.p.Defaults[g.feature]; ok {
			def = v
		}
		curFill, baseFill := Prop{g.num(0, fills), vCur}, Prop{g.base(nb, fills), vBase}
		fdays := make([]Prop, nb)
		for w := 1; w <= nb; w++ {
			fdays[w-1] = Prop{g.num(w, fills), g.num(w, nn)}
		}
		fspread := 0.0
		if r.w.seasonal {
			fspread = SeasonalVar(fdays)
		}
		h = newHyp(MetricFillRate, slice, g.feature, ClassFeaturePipeline)
		margin = f.d.margin(baseFill.Rate())
		h.PValue = ChangeTest(curFill, baseFill, Change{Margin: margin, Var: fspread, Tail: TailUp})
		h.Value, h.Baseline = curFill.Rate(), baseFill.Rate()
		h.effect = h.Value - h.Baseline
		h.BaselineLow, h.BaselineHigh = 0, math.Min(1, h.Baseline+margin+2*math.Sqrt(fspread+h.Baseline*(1-h.Baseline)/vCur))
		h.NCurrent, h.NBaseline = uint64(vCur), uint64(vBase)
		h.gate = h.effect >= margin
		h.summary = fmt.Sprintf("%s: feature %s equals the default %s in %s of values vs %s baseline (n=%s vs %s)", lbl, g.feature, fnum(def), pct(h.Value), pct(h.Baseline), count(vCur), count(vBase))
		affected(h, g, g.num(0, fblk), curFill.X)
		r.add(h)

		// Frozen: one value now, several in the baseline. The p-value is
		// the chance that every current value lands in that value's
		// baseline bin.
		cmin, cmax := g.num(0, mn), g.num(0, mx)
		bmin, bmax := math.Inf(1), math.Inf(-1)
		for w := 1; w <= nb; w++ {
			if g.num(w, nn) > 0 {
				bmin, bmax = math.Min(bmin, g.num(w, mn)), math.Max(bmax, g.num(w, mx))
			}
		}
		// Extremes are not additive: the (other) slice has none.
		if g.has(0, mn) && cmin == cmax && bmin < bmax {
			share := baseH[math.Float64bits(cmin+0)>>49] / baseH.Total()
			h := newHyp(MetricFrozen, slice, g.feature, ClassFeaturePipeline)
			h.Value, h.Baseline = cmin, share
			h.NCurrent, h.NBaseline = uint64(vCur), uint64(vBase)
			h.PValue = math.Exp(vCur * math.Log(share))
			h.gate = true
			h.details = details("value", cmin, "baseline_share", share, "fill", def)
			h.summary = fmt.Sprintf("%s: feature %s is frozen at %s in all %s values (baseline: %s of values in its bin, range %s..%s)", lbl, g.feature, fnum(cmin), count(vCur), pct(share), fnum(bmin), fnum(bmax))
			r.add(h)
		}

		// Drift of the non-null values.
		if f.p.Drift != nil && *f.p.Drift {
			dr := histDrift(curH, dayH)
			if !math.IsNaN(dr.psi) {
				h := newHyp(MetricFeaturePSI, slice, g.feature, ClassPopulationShift)
				h.Value, h.Baseline, h.PValue = dr.psi, dr.excess, dr.p
				h.BaselineLow, h.BaselineHigh = 0, dr.excess+f.p.PSIAlert
				h.effect = dr.psi - dr.excess
				h.NCurrent, h.NBaseline = uint64(vCur), uint64(vBase)
				h.gate = h.effect >= f.p.PSIAlert
				h.details = details("js", dr.js, "day_to_day_psi", dr.excess)
				h.summary = fmt.Sprintf("%s: feature %s distribution PSI %s (JS %s, day-to-day %s) over %d baseline decile bins (n=%s vs %s)", lbl, g.feature, fnum(dr.psi), fnum(dr.js), fnum(dr.excess), dr.bins, count(vCur), count(vBase))
				r.add(h)
			}
		}
	}
	r.suppress = suppressFeatures
	return nil
}

// suppressFeatures reports each broken feature once: all-NULL explains
// everything else; a null-rate rise explains crossing the ceiling; a fill
// explains freezing at the default; any pipeline failure explains drift.
func suppressFeatures(hyps []*hypothesis) {
	type key struct{ slice, feature string }
	firing := map[key]map[string]*hypothesis{}
	for _, h := range hyps {
		if h.Firing {
			k := key{SliceKey(h.Slice), h.Feature}
			if firing[k] == nil {
				firing[k] = map[string]*hypothesis{}
			}
			firing[k][h.Metric] = h
		}
	}
	for _, m := range firing {
		clear := func(metrics ...string) {
			for _, x := range metrics {
				if h := m[x]; h != nil {
					h.Firing = false
				}
			}
		}
		if m[MetricAllNull] != nil {
			clear(MetricNullRate, MetricNullCeiling, MetricFillRate, MetricFrozen, MetricFeaturePSI)
			continue
		}
		if m[MetricNullRate] != nil {
			clear(MetricNullCeiling)
		}
		if fr, fz := m[MetricFillRate], m[MetricFrozen]; fr != nil && fz != nil && fz.details["value"] == fz.details["fill"] {
			clear(MetricFrozen)
		}
		if m[MetricNullRate] != nil || m[MetricNullCeiling] != nil || m[MetricFillRate] != nil || m[MetricFrozen] != nil {
			clear(MetricFeaturePSI)
		}
	}
}

// decisionsMoved says whether production blocks the affected rows (a
// feature NULL or at its default) differently from the rest of the same
// window: a two-proportion z-test at |z| > 3.29 (p < 0.001) and a
// difference beyond the detector's effect-size gate. ok is false when
// either side has fewer than min_samples rows (nothing to tell).
func (f *featureHealth) decisionsMoved(aff, rest Prop) (moved float64, ok bool) {
	if !f.d.enough(aff.N) || !f.d.enough(rest.N) {
		return 0, false
	}
	pa, pr := aff.Rate(), rest.Rate()
	pool := (aff.X + rest.X) / (aff.N + rest.N)
	se := math.Sqrt(pool * (1 - pool) * (1/aff.N + 1/rest.N))
	if se > 0 && math.Abs(pa-pr)/se > 3.29 && math.Abs(pa-pr) >= f.d.margin(pr) {
		return 1, true
	}
	return 0, true
}

func (f *featureHealth) spans(w windows) []span { return w.all() }
