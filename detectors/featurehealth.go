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
	base[configs.FeatureHealthParams]
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
	b, err := newBase(d, configs.KindFeatureHealth, d.cfg.FeatureHealth)
	if err != nil || b.p.DefaultValue == nil {
		return nil, fmt.Errorf("feature_health parameters missing (load the config with configs.Load)")
	}
	f := &featureHealth{base: b, names: b.p.Features}
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
	return s.rankedLevel(level, f.d.slices(), true, "sum(_c1) AS rows, sumIf(_c, _k != 65535) AS nn, sumIf(_c, _fl = 1) AS fills,\n"+
		"      minIf(_mn, _k != 65535) AS mn, maxIf(_mx, _k != 65535) AS mx,\n"+
		"      groupArrayIf(_k, _k != 65535) AS bins, groupArrayIf(_c, _k != 65535) AS cnts,\n"+
		"      sum(_cd1) AS blk, sumIf(_cd, _k = 65535) AS nblk, sumIf(_cd, _fl = 1) AS fblk", featureCols, "rows")
}

// rollupQuery is feature_health's query over the features rollup
// (aggregate only): the pseudo-feature ” carries the row count.
func (f *featureHealth) rollupQuery(w windows) *sqlText {
	s := f.src
	_, feats := rollupTables(s.m)
	q := &sqlText{}
	q.add("SELECT '' AS sc, '' AS sv, feature, w, if(feature = '', _rows, 0) AS rows, nn, if(feature = '', 0, zeros) AS fills,\n")
	q.add("  if(nn > 0, vmin, NULL) AS mn, if(nn > 0, vmax, NULL) AS mx, _h.1 AS bins, _h.2 AS cnts,\n")
	// The rollup keeps no decisions: blocked rows are not measured.
	q.add("  toUInt64(0) AS blk, toUInt64(0) AS nblk, toUInt64(0) AS fblk\nFROM (\n  SELECT ")
	s.rollupWindow(q, w)
	q.add(" AS w, feature, countMerge(n) AS _rows, sumMerge(nn) AS nn, sumMerge(zeros) AS zeros,\n")
	q.add("    minMerge(vmin) AS vmin, maxMerge(vmax) AS vmax, sumMapMerge(hist) AS _h\n  FROM " + feats.Quoted() + "\n ")
	s.rollupFilter(q, w.all(), "")
	if s.m.Features.Layout == configs.LayoutArrays && len(f.names) > 0 {
		q.add(" AND has(?, feature)", append([]string{""}, f.names...))
	}
	q.add("\n  GROUP BY w, feature\n)\nORDER BY sc, sv, feature, w")
	return q
}

// featureRows are feature_health's result columns and each slice's rows
// (summed over its features) per window, and its blocked rows now.
type featureRows struct {
	rows, nn, fills, mn, mx, bins, cnts, blk, nblk, fblk col
	nb                                                   int
	counts                                               map[[2]string]map[int]float64
	blocked                                              map[[2]string]float64
}

// featureSlice is one feature in one slice: its rows now and in the
// baseline, its non-null values, and its null rates.
type featureSlice struct {
	g                        *group
	slice                    map[string]string
	lbl                      string
	nCur, nBase, vCur, vBase float64
	curNull, baseNull        Prop
	spread                   float64 // seasonal variance of the null rate
}

// evaluate tests each watched feature in each slice, one method per
// hypothesis, in a fixed order: all NULL, null-rate rise, null rate over
// the ceiling; then, with enough non-null values, default fill, frozen
// values and drift. suppressFeatures then keeps one report per break.
func (f *featureHealth) evaluate(res *store.Result, r *run) error {
	groups, fr, err := f.read(res, r)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, n := range f.names {
		listed[n] = true
	}
	for _, g := range groups {
		if g.feature == "" || len(listed) > 0 && !listed[g.feature] {
			continue
		}
		fs := f.sliceOf(fr, g, r.w.seasonal)
		if !f.d.enough(fs.nCur) || !f.d.enough(fs.nBase) {
			r.skip(fs.slice, g.feature)
			continue
		}
		f.allNull(r, fs)
		f.nullRate(r, fr, fs)
		f.nullCeiling(r, fr, fs)
		if !f.d.enough(fs.vCur) || !f.d.enough(fs.vBase) {
			continue
		}
		f.fillRate(r, fr, fs)
		f.frozen(r, fr, fs)
		f.drift(r, fr, fs)
	}
	r.suppress = suppressFeatures
	return nil
}

// read folds the result's rows into groups and sums each slice's rows.
func (f *featureHealth) read(res *store.Result, r *run) ([]*group, *featureRows, error) {
	groups, c, err := readGroups(res, "feature", featureFold, f.d.cfg.TopK, featureCols...)
	if err != nil {
		return nil, nil, err
	}
	fr := &featureRows{
		rows: c[0], nn: c[1], fills: c[2], mn: c[3], mx: c[4], bins: c[5], cnts: c[6], blk: c[7], nblk: c[8], fblk: c[9],
		nb: len(r.w.base), counts: map[[2]string]map[int]float64{}, blocked: map[[2]string]float64{},
	}
	// A slice's rows in a window: the sum of rows over its features; its
	// blocked rows in the current window likewise.
	for _, g := range groups {
		k := [2]string{g.col, g.val}
		if fr.counts[k] == nil {
			fr.counts[k] = map[int]float64{}
		}
		for w := 0; w <= fr.nb; w++ {
			fr.counts[k][w] += g.num(w, fr.rows)
		}
		fr.blocked[k] += g.num(0, fr.blk)
	}
	return groups, fr, nil
}

