package detectors

import (
	"fmt"
	"math"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// performance judges the model on its ground truth: fraud labels that
// arrive days or weeks after the prediction (models[].labels). Its
// windows end a maturity ago (eval_delay defaults to the maturity), and a
// prediction counts as labelled when its first label arrived within the
// maturity, so every window, current or baseline, is judged on the same
// footing whenever it is evaluated (a replay sees what the daemon saw).
// Per slice, for production and shadow: precision (share of labelled
// blocks that were fraud), recall (share of labelled fraud blocked),
// false-positive rate (share of labelled good requests blocked) and the
// fraud rate; and on the aggregate the label coverage (share of matured
// predictions with a label). A drop of production's precision or recall
// (or a rise of its false-positive rate) is model_behavior, or
// population_shift when the shadow shares it; a change of the fraud rate
// is population_shift; coverage collapsing is feature_pipeline (the
// labels feed broke, an infra matter).
type performance struct {
	base[configs.PerformanceParams]
	twoLevel
	labels *configs.Labels
}

// Metrics of performance.
const (
	MetricPrecision     = "precision"
	MetricRecall        = "recall"
	MetricFalsePositive = "false_positive_rate"
	MetricFraudRate     = "fraud_rate"
	MetricLabelCoverage = "label_coverage"
)

func newPerformance(d *Detector) (kind, error) {
	if d.model.Labels == nil {
		return nil, fmt.Errorf("model %s has no labels block", d.model.Name)
	}
	b, err := newBase(d, configs.KindPerformance, d.cfg.Performance)
	if err != nil {
		return nil, err
	}
	pf := &performance{base: b, labels: d.model.Labels}
	pf.twoLevel = twoLevel{from: b.src, counts: pf.counts, cols: performanceCols, rank: "n + sn"}
	return pf, nil
}

// performanceCols are performance's result columns after sc, sv, w, all
// counts of matured predictions with a valid decision: production's n
// (all), l (labelled), f (labelled fraud), b (labelled and blocked), tp
// (labelled fraud and blocked); the shadow's sn, sl, sf, sb, stp.
var performanceCols = []string{"n", "l", "f", "b", "tp", "sn", "sl", "sf", "sb", "stp"}

// labelSource renders the right side of the join: per request id its
// first label (_y, 1 = fraud) and when it arrived (_lat), among the
// labels that arrived in [from, to): none can belong to the windows'
// predictions before from, none after to counts.
func (pf *performance) labelSource(q *sqlText, from, to any) {
	labelSource(q, pf.src, pf.labels, from, to)
}

// labelSource renders the labels subquery of src's model (see
// performance.labelSource); guardrails shares it.
func labelSource(q *sqlText, src source, l *configs.Labels, from, to any) {
	rid, lab, lat := store.MustIdent(l.Columns.RequestID), store.MustIdent(l.Columns.Label), store.MustIdent(l.Columns.LabeledAt)
	q.add("SELECT " + rid + " AS _id, argMin(toUInt8(ifNull(" + lab + " = 1, 0)), " + lat + ") AS _y, min(" + lat + ") AS _lat, toUInt8(1) AS _lab\n")
	table := src.table
	if l.Table != "" {
		table = store.ParseTable(src.m.LabelsTable()).Quoted()
	}
	q.add("        FROM " + table + "\n")
	q.add("        WHERE ifNull("+lat+" >= ? AND "+lat+" < ?, 0)", from, to)
	if l.Table == "" {
		// The prediction table's own columns: the production rows carry them.
		m := src.m
		q.add(" AND "+src.col(m.Columns.Model)+" = ?", m.ModelValue)
		if m.Shadow.Mode == configs.ShadowRows {
			q.add(" AND "+src.col(m.Columns.Role)+" = ?", m.Shadow.ProductionRole)
		}
	}
	q.add("\n        GROUP BY _id")
}

// The query (twoLevel) joins the windows' predictions to their labels by
// request id (ANY LEFT JOIN: one label row per id, unlabelled
// predictions kept) and counts per slice and window in one aggregation.
// On the shards (shards.go) each joins the predictions of its local table
// to the labels as it names the labels table (a Distributed table over
// them), or to the local table's own label columns.

// counts is the aggregation of s's predictions joined to their labels
// per slice (sc, sv) and window w.
func (pf *performance) counts(s source, w windows) *sqlText {
	slices := pf.d.slices()
	maturity := int64(pf.labels.Maturity.D().Seconds())
	ok := fmt.Sprintf("_dec < %d", decInvalid)
	aggs := []string{}
	for _, role := range []string{"0", "1"} {
		v := "_role = " + role + " AND " + ok
		aggs = append(aggs, "countIf("+v+")", "countIf("+v+" AND _ok)", "countIf("+v+" AND _ok AND _y = 1)",
			"countIf("+v+" AND _ok AND _dec = 1)", "countIf("+v+" AND _ok AND _y = 1 AND _dec = 1)")
	}
	inner := &sqlText{}
	sliceSelect(inner, slices, "w", performanceCols, aggs)
	inner.add("\n    FROM (\n      SELECT _w AS w, _role, _dec, _y, ")
	inner.add(fmt.Sprintf("_lab = 1 AND toUInt32(_lat) < toUInt32(_ts) + %d AS _ok", maturity))
	for i := range slices {
		inner.add(fmt.Sprintf(", _c%d", i))
	}
	inner.add("\n      FROM (\n        SELECT ")
	s.window(inner, w)
	inner.add(" AS _w, " + s.ts() + " AS _ts, " + s.col(s.m.Columns.RequestID) + " AS _id, ")
	columns(inner, s.roles())
	s.sliceValues(inner, slices)
	inner.add("\n        FROM " + s.table + "\n       ")
	s.filter(inner, w.all(), true)
	inner.add("\n      ) AS p\n      ANY LEFT JOIN (\n        ")
	first := w.cur.from
	for _, b := range w.base {
		if b.from.Before(first) {
			first = b.from
		}
	}
	labelSource(inner, s, pf.labels, first, w.cur.to.Add(pf.labels.Maturity.D()))
	inner.add("\n      ) AS l USING _id\n      WHERE _w != 255 AND _role < 2\n    )\n    GROUP BY _si, sv, w")
	return inner
}

func (pf *performance) spans(w windows) []span { return w.all() }

// rateCheck is one figure of performance: x of n, for production and
// the shadow, and which way is worse.
type rateCheck struct {
	metric, what string
	x, n         func(g *group, w int, shadow bool) float64
	tail         Tail
	class        Class
}

func (pf *performance) evaluate(res *store.Result, r *run) error {
	groups, c, err := readGroups(res, "", foldSpec{sums: performanceCols}, pf.d.cfg.TopK, performanceCols...)
	if err != nil {
		return err
	}
	pick := func(i int) func(g *group, w int, shadow bool) float64 {
		return func(g *group, w int, shadow bool) float64 {
			if shadow {
				return g.num(w, c[i+5])
			}
			return g.num(w, c[i])
		}
	}
	n, l, f, b, tp := pick(0), pick(1), pick(2), pick(3), pick(4)
	fp := func(g *group, w int, sh bool) float64 { return b(g, w, sh) - tp(g, w, sh) }
	good := func(g *group, w int, sh bool) float64 { return l(g, w, sh) - f(g, w, sh) }
	checks := []rateCheck{
		{MetricPrecision, "precision (blocks that were fraud)", tp, b, TailDown, ClassModelBehavior},
		{MetricRecall, "recall (fraud blocked)", tp, f, TailDown, ClassModelBehavior},
		{MetricFalsePositive, "false-positive rate (good requests blocked)", fp, good, TailUp, ClassModelBehavior},
		{MetricFraudRate, "fraud rate", f, l, TailBoth, ClassPopulationShift},
	}
	hasShadow := pf.src.m.Shadow.Mode != configs.ShadowNone
	for _, g := range groups {
		if g.col == "" {
			pf.coverage(r, g, n, l)
		}
		for _, ck := range checks {
			pf.check(r, g, ck, hasShadow && ck.metric != MetricFraudRate)
		}
	}
	return nil
}

// sumW adds a figure over windows lo..hi.
func sumW(fn func(g *group, w int, sh bool) float64, g *group, lo, hi int, sh bool) float64 {
	var s float64
	for w := lo; w <= hi; w++ {
		s += fn(g, w, sh)
	}
	return s
}

// check tests one figure of one slice: the current window against the
// baseline windows, with the effect-size gate and seasonal spread of the
// other detectors; the shadow's move in the same direction by at least
// shadow_share of production's makes it population_shift.
func (pf *performance) check(r *run, g *group, ck rateCheck, withShadow bool) {
	nb := len(r.w.base)
	slice := sliceOf(g.col, g.val)
	cur := Prop{ck.x(g, 0, false), ck.n(g, 0, false)}
	base := Prop{sumW(ck.x, g, 1, nb, false), sumW(ck.n, g, 1, nb, false)}
	if !pf.d.enough(cur.N) || !pf.d.enough(base.N) {
		r.skip(slice, "")
		return
	}
	var spread float64
	if r.w.seasonal {
		days := make([]Prop, nb)
		for w := 1; w <= nb; w++ {
			days[w-1] = Prop{ck.x(g, w, false), ck.n(g, w, false)}
		}
		spread = SeasonalVar(days)
	}
	h := newHyp(ck.metric, slice, "", ck.class)
	pb := base.Rate()
	margin := pf.d.margin(pb)
	h.PValue = ChangeTest(cur, base, Change{Margin: margin, Var: spread, Tail: ck.tail})
	h.Value, h.Baseline, h.effect = cur.Rate(), pb, cur.Rate()-pb
	h.BaselineLow, h.BaselineHigh = perfBand(pb, margin, spread, cur.N, ck.tail)
	h.NCurrent, h.NBaseline = uint64(cur.N), uint64(base.N)
	switch ck.tail {
	case TailDown:
		h.gate = -h.effect >= margin
	case TailUp:
		h.gate = h.effect >= margin
	default:
		h.gate = math.Abs(h.effect) >= margin
	}
	note := ""
	if withShadow {
		scur := Prop{ck.x(g, 0, true), ck.n(g, 0, true)}
		sbase := Prop{sumW(ck.x, g, 1, nb, true), sumW(ck.n, g, 1, nb, true)}
		if pf.d.enough(scur.N) && pf.d.enough(sbase.N) {
			if h.shadowMoved(scur, sbase, pf.p.ShadowShare) {
				note = fmt.Sprintf("; the shadow's moved too: %s vs %s", pct(scur.Rate()), pct(sbase.Rate()))
			} else {
				note = fmt.Sprintf(", production only; shadow %s vs %s", pct(scur.Rate()), pct(sbase.Rate()))
			}
		}
	}
	h.summary = fmt.Sprintf("%s %s %s vs %s baseline on matured labels (n=%s vs %s)%s",
		label(g.col, g.val), ck.what, pct(cur.Rate()), pct(pb), count(cur.N), count(base.N), note)
	h.details = details("margin", margin, "seasonal_sd", math.Sqrt(spread))
	r.add(h)
}

// perfBand is a performance figure's band around its baseline pb: the
// margin plus two standard deviations of a window of n, open on the side
// that is not worse.
func perfBand(pb, margin, spread, n float64, tail Tail) (lo, hi float64) {
	band := margin + 2*math.Sqrt(spread+pb*(1-pb)/n)
	lo, hi = math.Max(0, pb-band), math.Min(1, pb+band)
	if tail == TailDown {
		hi = 1
	}
	if tail == TailUp {
		lo = 0
	}
	return lo, hi
}

// coverage checks the aggregate's label coverage: the share of matured
// predictions whose label arrived within the maturity. Falling below
// coverage_drop of the baseline's means the labels feed stopped or lost
// most of its rows: feature_pipeline (infra). A model that never had
// labels (baseline coverage 0) is not checked.
func (pf *performance) coverage(r *run, g *group, n, l func(g *group, w int, sh bool) float64) {
	nb := len(r.w.base)
	cur := Prop{l(g, 0, false), n(g, 0, false)}
	base := Prop{sumW(l, g, 1, nb, false), sumW(n, g, 1, nb, false)}
	if !pf.d.enough(cur.N) || !pf.d.enough(base.N) || base.X == 0 {
		return
	}
	var spread float64
	if r.w.seasonal {
		days := make([]Prop, nb)
		for w := 1; w <= nb; w++ {
			days[w-1] = Prop{l(g, w, false), n(g, w, false)}
		}
		spread = SeasonalVar(days)
	}
	h := newHyp(MetricLabelCoverage, map[string]string{}, "", ClassFeaturePipeline)
	pb := base.Rate()
	floor := pf.p.CoverageDrop * pb
	h.PValue = ChangeTest(cur, base, Change{Margin: pb - floor, Var: spread, Tail: TailDown})
	h.Value, h.Baseline, h.effect = cur.Rate(), pb, cur.Rate()-pb
	h.BaselineLow, h.BaselineHigh = floor, 1
	h.NCurrent, h.NBaseline = uint64(cur.N), uint64(base.N)
	h.gate = cur.Rate() < floor
	h.summary = fmt.Sprintf("overall: %s of matured predictions have a label vs %s baseline (n=%s vs %s): the labels feed (%s) stopped or lost rows; performance figures are blind",
		pct(cur.Rate()), pct(pb), count(cur.N), count(base.N), pf.labelsName())
	r.add(h)
}

func (pf *performance) labelsName() string {
	if pf.labels.Table == "" {
		return pf.src.m.Table + "." + pf.labels.Columns.Label
	}
	return pf.src.m.LabelsTable()
}

// LabelsMissing reports whether err, from this detector's Evaluate, is its
// model's labels table being absent: a performance detector whose labels
// have not arrived yet (the monitor then warns instead of failing, unless
// the table was there before).
func (d *Detector) LabelsMissing(err error) bool {
	return err != nil && d.cfg.Kind == configs.KindPerformance && LabelsMissing(err, d.model)
}
