package detectors

import (
	"fmt"
	"math"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// blockRate watches the decision (block) rate of the aggregate and every
// slice, the score distribution (PSI) and absolute bounds. With shadow
// data the shadow model is the control: a move the shadow shares is the
// world changing (population_shift), one it does not is the model
// (model_behavior).
type blockRate struct{ base[configs.BlockRateParams] }

func newBlockRate(d *Detector) (kind, error) {
	return newKind(d, configs.KindBlockRate, d.cfg.BlockRate, func(b base[configs.BlockRateParams]) kind { return &blockRate{b} })
}

// Metrics of block_rate.
const (
	MetricBlockRate    = "block_rate"
	MetricScorePSI     = "score_psi"
	MetricRateBound    = "block_rate_bound"
	MetricBlockedBound = "blocked_count_bound"
)

// roleExprs are the expressions of the role (0 production, 1 shadow), the
// decision code (see decision) and the score for the rows and none shadow
// modes; q receives the role's bound value.
func (s source) roleExprs(q *sqlText) (role, dec, score string) {
	c := s.m.Columns
	dec = decision(s.col(c.Decision))
	if s.m.Shadow.Mode == configs.ShadowRows {
		q.args = append(q.args, s.m.Shadow.ProductionRole)
		return "if(" + s.col(c.Role) + " = ?, 0, 1)", dec, s.col(c.Score)
	}
	return "0", dec, s.col(c.Score)
}

// decision renders the decision code of expression e: 0 passed, 1
// blocked, decInvalid for anything else (NULL, NaN, 2, 255): logging gone
// wrong, which is neither a block nor a pass, so it stays out of the rates
// and is counted on its own.
func decision(e string) string {
	return fmt.Sprintf("toUInt8(if(ifNull(%[1]s = 1, 0), 1, if(ifNull(%[1]s = 0, 0), 0, %[2]d)))", e, decInvalid)
}

// decInvalid is the decision code of a value other than 0 and 1.
const decInvalid = 2

// scoreBin renders the histogram bin of a score, nullBin for a score that
// is not a probability (NULL, NaN, ±Inf, below 0 or above 1): such rows
// stay out of the score distribution and are counted as invalid scores.
func scoreBin(e string) string {
	return fmt.Sprintf("if(ifNull(toFloat64(%[1]s) >= 0 AND toFloat64(%[1]s) <= 1, 0), %[2]s, %[3]d)", e, bin(e), nullBin)
}

// roles returns, for the model's shadow mode, the per-row values _role
// (0 production, 1 shadow, 2 none), _dec (see decision) and _score, and
// _r, the arrayJoin of the two roles of a row in the columns mode ('p',
// 's').
func (s source) roles() []rowDef {
	c := s.m.Columns
	switch s.m.Shadow.Mode {
	case configs.ShadowRows:
		return []rowDef{
			def("_role", "if("+s.col(c.Role)+" = ?, 0, 1)", s.m.Shadow.ProductionRole),
			def("_dec", decision(s.col(c.Decision))),
			def("_score", s.col(c.Score)),
		}
	case configs.ShadowColumns:
		sd, ss := s.col(s.m.Shadow.DecisionColumn), s.col(s.m.Shadow.ScoreColumn)
		return []rowDef{
			def("_role", "if(_r = 'p', 0, if(isNull("+sd+"), 2, 1))"),
			def("_dec", decision("if(_r = 'p', "+s.col(c.Decision)+", "+sd+")")),
			def("_score", "if(_r = 'p', toFloat64("+s.col(c.Score)+"), toFloat64("+ss+"))"),
			// Not [0, 1]: 26.x takes equal arrayJoins at one level as
			// one, and the slices' arrayJoin(range(2)) is [0, 1].
			def("_r", "arrayJoin(['p', 's'])"),
		}
	default:
		return []rowDef{
			def("_role", "0"),
			def("_dec", decision(s.col(c.Decision))),
			def("_score", s.col(c.Score)),
		}
	}
}

// blockRateCols are block_rate's result columns after sc, sv, w: rows
// with a valid decision (n production, sn shadow) and blocked among them
// (x, sx), the score histograms of all rows (bins, bn; sbins, bsn) whose
// nullBin counts the invalid scores, and the rows with an invalid
// decision (bd, sbd).
var blockRateCols = []string{"n", "x", "sn", "sx", "bins", "bn", "sbins", "bsn", "bd", "sbd"}

// blockRateFold says which of blockRateCols add up (all of them).
var blockRateFold = foldSpec{sums: []string{"n", "x", "sn", "sx", "bd", "sbd"}, hists: [][2]string{{"bins", "bn"}, {"sbins", "bsn"}}}

// One aggregation over the table counts rows per slice, window and score
// bin (the slice arrayJoin numbers slices, see expand); the next collects
// the bins.
func (b *blockRate) query(w windows) *sqlText {
	return b.outer(b.level(b.src.windowOf(w), w.all(), false))
}

// level is block_rate's aggregation over the rows of spans: per slice
// number _si, value sv, w (rendered by win) and score bin _bin (and role
// _r in the columns shadow mode), the counts _n, _x, _h, _sn, _sx, _sh,
// and with rows the level's rows per group, _rows.
func (b *blockRate) level(win func(*sqlText), spans []span, rows bool) *sqlText {
	s := b.src
	level := &sqlText{}
	level.add("      SELECT ")
	keys := "_si, sv, w, _bin"
	if s.m.Shadow.Mode == configs.ShadowColumns {
		// The row's two roles are a key of their own (defined here).
		level.add("_r, ")
		keys += ", _r"
	}
	expand(level, s.sliceExprs(b.d.slices()))
	level.add(", ")
	win(level)
	level.add(" AS w, " + scoreBin("_score") + " AS _bin,\n")
	level.add(fmt.Sprintf("        countIf(_role = 0 AND _dec < %d) AS _n, countIf(_role = 0 AND _dec = 1) AS _x, countIf(_role = 0) AS _h,\n", decInvalid))
	level.add(fmt.Sprintf("        countIf(_role = 1 AND _dec < %d) AS _sn, countIf(_role = 1 AND _dec = 1) AS _sx, countIf(_role = 1) AS _sh", decInvalid))
	if rows {
		level.add(", count() AS _rows")
	}
	level.add("\n")
	level.add("      FROM " + s.table + "\n     ")
	s.filter(level, spans, true)
	level.add("\n      GROUP BY " + keys)
	inline(level, s.roles()...)
	return level
}

// outer sums level's rows per slice and window, collects the score bins
// and keeps the top K.
func (b *blockRate) outer(level *sqlText) *sqlText {
	return b.src.rankedLevel(level, b.d.slices(), false, "sum(_n) AS n, sum(_x) AS x, sum(_sn) AS sn, sum(_sx) AS sx,\n"+
		"      groupArrayIf(_bin, _h > 0) AS bins, groupArrayIf(_h, _h > 0) AS bn,\n"+
		"      groupArrayIf(_bin, _sh > 0) AS sbins, groupArrayIf(_sh, _sh > 0) AS bsn,\n"+
		"      sum(_h) - sum(_n) AS bd, sum(_sh) - sum(_sn) AS sbd", blockRateCols, b.rank())
}

// partial is block_rate's query in partial form (incremental.go).
func (b *blockRate) partial() partialSpec {
	keys := []pcol{{"_si", "UInt8"}, {"sv", "String"}}
	counted := "_si = 0"
	if b.src.m.Shadow.Mode == configs.ShadowColumns {
		// Each row is expanded into its two roles: count one.
		keys = append(keys, pcol{"_r", "String"})
		counted += " AND _r = 'p'"
	}
	return partialSpec{
		keys:     keys,
		sub:      "_bin",
		counted:  counted,
		sums:     []string{"_n", "_x", "_h", "_sn", "_sx", "_sh"},
		allRoles: true,
		level:    b.level,
		outer:    b.outer,
	}
}

// rollupQuery is block_rate's query over the rollup: states merged per
// window, role and slice value, then the roles side by side, ranked as in
// the raw query, with the same result columns.
func (b *blockRate) rollupQuery(w windows) *sqlText {
	s := b.src
	main, _ := rollupTables(s.m)
	inner := &sqlText{}
	inner.add("    SELECT sc, sv, w, n, x, sn, sx, _hp.1 AS bins, _hp.2 AS bn, _hs.1 AS sbins, _hs.2 AS bsn, bd, sbd\n    FROM (\n")
	inner.add("      SELECT sc, sv, w, sumIf(_n - _bd, _r = 0) AS n, sumIf(_x, _r = 0) AS x, sumIf(_n - _bd, _r = 1) AS sn, sumIf(_x, _r = 1) AS sx,\n")
	inner.add("        sumIf(_bd, _r = 0) AS bd, sumIf(_bd, _r = 1) AS sbd,\n")
	inner.add("        sumMapIf(_h.1, _h.2, _r = 0) AS _hp, sumMapIf(_h.1, _h.2, _r = 1) AS _hs\n      FROM (\n        SELECT ")
	s.rollupWindow(inner, w)
	inner.add(" AS w, role_code AS _r, slice AS sc, value AS sv, countMerge(n) AS _n, sumMerge(blocked) AS _x, sumMerge(bad_decisions) AS _bd, sumMapMerge(score_hist) AS _h\n        FROM " + main.Quoted() + "\n       ")
	s.rollupFilter(inner, w.all(), "")
	inner.add(" AND has(?, slice)", append([]string{""}, b.d.slices()...))
	inner.add("\n        GROUP BY w, _r, sc, sv\n      )\n      GROUP BY sc, sv, w\n    )")
	return s.ranked(inner, false, blockRateCols, b.rank())
}

// rank is what slice values rank by: the table's rows, valid or not
// (shadow rows count in the rows mode).
func (b *blockRate) rank() string {
	if b.src.m.Shadow.Mode == configs.ShadowRows {
		return "n + bd + sn + sbd"
	}
	return "n + bd"
}

func (b *blockRate) evaluate(res *store.Result, r *run) error {
	groups, c, err := readGroups(res, "", blockRateFold, b.d.cfg.TopK, blockRateCols...)
	if err != nil {
		return err
	}
	n, x, sn, sx, bins, bn, sbins, bsn := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
	bd, sbd := c[8], c[9]
	nb := len(r.w.base)
	hasShadow := b.src.m.Shadow.Mode != configs.ShadowNone
	sawAggregate := false
	// Data validity on the aggregate (validity.go): every row, both roles.
	rows := func(g *group, w int) float64 { return g.num(w, n) + g.num(w, bd) + g.num(w, sn) + g.num(w, sbd) }
	checks := []validity{
		{MetricInvalidDecision, "have a decision outside {0, 1}",
			func(g *group, w int) float64 { return g.num(w, bd) + g.num(w, sbd) }, rows},
		{MetricInvalidScore, "have a score that is NULL, NaN, infinite or outside [0, 1]",
			func(g *group, w int) float64 { return g.nulls(w, bins, bn) + g.nulls(w, sbins, bsn) }, rows},
	}
	if !b.d.validity {
		checks = nil
	}
	for _, g := range groups {
		if g.col == "" {
			for _, v := range checks {
				v.check(r, g, groups)
			}
		}
	}
	var pool DaySpread
	if r.w.seasonal && b.d.cfg.Baseline.Mode == configs.BaselineReference {
		// A reference baseline's day-to-day spread, pooled over the
		// aggregate and every slice (see SeasonalVarPooled): it decides
		// with as few as 3 days. The seasonal baseline keeps each
		// slice's own: a chart (series.go) replays one slice and must
		// draw the band the detector decides with.
		all := make([][]Prop, len(groups))
		for i, g := range groups {
			all[i] = g.days(nb, x, n)
		}
		pool = PoolDaySpread(all)
	}
	for _, g := range groups {
		slice := sliceOf(g.col, g.val)
		cur := Prop{g.num(0, x), g.num(0, n)}
		base := Prop{g.base(nb, x), g.base(nb, n)}
		scur := Prop{g.num(0, sx), g.num(0, sn)}
		sbase := Prop{g.base(nb, sx), g.base(nb, sn)}
		if g.col == "" {
			sawAggregate = true
			b.bounds(r, cur)
		}
		if !b.d.enough(cur.N) || !b.d.enough(base.N) {
			r.skip(slice, "")
			r.addThin(MetricBlockRate, g, cur, base)
			continue
		}
		shadowOK := hasShadow && b.d.enough(scur.N) && b.d.enough(sbase.N)

		// Block rate.
		var spread float64
		if r.w.seasonal {
			spread = SeasonalVarPooled(g.days(nb, x, n), pool)
		}
		h, margin := b.d.rateChange(MetricBlockRate, slice, "", ClassModelBehavior, cur, base, spread, TailBoth)
		pb := h.Baseline
		shadowNote := ", production only; no shadow data"
		if shadowOK {
			if h.shadowMoved(scur, sbase, b.p.ShadowShare) {
				shadowNote = fmt.Sprintf("; shadow moved too: %s vs %s", pct(scur.Rate()), pct(sbase.Rate()))
			} else {
				shadowNote = fmt.Sprintf(", production only; shadow %s", pct(scur.Rate()))
			}
		}
		h.summary = fmt.Sprintf("%s block rate %s vs %s baseline (n=%s vs %s)%s",
			label(g.col, g.val), pct(cur.Rate()), pct(pb), count(cur.N), count(base.N), shadowNote)
		h.details = details("seasonal_sd", math.Sqrt(spread), "margin", margin)
		r.add(h)

		// Score distribution.
		if b.p.ScorePSI == nil || !*b.p.ScorePSI {
			continue
		}
		b.scorePSI(r, g, slice, nb, bins, bn, sbins, bsn, shadowOK)
	}
	if !sawAggregate {
		// An empty current and baseline still checks the count bounds.
		b.bounds(r, Prop{})
	}
	return nil
}

// rateChange is the hypothesis that a rate moved from base to cur, as
// block_rate and feature_health test it: the change test at the
// detector's margin with the seasonal spread, the baseline's band, and
// the effect-size gate. TailUp tests a rise only (the band's floor is 0).
// It returns the margin too, which summaries and details show.
func (d *Detector) rateChange(metric string, slice map[string]string, feature string, class Class, cur, base Prop, spread float64, tail Tail) (*hypothesis, float64) {
	h := newHyp(metric, slice, feature, class)
	pb := base.Rate()
	margin := d.margin(pb)
	h.PValue = ChangeTest(cur, base, Change{Margin: margin, Var: spread, Tail: tail})
	h.Value, h.Baseline, h.effect = cur.Rate(), pb, cur.Rate()-pb
	h.NCurrent, h.NBaseline, h.spread = uint64(cur.N), uint64(base.N), spread
	sd := 2 * math.Sqrt(spread+pb*(1-pb)/cur.N)
	if tail == TailUp {
		h.BaselineLow, h.BaselineHigh = 0, math.Min(1, pb+margin+sd)
		h.gate = h.effect >= margin
		return h, margin
	}
	band := margin + sd
	h.BaselineLow, h.BaselineHigh = math.Max(0, pb-band), math.Min(1, pb+band)
	h.gate = math.Abs(h.effect) >= margin
	return h, margin
}

func (b *blockRate) scorePSI(r *run, g *group, slice map[string]string, nb int, bins, bn, sbins, bsn col, shadowOK bool) {
	cur := g.hist(0, bins, bn)
	days := make([]Hist, nb)
	for w := 1; w <= nb; w++ {
		days[w-1] = g.hist(w, bins, bn)
	}
	dr := histDrift(cur, days)
	if math.IsNaN(dr.psi) {
		return
	}
	var nBase float64
	for _, d := range days {
		nBase += d.Total()
	}
	if !b.d.enough(cur.Total()) || !b.d.enough(nBase) {
		r.skip(slice, "")
		return
	}
	h := newHyp(MetricScorePSI, slice, "", ClassModelBehavior)
	h.Value, h.Baseline, h.PValue = dr.psi, dr.excess, dr.p
	h.BaselineLow, h.BaselineHigh = 0, dr.excess+b.p.PSIAlert
	h.effect = dr.psi - dr.excess
	h.NCurrent, h.NBaseline = uint64(cur.Total()), uint64(nBase)
	h.gate = h.effect >= b.p.PSIAlert
	note := ""
	if shadowOK {
		sdays := make([]Hist, nb)
		for w := 1; w <= nb; w++ {
			sdays[w-1] = g.hist(w, sbins, bsn)
		}
		sd := histDrift(g.hist(0, sbins, bsn), sdays)
		if !math.IsNaN(sd.psi) {
			h.ShadowValue, h.shadowB = sd.psi, sd.excess
			if sd.psi-sd.excess >= b.p.ShadowShare*h.effect {
				h.Class = ClassPopulationShift
				note = fmt.Sprintf("; shadow scores drifted too (PSI %s)", fnum(sd.psi))
			} else {
				note = fmt.Sprintf(", production only; shadow PSI %s", fnum(sd.psi))
			}
		}
	}
	h.summary = fmt.Sprintf("%s score distribution PSI %s (JS %s, day-to-day %s) over %d baseline decile bins (n=%s vs %s)%s",
		label(g.col, g.val), fnum(dr.psi), fnum(dr.js), fnum(dr.excess), dr.bins, count(cur.Total()), count(nBase), note)
	h.details = details("js", dr.js, "day_to_day_psi", dr.excess)
	r.add(h)
}

// bounds checks the configured absolute bounds on the aggregate's current
// window. Rate bounds need min_samples and are tested (exact binomial, so
// a rate sitting on the bound does not flap); count bounds are plain
// ("we expect at least this many blocks an hour"), min_blocked only with
// min_samples requests (no traffic is the volume detector's to report).
func (b *blockRate) bounds(r *run, cur Prop) {
	agg := map[string]string{}
	if b.p.MinRate != nil || b.p.MaxRate != nil {
		if !b.d.enough(cur.N) {
			r.skip(agg, "")
		} else {
			rate := cur.Rate()
			if b.p.MinRate != nil {
				h := rateBound(MetricRateBound, agg, cur, *b.p.MinRate, false)
				h.summary = fmt.Sprintf("overall block rate %s is below the minimum %s (n=%s, %s)", pct(rate), pct(*b.p.MinRate), count(cur.N), pval(h.PValue))
				r.add(h)
			}
			if b.p.MaxRate != nil {
				h := rateBound(MetricRateBound, agg, cur, *b.p.MaxRate, true)
				h.summary = fmt.Sprintf("overall block rate %s is above the maximum %s (n=%s, %s)", pct(rate), pct(*b.p.MaxRate), count(cur.N), pval(h.PValue))
				r.add(h)
			}
		}
	}
	if b.p.MinBlocked != nil && b.d.enough(cur.N) {
		h := newHyp(MetricBlockedBound, agg, "", ClassModelBehavior)
		min := float64(*b.p.MinBlocked)
		h.Value, h.Baseline, h.BaselineLow, h.NCurrent = cur.X, min, min, uint64(cur.N)
		h.effect = cur.X - min
		h.gate = cur.X < min
		h.summary = fmt.Sprintf("overall %s blocked in the window, expected at least %s (n=%s)", count(cur.X), count(min), count(cur.N))
		r.add(h)
	}
	if b.p.MaxBlocked != nil {
		h := newHyp(MetricBlockedBound, agg, "", ClassModelBehavior)
		max := float64(*b.p.MaxBlocked)
		h.Value, h.Baseline, h.BaselineHigh, h.NCurrent = cur.X, max, max, uint64(cur.N)
		h.effect = cur.X - max
		h.gate = cur.X > max
		h.summary = fmt.Sprintf("overall %s blocked in the window, expected at most %s (n=%s)", count(cur.X), count(max), count(cur.N))
		r.add(h)
	}
}

// rateBound tests a block rate against a minimum (upper false) or a
// maximum, exactly (binomial): a rate sitting on the bound does not flap.
// The caller writes the summary.
func rateBound(metric string, slice map[string]string, cur Prop, bound float64, upper bool) *hypothesis {
	rate := cur.Rate()
	h := newHyp(metric, slice, "", ClassModelBehavior)
	h.Value, h.Baseline, h.NCurrent = rate, bound, uint64(cur.N)
	h.effect = rate - bound
	if upper {
		h.BaselineHigh = bound
		h.PValue = BinomSF(cur.X, cur.N, bound)
		h.gate = rate > bound
	} else {
		h.BaselineLow = bound
		h.PValue = BinomCDF(cur.X, cur.N, bound)
		h.gate = rate < bound
	}
	return h
}

func (b *blockRate) spans(w windows) []span { return w.all() }