// sliceOf gathers one group's counts.
func (f *featureHealth) sliceOf(fr *featureRows, g *group, seasonal bool) *featureSlice {
	rc := fr.counts[[2]string{g.col, g.val}]
	fs := &featureSlice{g: g, slice: sliceOf(g.col, g.val), lbl: label(g.col, g.val), nCur: rc[0]}
	if g.col == "" {
		fs.lbl = "all rows"
	}
	for w := 1; w <= fr.nb; w++ {
		fs.nBase += rc[w]
	}
	fs.vCur, fs.vBase = g.num(0, fr.nn), g.base(fr.nb, fr.nn)
	fs.curNull = Prop{fs.nCur - fs.vCur, fs.nCur}
	fs.baseNull = Prop{fs.nBase - fs.vBase, fs.nBase}
	if seasonal {
		days := make([]Prop, fr.nb)
		for w := 1; w <= fr.nb; w++ {
			days[w-1] = Prop{rc[w] - g.num(w, fr.nn), rc[w]}
		}
		fs.spread = SeasonalVar(days)
	}
	return fs
}

// affected sets DetailAffectedMoved on a pipeline hypothesis: whether
// the x blocked of the n affected rows differ from the rest of the
// window's rows (a rollup does not keep decisions: not measured).
func (f *featureHealth) affected(h *hypothesis, fr *featureRows, g *group, x, n float64) {
	if f.d.cfg.Source == configs.SourceRollup {
		return
	}
	k := [2]string{g.col, g.val}
	blocked, rows := fr.blocked[k], fr.counts[k][0]
	moved, ok := f.decisionsMoved(Prop{x, n}, Prop{blocked - x, rows - n})
	if !ok {
		return
	}
	if h.details == nil {
		h.details = map[string]float64{}
	}
	h.details[DetailAffectedMoved] = moved
	h.details["affected_block_rate"] = x / n
	h.details["rest_block_rate"] = (blocked - x) / (rows - n)
}

// allNull: every value NULL, the feature is missing.
func (f *featureHealth) allNull(r *run, fs *featureSlice) {
	if fs.vBase < float64(f.d.cfg.MinSamples) {
		return
	}
	g := fs.g
	h := newHyp(MetricAllNull, fs.slice, g.feature, ClassFeaturePipeline)
	q := (fs.baseNull.X + 0.5) / (fs.baseNull.N + 1)
	h.Value, h.Baseline = fs.curNull.Rate(), fs.baseNull.Rate()
	h.effect = h.Value - h.Baseline
	h.NCurrent, h.NBaseline = uint64(fs.nCur), uint64(fs.nBase)
	h.PValue = math.Exp(fs.nCur * math.Log(q))
	h.gate = fs.vCur == 0
	h.summary = fmt.Sprintf("feature %s is NULL in every row (%s rows; %s null in the baseline)", g.feature, count(fs.nCur), pct(fs.baseNull.Rate()))
	if g.col != "" {
		h.summary = fs.lbl + ": " + h.summary
	}
	r.add(h)
}

// nullRate: the null rate rose.
func (f *featureHealth) nullRate(r *run, fr *featureRows, fs *featureSlice) {
	g := fs.g
	h, margin := f.d.rateChange(MetricNullRate, fs.slice, g.feature, ClassFeaturePipeline, fs.curNull, fs.baseNull, fs.spread, TailUp)
	h.summary = fmt.Sprintf("%s: feature %s null rate %s vs %s baseline (n=%s vs %s)", fs.lbl, g.feature, pct(h.Value), pct(h.Baseline), count(fs.nCur), count(fs.nBase))
	h.details = details("seasonal_sd", math.Sqrt(fs.spread), "margin", margin)
	f.affected(h, fr, g, g.num(0, fr.nblk), fs.curNull.X)
	r.add(h)
}

// nullCeiling: the null rate is above the ceiling, newly (a feature that
// is always sparse is not broken).
func (f *featureHealth) nullCeiling(r *run, fr *featureRows, fs *featureSlice) {
	ceil := f.p.NullRateMax
	if !(fs.curNull.Rate() > ceil && fs.baseNull.Rate() <= ceil) {
		return
	}
	g := fs.g
	h := newHyp(MetricNullCeiling, fs.slice, g.feature, ClassFeaturePipeline)
	h.Value, h.Baseline, h.BaselineHigh = fs.curNull.Rate(), ceil, ceil
	h.effect = h.Value - ceil
	h.NCurrent, h.NBaseline = uint64(fs.nCur), uint64(fs.nBase)
	h.PValue = BinomSF(fs.curNull.X, fs.curNull.N, ceil)
	h.gate = true
	h.summary = fmt.Sprintf("%s: feature %s null rate %s is above the ceiling %s (baseline %s, n=%s)", fs.lbl, g.feature, pct(h.Value), pct(ceil), pct(fs.baseNull.Rate()), count(fs.nCur))
	f.affected(h, fr, g, g.num(0, fr.nblk), fs.curNull.X)
	r.add(h)
}

