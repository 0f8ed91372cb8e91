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
type blockRate struct {
	d   *Detector
	src source
	p   *configs.BlockRateParams
}

func newBlockRate(d *Detector) (kind, error) {
	if d.cfg.BlockRate == nil {
		return nil, fmt.Errorf("block_rate parameters missing (load the config with configs.Load)")
	}
	return &blockRate{d: d, src: newSource(d), p: d.cfg.BlockRate}, nil
}

// Metrics of block_rate.
const (
	MetricBlockRate    = "block_rate"
	MetricScorePSI     = "score_psi"
	MetricRateBound    = "block_rate_bound"
	MetricBlockedBound = "blocked_count_bound"
)

// roleExprs are the expressions of the role (0 production, 1 shadow), the
// decision (1 blocked) and the score for the rows and none shadow modes;
// q receives the role's bound value.
func (s source) roleExprs(q *sqlText) (role, dec, score string) {
	c := s.m.Columns
	dec = fmt.Sprintf("toUInt8(ifNull(%s != 0, 0))", s.col(c.Decision))
	if s.m.Shadow.Mode == configs.ShadowRows {
		q.args = append(q.args, s.m.Shadow.ProductionRole)
		return "if(" + s.col(c.Role) + " = ?, 0, 1)", dec, s.col(c.Score)
	}
	return "0", dec, s.col(c.Score)
}

// roles renders, for the model's shadow mode, the innermost columns _role
// (0 production, 1 shadow, 2 none), _dec (1 blocked) and _score.
func (s source) roles(q *sqlText) {
	c := s.m.Columns
	dec := func(e string) string { return fmt.Sprintf("toUInt8(ifNull(%s != 0, 0))", e) }
	switch s.m.Shadow.Mode {
	case configs.ShadowRows:
		q.add("if("+s.col(c.Role)+" = ?, 0, 1) AS _role, ", s.m.Shadow.ProductionRole)
		q.add(dec(s.col(c.Decision)) + " AS _dec, " + s.col(c.Score) + " AS _score")
	case configs.ShadowColumns:
		sd, ss := s.col(s.m.Shadow.DecisionColumn), s.col(s.m.Shadow.ScoreColumn)
		q.add("arrayJoin([0, 1]) AS _r, if(_r = 0, 0, if(isNull(" + sd + "), 2, 1)) AS _role, ")
		q.add(dec("if(_r = 0, "+s.col(c.Decision)+", "+sd+")") + " AS _dec, ")
		q.add("if(_r = 0, toFloat64(" + s.col(c.Score) + "), toFloat64(" + ss + ")) AS _score")
	default:
		q.add("0 AS _role, " + dec(s.col(c.Decision)) + " AS _dec, " + s.col(c.Score) + " AS _score")
	}
}

// blockRateCols are block_rate's result columns after sc, sv, w.
var blockRateCols = []string{"n", "x", "sn", "sx", "bins", "bn", "sbins", "bsn"}

// blockRateFold says which of blockRateCols add up (all of them).
var blockRateFold = foldSpec{sums: []string{"n", "x", "sn", "sx"}, hists: [][2]string{{"bins", "bn"}, {"sbins", "bsn"}}}

