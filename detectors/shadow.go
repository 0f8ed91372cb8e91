package detectors

import (
	"fmt"
	"math"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// shadow compares production and shadow decisions on the same requests:
// the disagreement rate in each direction (production blocks what the
// shadow passes, and the reverse) per slice against its baseline, with the
// score correlation of the pairs as a second figure. A divergence is a
// ticket for the product team: one of the two models changed.
type shadow struct {
	base[configs.ShadowParams]
	twoLevel
}

// Metrics of shadow.
const (
	MetricProdBlocks   = "disagreement_production_blocks"
	MetricShadowBlocks = "disagreement_shadow_blocks"
	MetricCorrelation  = "score_correlation"
	MetricPaired       = "paired_share"
)

func newShadow(d *Detector) (kind, error) {
	if d.model.Shadow.Mode == configs.ShadowNone {
		return nil, fmt.Errorf("model %s has no shadow data (shadow.mode none)", d.model.Name)
	}
	p := d.cfg.ShadowParams
	if p == nil {
		p = &configs.ShadowParams{}
	}
	b, err := newBase(d, configs.KindShadow, p)
	if err != nil {
		return nil, err
	}
	sh := &shadow{base: b}
	sh.twoLevel = twoLevel{from: b.src, counts: sh.counts, cols: shadowCols, rank: "rows"}
	return sh, nil
}

// pairedDrop: the share of requests logged with both their production
// and shadow rows is collapsing when it falls below this fraction of the
// baseline's (a shadow that scores 10% of traffic has a 10% baseline).
const pairedDrop = 0.5

// pairing checks the aggregate's share of paired requests: when it
// collapses, one side's logging stopped and this detector is blind (and
// block-rate moves can no longer be told apart by the shadow). That is a
// monitoring_failure (infra, ticket): production is served and logged as
// before, so it must neither page nor hold back the product team's
// alerts as a pipeline_outage would (root-cause inhibition). Requests
// with an empty or duplicated id are neither paired nor unpaired: their
// own check (validity) reports them.
func (sh *shadow) pairing(r *run, g *group, n, bd, unpaired, prodOnly col) {
	nb := len(r.w.base)
	paired := func(w int) float64 { return g.num(w, n) + g.num(w, bd) }
	cur := Prop{paired(0), paired(0) + g.num(0, unpaired)}
	var base Prop
	days := make([]Prop, nb)
	for w := 1; w <= nb; w++ {
		days[w-1] = Prop{paired(w), paired(w) + g.num(w, unpaired)}
		base.X += days[w-1].X
		base.N += days[w-1].N
	}
	if !sh.d.enough(cur.N) || !sh.d.enough(base.N) || base.X == 0 {
		return // too few requests, or a shadow that never paired
	}
	var spread float64
	if r.w.seasonal {
		spread = SeasonalVar(days)
	}
	h := newHyp(MetricPaired, map[string]string{}, "", ClassMonitoringFailure)
	pb := base.Rate()
	h.PValue = ChangeTest(cur, base, Change{Margin: (1 - pairedDrop) * pb, Var: spread, Tail: TailDown})
	h.Value, h.Baseline, h.effect = cur.Rate(), pb, cur.Rate()-pb
	h.BaselineLow, h.BaselineHigh = pairedDrop*pb, 1
	h.NCurrent, h.NBaseline = uint64(cur.N), uint64(base.N)
	h.gate = cur.Rate() < pairedDrop*pb
	missing := "shadow"
	if po := g.num(0, prodOnly); po < (cur.N-cur.X)/2 {
		missing = "production"
	}
	h.summary = fmt.Sprintf("overall: %s of requests have both their production and shadow rows vs %s baseline (n=%s vs %s requests): %s rows are missing, production and shadow cannot be compared",
		pct(cur.Rate()), pct(pb), count(cur.N), count(base.N), missing)
	h.details = details("unpaired", g.num(0, unpaired), "production_only", g.num(0, prodOnly))
	r.add(h)
}

// pairs renders the innermost SELECT of requests: columns _w, pd, sd
// (decision codes, see decision), a, b (scores), paired (exactly one row
// of each role), hasp (a production row), nrows (the request's rows),
// noid (an empty request id), dup (a non-empty id with more than one row
// of a role), and the slice values _c0.. .
func (sh *shadow) pairs(s source, q *sqlText, w windows) {
	c := s.m.Columns
	slices := sh.d.slices()
	if s.m.Shadow.Mode == configs.ShadowColumns {
		// Both scores ride on one row: no request id pairs them.
		q.add("SELECT ")
		s.window(q, w)
		q.add(" AS _w, " + decision(s.col(c.Decision)) + " AS pd, " + decision(s.col(s.m.Shadow.DecisionColumn)) + " AS sd,\n")
		q.add("          toFloat64(" + s.col(c.Score) + ") AS a, toFloat64(" + s.col(s.m.Shadow.ScoreColumn) + ") AS b,\n")
		q.add("          isNotNull(" + s.col(s.m.Shadow.DecisionColumn) + ") AS paired, 1 AS hasp, 1 AS nrows, 0 AS noid, 0 AS dup")
		for i, sl := range slices {
			q.add(fmt.Sprintf(", %s AS _c%d", s.sliceValue(sl), i))
		}
		q.add("\n        FROM " + s.table + "\n       ")
		s.filter(q, w.all(), false)
		return
	}
	pr := s.m.Shadow.ProductionRole
	// Both rows of a request share its window; min keeps a lone shadow
	// row in its own window too. A row with an empty id is no request:
	// it is a group of its own (a random key; a collision with another
	// key is a 2^-64 chance), to be counted with its slice values. The
	// slice values are the production row's (argMax), or a lone shadow
	// row's.
	q.add("SELECT min(_w0) AS _w, anyIf(_d, _p) AS pd, anyIf(_d, NOT _p) AS sd,\n")
	q.add("          anyIf(_sc, _p) AS a, anyIf(_sc, NOT _p) AS b, countIf(_p) AS _np, countIf(NOT _p) AS _ns, count() AS nrows,\n")
	q.add("          min(_e) AS noid, NOT noid AND (_np > 1 OR _ns > 1) AS dup, NOT noid AND _np = 1 AND _ns = 1 AS paired, _np > 0 AS hasp")
	for i := range slices {
		q.add(fmt.Sprintf(", argMax(_v%d, _p) AS _c%d", i, i))
	}
	q.add("\n        FROM (\n          SELECT ")
	s.window(q, w)
	q.add(" AS _w0, "+s.col(c.Role)+" = ? AS _p, "+decision(s.col(c.Decision))+" AS _d, toFloat64("+s.col(c.Score)+") AS _sc, "+s.col(c.RequestID)+" AS _id, _id = '' AS _e", pr)
	for i, sl := range slices {
		q.add(fmt.Sprintf(", %s AS _v%d", s.sliceValue(sl), i))
	}
	q.add("\n          FROM " + s.table + "\n         ")
	s.filter(q, w.all(), true)
	q.add("\n        )\n        GROUP BY if(_e, rand64(), cityHash64(_id))")
}

// shadowCols are shadow's result columns after sc, sv, w; all add up. n
// counts the paired requests with valid decisions on both sides (pb, sb
// the disagreements among them), bd those with an invalid one, unpaired
// the valid requests with one side only (prod_only: the production
// side), nc..sab the score sums of pairs with both scores in [0, 1];
// rows, er and dr count rows: all, with an empty request id, and of
// requests whose id is duplicated.
var shadowCols = []string{"n", "pb", "sb", "unpaired", "nc", "sa", "sbs", "saa", "sbb", "sab", "prod_only", "bd", "rows", "er", "dr"}

// Pairs are counted per slice and window in one aggregation over them
// (twoLevel): on the shards (shards.go), each pairs the rows of its local
// table.

// counts is the aggregation of the pairs of s's table per slice (sc, sv)
// and window w.
func (sh *shadow) counts(s source, w windows) *sqlText {
	slices := sh.d.slices()
	ok := fmt.Sprintf("paired AND pd < %[1]d AND sd < %[1]d", decInvalid)
	fin := "paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)"
	aggs := []string{"countIf(" + ok + ")", "countIf(" + ok + " AND pd = 1 AND sd = 0)", "countIf(" + ok + " AND pd = 0 AND sd = 1)",
		"countIf(NOT paired AND NOT noid AND NOT dup)",
		"countIf(" + fin + ")", "sumIf(a, " + fin + ")", "sumIf(b, " + fin + ")",
		"sumIf(a * a, " + fin + ")", "sumIf(b * b, " + fin + ")", "sumIf(a * b, " + fin + ")",
		"countIf(NOT paired AND hasp AND NOT noid AND NOT dup)", "countIf(paired AND NOT (" + ok + "))",
		"sum(nrows)", "sumIf(nrows, noid)", "sumIf(nrows, dup)"}
	inner := &sqlText{}
	sliceSelect(inner, slices, "_w AS w", shadowCols, aggs)
	inner.add("\n    FROM (\n      ")
	sh.pairs(s, inner, w)
	inner.add("\n    )\n    WHERE _w != 255\n    GROUP BY _si, sv, w")
	return inner
}

// corr is Pearson's correlation from sums.
func corr(n, sa, sb, saa, sbb, sab float64) float64 {
	if n < 2 {
		return math.NaN()
	}
	va, vb := n*saa-sa*sa, n*sbb-sb*sb
	if va <= 0 || vb <= 0 {
		return math.NaN()
	}
	return (n*sab - sa*sb) / math.Sqrt(va*vb)
}

func (sh *shadow) evaluate(res *store.Result, r *run) error {
	groups, c, err := readGroups(res, "", foldSpec{sums: shadowCols}, sh.d.cfg.TopK, shadowCols...)
	if err != nil {
		return err
	}
	n, pb, sb, unpaired, bd := c[0], c[1], c[2], c[3], c[11]
	nb := len(r.w.base)
	// Request-id validity on the aggregate (validity.go); with shadow
	// columns no request id pairs the rows.
	var checks []validity
	if sh.src.m.Shadow.Mode == configs.ShadowRows && sh.d.validity {
		rows := func(g *group, w int) float64 { return g.num(w, c[12]) }
		checks = []validity{
			{MetricEmptyRequestID, "have an empty request id (no shadow row can pair with them)",
				func(g *group, w int) float64 { return g.num(w, c[13]) }, rows},
			{MetricDuplicateRequestID, "share their request id with another row of the same role (production and shadow cannot be paired)",
				func(g *group, w int) float64 { return g.num(w, c[14]) }, rows},
		}
	}
	for _, g := range groups {
		slice := sliceOf(g.col, g.val)
		nCur, nBase := g.num(0, n), g.base(nb, n)
		if g.col == "" {
			sh.pairing(r, g, n, bd, unpaired, c[10])
			for _, v := range checks {
				v.check(r, g, groups)
			}
		}
		if !sh.d.enough(nCur) || !sh.d.enough(nBase) {
			r.skip(slice, "")
			r.addThin(MetricProdBlocks, g, Prop{g.num(0, pb), nCur}, Prop{g.base(nb, pb), nBase})
			r.addThin(MetricShadowBlocks, g, Prop{g.num(0, sb), nCur}, Prop{g.base(nb, sb), nBase})
			continue
		}
		cc := corr(g.num(0, c[4]), g.num(0, c[5]), g.num(0, c[6]), g.num(0, c[7]), g.num(0, c[8]), g.num(0, c[9]))
		bc := corr(g.base(nb, c[4]), g.base(nb, c[5]), g.base(nb, c[6]), g.base(nb, c[7]), g.base(nb, c[8]), g.base(nb, c[9]))
		for _, dir := range []struct {
			metric string
			x      col
			what   string
		}{
			{MetricProdBlocks, pb, "production blocks, shadow passes"},
			{MetricShadowBlocks, sb, "shadow blocks, production passes"},
		} {
			cur, base := Prop{g.num(0, dir.x), nCur}, Prop{g.base(nb, dir.x), nBase}
			var spread float64
			if r.w.seasonal {
				spread = SeasonalVar(g.days(nb, dir.x, n))
			}
			h := newHyp(dir.metric, slice, "", ClassModelDivergence)
			margin := sh.d.margin(base.Rate())
			h.PValue = ChangeTest(cur, base, Change{Margin: margin, Var: spread, Tail: TailUp})
			h.Value, h.Baseline = cur.Rate(), base.Rate()
			h.effect = h.Value - h.Baseline
			h.BaselineLow, h.BaselineHigh = 0, math.Min(1, h.Baseline+margin+2*math.Sqrt(spread+h.Baseline*(1-h.Baseline)/nCur))
			h.ShadowValue, h.shadowB = cc, bc
			h.NCurrent, h.NBaseline, h.spread = uint64(nCur), uint64(nBase), spread
			h.gate = h.effect >= margin
			h.details = details("score_correlation", cc, "baseline_score_correlation", bc, "unpaired", g.num(0, unpaired))
			h.summary = fmt.Sprintf("%s: %s on %s of requests vs %s baseline (n=%s vs %s pairs); score correlation %s vs %s",
				label(g.col, g.val), dir.what, pct(h.Value), pct(h.Baseline), count(nCur), count(nBase), fnum(cc), fnum(bc))
			r.add(h)
		}
		if sh.p.MinCorrelation != 0 && !math.IsNaN(cc) {
			h := newHyp(MetricCorrelation, slice, "", ClassModelDivergence)
			h.Value, h.Baseline, h.BaselineLow = cc, bc, sh.p.MinCorrelation
			h.effect = cc - bc
			h.NCurrent, h.NBaseline = uint64(nCur), uint64(nBase)
			h.gate = cc < sh.p.MinCorrelation && !(bc < sh.p.MinCorrelation)
			h.summary = fmt.Sprintf("%s: production/shadow score correlation %s vs %s baseline, below %s (n=%s pairs)",
				label(g.col, g.val), fnum(cc), fnum(bc), fnum(sh.p.MinCorrelation), count(nCur))
			r.add(h)
		}
	}
	return nil
}

func (sh *shadow) spans(w windows) []span { return w.all() }