// defaultOf is the default value of a feature.
func (f *featureHealth) defaultOf(feature string) float64 {
	if v, ok := f.p.Defaults[feature]; ok {
		return v
	}
	return *f.p.DefaultValue
}

// fillRate: more non-null values equal the feature's default.
func (f *featureHealth) fillRate(r *run, fr *featureRows, fs *featureSlice) {
	g := fs.g
	curFill, baseFill := Prop{g.num(0, fr.fills), fs.vCur}, Prop{g.base(fr.nb, fr.fills), fs.vBase}
	spread := 0.0
	if r.w.seasonal {
		days := make([]Prop, fr.nb)
		for w := 1; w <= fr.nb; w++ {
			days[w-1] = Prop{g.num(w, fr.fills), g.num(w, fr.nn)}
		}
		spread = SeasonalVar(days)
	}
	h, _ := f.d.rateChange(MetricFillRate, fs.slice, g.feature, ClassFeaturePipeline, curFill, baseFill, spread, TailUp)
	h.summary = fmt.Sprintf("%s: feature %s equals the default %s in %s of values vs %s baseline (n=%s vs %s)", fs.lbl, g.feature, fnum(f.defaultOf(g.feature)), pct(h.Value), pct(h.Baseline), count(fs.vCur), count(fs.vBase))
	f.affected(h, fr, g, g.num(0, fr.fblk), curFill.X)
	r.add(h)
}

// frozen: one value now, several in the baseline. The p-value is the
// chance that every current value lands in that value's baseline bin.
func (f *featureHealth) frozen(r *run, fr *featureRows, fs *featureSlice) {
	g := fs.g
	cmin, cmax := g.num(0, fr.mn), g.num(0, fr.mx)
	bmin, bmax := math.Inf(1), math.Inf(-1)
	for w := 1; w <= fr.nb; w++ {
		if g.num(w, fr.nn) > 0 {
			bmin, bmax = math.Min(bmin, g.num(w, fr.mn)), math.Max(bmax, g.num(w, fr.mx))
		}
	}
	// Extremes are not additive: the (other) slice has none.
	if !(g.has(0, fr.mn) && cmin == cmax && bmin < bmax) {
		return
	}
	baseH := Hist{}
	for w := 1; w <= fr.nb; w++ {
		baseH.Add(g.hist(w, fr.bins, fr.cnts))
	}
	share := baseH[math.Float64bits(cmin+0)>>49] / baseH.Total()
	h := newHyp(MetricFrozen, fs.slice, g.feature, ClassFeaturePipeline)
	h.Value, h.Baseline = cmin, share
	h.NCurrent, h.NBaseline = uint64(fs.vCur), uint64(fs.vBase)
	h.PValue = math.Exp(fs.vCur * math.Log(share))
	h.gate = true
	h.details = details("value", cmin, "baseline_share", share, "fill", f.defaultOf(g.feature))
	h.summary = fmt.Sprintf("%s: feature %s is frozen at %s in all %s values (baseline: %s of values in its bin, range %s..%s)", fs.lbl, g.feature, fnum(cmin), count(fs.vCur), pct(share), fnum(bmin), fnum(bmax))
	r.add(h)
}

// drift: the distribution of the non-null values moved (the world
// changing, not the pipeline breaking).
func (f *featureHealth) drift(r *run, fr *featureRows, fs *featureSlice) {
	if f.p.Drift == nil || !*f.p.Drift {
		return
	}
	g := fs.g
	dayH := make([]Hist, fr.nb)
	for w := 1; w <= fr.nb; w++ {
		dayH[w-1] = g.hist(w, fr.bins, fr.cnts)
	}
	dr := histDrift(g.hist(0, fr.bins, fr.cnts), dayH)
	if math.IsNaN(dr.psi) {
		return
	}
	h := newHyp(MetricFeaturePSI, fs.slice, g.feature, ClassPopulationShift)
	h.Value, h.Baseline, h.PValue = dr.psi, dr.excess, dr.p
	h.BaselineLow, h.BaselineHigh = 0, dr.excess+f.p.PSIAlert
	h.effect = dr.psi - dr.excess
	h.NCurrent, h.NBaseline = uint64(fs.vCur), uint64(fs.vBase)
	h.gate = h.effect >= f.p.PSIAlert
	h.details = details("js", dr.js, "day_to_day_psi", dr.excess)
	h.summary = fmt.Sprintf("%s: feature %s distribution PSI %s (JS %s, day-to-day %s) over %d baseline decile bins (n=%s vs %s)", fs.lbl, g.feature, fnum(dr.psi), fnum(dr.js), fnum(dr.excess), dr.bins, count(fs.vCur), count(fs.vBase))
	r.add(h)
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