// One aggregation counts rows per slice, window and score bin (the slice
// arrayJoin numbers slices, see expand); the next collects the bins.
func (b *blockRate) query(w windows) *sqlText {
	if b.d.cfg.Source == configs.SourceRollup {
		return b.rollupQuery(w)
	}
	s := b.src
	slices := b.d.slices()
	inner := &sqlText{}
	inner.add("    SELECT ")
	sliceName(inner, slices)
	inner.add(", sv, w, sum(_n) AS n, sum(_x) AS x, sum(_sn) AS sn, sum(_sx) AS sx,\n")
	inner.add("      groupArrayIf(bin, _n > 0) AS bins, groupArrayIf(_n, _n > 0) AS bn,\n")
	inner.add("      groupArrayIf(bin, _sn > 0) AS sbins, groupArrayIf(_sn, _sn > 0) AS bsn\n")
	inner.add("    FROM (\n      SELECT ")
	expand(inner, sliceVars(len(slices)))
	inner.add(", _w AS w, _bin AS bin,\n")
	inner.add("        countIf(_role = 0) AS _n, countIf(_role = 0 AND _dec = 1) AS _x,\n")
	inner.add("        countIf(_role = 1) AS _sn, countIf(_role = 1 AND _dec = 1) AS _sx\n")
	inner.add("      FROM (\n        SELECT ")
	s.window(inner, w)
	inner.add(" AS _w,\n          ")
	s.roles(inner)
	inner.add(",\n          " + bin("_score") + " AS _bin")
	s.sliceValues(inner, slices)
	inner.add("\n        FROM " + s.table + "\n       ")
	s.filter(inner, w.all(), true)
	inner.add("\n      )\n      GROUP BY _si, sv, w, bin\n    )\n    GROUP BY _si, sv, w")
	// Values rank by the table's rows: shadow rows count in the rows mode.
	rank := "n"
	if s.m.Shadow.Mode == configs.ShadowRows {
		rank = "n + sn"
	}
	q := &sqlText{}
	s.ranked(q, inner, false, blockRateCols, rank)
	return q
}

func (b *blockRate) evaluate(res *store.Result, r *run) error {
	groups, err := groupRows(res, "")
	if err != nil {
		return err
	}
	if groups, err = fold(res, groups, blockRateFold, b.d.cfg.TopK); err != nil {
		return err
	}
	c, err := cols(res, blockRateCols...)
	if err != nil {
		return err
	}
	n, x, sn, sx, bins, bn, sbins, bsn := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
	nb := len(r.w.base)
	hasShadow := b.src.m.Shadow.Mode != configs.ShadowNone
	sawAggregate := false
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
		h := newHyp(MetricBlockRate, slice, "", ClassModelBehavior)
		pb := base.Rate()
		margin := b.d.margin(pb)
		var spread float64
		if r.w.seasonal {
			spread = SeasonalVar(g.days(nb, x, n))
		}
		h.PValue = ChangeTest(cur, base, Change{Margin: margin, Var: spread, Tail: TailBoth})
		h.Value, h.Baseline, h.effect = cur.Rate(), pb, cur.Rate()-pb
		band := margin + 2*math.Sqrt(spread+pb*(1-pb)/cur.N)
		h.BaselineLow, h.BaselineHigh = math.Max(0, pb-band), math.Min(1, pb+band)
		h.NCurrent, h.NBaseline = uint64(cur.N), uint64(base.N)
		h.gate = math.Abs(h.effect) >= margin
		shadowNote := ", production only; no shadow data"
		if shadowOK {
			h.ShadowValue, h.shadowB = scur.Rate(), sbase.Rate()
			ds := scur.Rate() - sbase.Rate()
			if ds*h.effect > 0 && math.Abs(ds) >= b.p.ShadowShare*math.Abs(h.effect) {
				h.Class = ClassPopulationShift
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
				h := newHyp(MetricRateBound, agg, "", ClassModelBehavior)
				h.Value, h.Baseline, h.BaselineLow = rate, *b.p.MinRate, *b.p.MinRate
				h.NCurrent = uint64(cur.N)
				h.PValue = BinomCDF(cur.X, cur.N, *b.p.MinRate)
				h.effect = rate - *b.p.MinRate
				h.gate = rate < *b.p.MinRate
				h.summary = fmt.Sprintf("overall block rate %s is below the minimum %s (n=%s, %s)", pct(rate), pct(*b.p.MinRate), count(cur.N), pval(h.PValue))
				r.add(h)
			}
			if b.p.MaxRate != nil {
				h := newHyp(MetricRateBound, agg, "", ClassModelBehavior)
				h.Value, h.Baseline, h.BaselineHigh = rate, *b.p.MaxRate, *b.p.MaxRate
				h.NCurrent = uint64(cur.N)
				h.PValue = BinomSF(cur.X, cur.N, *b.p.MaxRate)
				h.effect = rate - *b.p.MaxRate
				h.gate = rate > *b.p.MaxRate
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

func (b *blockRate) spans(w windows) []span { return w.all() }
