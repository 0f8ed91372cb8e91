package detectors

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// attributable are the rate metrics whose extra events add up across
// slice columns: a blocked request in FR is also a blocked request in its
// merchant category and in the aggregate.
var attributable = map[string]bool{
	MetricBlockRate: true, MetricProdBlocks: true, MetricShadowBlocks: true,
	MetricNullRate: true, MetricFillRate: true,
	// The golden rows' block rate against its bound: the canaries of one
	// country and category fail there, overall and in the category alike.
	MetricExpected: true,
}

// distributional are the metrics that do not add up across slices (PSI):
// a mixture's divergence is at most the traffic-weighted divergence of its
// parts (PSI is convex), which bounds what a root can explain.
var distributional = map[string]bool{MetricScorePSI: true, MetricFeaturePSI: true}

// counted are the count metrics: a total outage moves every slice as it
// moves the aggregate, so the broad-move rule below applies to them (the
// aggregate says it once); their excess is the count's change itself.
var counted = map[string]bool{MetricVolume: true}

// maxCauseShare bounds the traffic share of the slices that may explain
// the aggregate: an explanation must be narrower than what it explains.
const maxCauseShare = 0.5

// concentration: a cause's traffic is rarely spread over another column
// in proportion to that column's traffic (FR shops more in some merchant
// categories, and a model that mis-scores FR blocks the riskiest
// categories first). Without the cross-tab, a slice may take up to this
// many times its proportional share of the explaining excess.
const concentration = 2.0

// broadFactor: in a broad move (the aggregate fires on its own), a slice
// still fires only if its change is more than this many times the
// aggregate's. A broad cause rarely moves every slice alike: a shifted
// score moves risky countries further (a cascade's fallback blocks 31% in
// AR while the aggregate rises to 20%), and a floor of always-blocked
// traffic (canaries) damps the aggregate's relative change.
const broadFactor = 2.0

// attribute keeps the root of a cross-slice move and drops what it
// explains. When a few slices of one column (FR) move a lot, the aggregate
// and the slices of other columns (every merchant category) move too, by
// the same extra events; paging for each of them says nothing new. A
// firing hypothesis is explained by another column's firing slices that
// moved the same way when what is left of its excess, once theirs is taken
// out, is below the effect-size gate or within two standard deviations of
// noise (the baseline's events, and the random split of the explaining
// excess across the column):
//   - the aggregate, by slices covering at most half of the traffic;
//   - a slice, by slices whose relative change is larger than its own,
//     their excess taken in proportion to its share of the traffic, up
//     to concentration times as much.
//
// In a broad move the aggregate stays and the slices that moved like it
// go. Hypotheses are decided from the largest relative change down, the
// aggregate last, and only a hypothesis that stays can explain another:
// FR's spill into digital goods cannot in turn explain away BR's own
// surge there. The explaining slice's summary says what else it moved.
func (r *run) attribute() {
	at := r.rateAttribution()
	for _, rule := range rateRules {
		for _, k := range at.keys {
			rule.apply(at, k, at.groups[k])
		}
	}
	r.attributeDistributions(at.explainedBy)
	r.noteExplained(at.explainedBy)
}

// attrKey is one metric of one feature: hypotheses explain each other
// only within it.
type attrKey struct{ metric, feature string }

// attribution is a run's attribution in progress: the firing hypotheses
// of each attributable metric, the aggregate's rows, and what explains
// what so far.
type attribution struct {
	r           *run
	keys        []attrKey // sorted: rules walk them in a stable order
	groups      map[attrKey][]*hypothesis
	total       map[attrKey]float64
	explainedBy map[*hypothesis]*hypothesis
}

// attrRule is one named attribution rule, applied to one metric's firing
// hypotheses.
type attrRule struct {
	name  string
	apply func(at *attribution, k attrKey, hs []*hypothesis)
}

// rateRules are attribute's rules, in the order they apply: a rule only
// sees what the earlier ones left unexplained.
var rateRules = []attrRule{
	{"explained by another column's slices", (*attribution).byOtherColumn},
	{"a broad move", (*attribution).broadMove},
	{"moved by thin slices", (*attribution).byThinSlices},
}

// rateAttribution collects the firing hypotheses of the attributable and
// counted metrics, by metric and feature.
func (r *run) rateAttribution() *attribution {
	at := &attribution{r: r, groups: map[attrKey][]*hypothesis{}, total: map[attrKey]float64{}, explainedBy: map[*hypothesis]*hypothesis{}}
	for _, h := range r.hyps {
		if !attributable[h.Metric] && !counted[h.Metric] || math.IsNaN(h.Value) || math.IsNaN(h.Baseline) {
			continue
		}
		k := attrKey{h.Metric, h.Feature}
		if len(h.Slice) == 0 {
			at.total[k] = float64(h.NCurrent)
		}
		if h.Firing {
			at.groups[k] = append(at.groups[k], h)
		}
	}
	// Groups and columns are walked in a stable order: which slice a
	// hypothesis is explained by, and so the root's summary, must not
	// depend on map order.
	at.keys = make([]attrKey, 0, len(at.groups))
	for k := range at.groups {
		at.keys = append(at.keys, k)
	}
	sort.Slice(at.keys, func(i, j int) bool {
		if at.keys[i].metric != at.keys[j].metric {
			return at.keys[i].metric < at.keys[j].metric
		}
		return at.keys[i].feature < at.keys[j].feature
	})
	return at
}

// excessOf is a hypothesis's extra events: the rate's change times the
// requests, or a count's change.
func excessOf(h *hypothesis) float64 {
	if counted[h.Metric] {
		return h.Value - h.Baseline
	}
	return (h.Value - h.Baseline) * float64(h.NCurrent)
}

// relOf is a hypothesis's relative change.
func relOf(h *hypothesis) float64 { return relChange(h.Value, h.Baseline) }

// columnOf is the slice column of a hypothesis ("" for the aggregate).
func columnOf(h *hypothesis) string {
	for c := range h.Slice {
		return c
	}
	return ""
}

// byColumn groups hypotheses by their slice column (the aggregate in
// none), with the columns sorted.
func byColumn(hs []*hypothesis) (map[string][]*hypothesis, []string) {
	byCol := map[string][]*hypothesis{}
	var cols []string
	for _, h := range hs {
		if c := columnOf(h); c != "" {
			if byCol[c] == nil {
				cols = append(cols, c)
			}
			byCol[c] = append(byCol[c], h)
		}
	}
	sort.Strings(cols)
	return byCol, cols
}

// byOtherColumn: a hypothesis is explained by another column's firing
// slices that moved the same way, larger, when what is left of its
// excess once theirs is taken out is within noise (within). Hypotheses
// are decided from the largest relative change down, the aggregate last.
func (at *attribution) byOtherColumn(k attrKey, hs []*hypothesis) {
	if counted[k.metric] {
		return // broad moves only
	}
	n := at.total[k]
	byCol, colNames := byColumn(hs)
	if n == 0 { // no aggregate: the largest column total stands in
		for _, col := range colNames {
			s := 0.0
			for _, h := range byCol[col] {
				s += float64(h.NCurrent)
			}
			n = math.Max(n, s)
		}
	}
	if n == 0 {
		return
	}
	order := append([]*hypothesis(nil), hs...)
	sort.SliceStable(order, func(i, j int) bool {
		ai, aj := len(order[i].Slice) == 0, len(order[j].Slice) == 0
		if ai != aj {
			return aj
		}
		return relOf(order[i]) > relOf(order[j])
	})
	for _, h := range order {
		eh := excessOf(h)
		if eh == 0 {
			continue
		}
		for _, col := range colNames {
			if col == columnOf(h) {
				continue
			}
			if by := at.explainingSet(h, eh, byCol[col], n); by != nil {
				at.explainedBy[h] = by
				break
			}
		}
	}
}

// explainingSet returns the slice of one column that explains h (the
// one with the largest excess of the set that does), or nil.
func (at *attribution) explainingSet(h *hypothesis, eh float64, cands []*hypothesis, n float64) *hypothesis {
	var set []*hypothesis
	var covered, eset, maxRel, maxAbs float64
	for _, c := range cands {
		if math.Signbit(excessOf(c)) != math.Signbit(eh) || at.explainedBy[c] != nil {
			continue
		}
		set = append(set, c)
		covered += float64(c.NCurrent)
		eset += excessOf(c)
		maxRel = math.Max(maxRel, relOf(c))
		maxAbs = math.Max(maxAbs, math.Abs(c.Value-c.Baseline))
	}
	if len(set) == 0 {
		return nil
	}
	// The explaining slices must be the more concentrated move:
	// larger relatively or absolutely (a category block lifts a
	// low-risk country from 0.1% to 4.8%, a larger relative move
	// than the category's own 1.2% to 36%).
	if len(h.Slice) == 0 && covered/n > maxCauseShare || len(h.Slice) > 0 && maxRel <= relOf(h) && maxAbs <= math.Abs(h.Value-h.Baseline) {
		return nil
	}
	if !at.r.within(h, eh, eset, n) {
		return nil
	}
	sort.SliceStable(set, func(i, j int) bool { return math.Abs(excessOf(set[i])) > math.Abs(excessOf(set[j])) })
	return set[0]
}

// broadMove: the aggregate fires and nothing narrower explains it;
// slices that moved with it are that same move, seen through a narrower
// window. Plainly so when they moved no more than broadFactor times it
// (withBroad): relatively (a model that triples its blocks everywhere)
// or absolutely (a shadow that flips a fifth of all decisions adds the
// same share to every slice, whatever its baseline). A rate slice that
// moved further stays only when that is significantly beyond the bound
// (BroadBeyond, Benjamini–Hochberg at the detector's fdr over those
// slices): a small country's 18 blocks where the rollout predicts 13 are
// noise on the rollout, not an incident of its own; FR blocking half its
// traffic during it is one.
func (at *attribution) broadMove(_ attrKey, hs []*hypothesis) {
	var agg *hypothesis
	for _, h := range hs {
		if len(h.Slice) == 0 {
			agg = h
		}
	}
	if agg == nil || at.explainedBy[agg] != nil || excessOf(agg) == 0 {
		return
	}
	var tested []*hypothesis
	var ps []float64
	for _, h := range hs {
		if h == agg || at.explainedBy[h] != nil || math.Signbit(excessOf(h)) != math.Signbit(excessOf(agg)) {
			continue
		}
		if withBroad(h, agg) {
			at.explainedBy[h] = agg
			continue
		}
		if attributable[h.Metric] {
			tested = append(tested, h)
			ps = append(ps, BroadBeyond(rateMove(h), relOf(agg), agg.Value-agg.Baseline))
		}
	}
	beyond := BH(ps, at.r.d.cfg.FDR)
	for i, h := range tested {
		if !beyond[i] && !math.IsNaN(ps[i]) {
			at.explainedBy[h] = agg
		}
	}
}

// byThinSlices: a slice too small to test explains no firing hypothesis
// on its own (that would silence an incident nobody else reports), but
// while the aggregate fires (and names it, see thinText) the other
// columns' slices it moved are the aggregate's move: FR at night, under
// min_samples, must not page for every merchant category.
func (at *attribution) byThinSlices(k attrKey, hs []*hypothesis) {
	var agg *hypothesis
	for _, h := range hs {
		if len(h.Slice) == 0 && at.explainedBy[h] == nil {
			agg = h
		}
	}
	if agg == nil || counted[k.metric] || len(at.r.thin) == 0 {
		return
	}
	for _, h := range hs {
		eh := excessOf(h)
		if h == agg || at.explainedBy[h] != nil || eh == 0 {
			continue
		}
		if at.thinExplains(k, h, eh, agg, hs) {
			at.explainedBy[h] = agg
		}
	}
}

// thinExplains says whether another column's thin slices (with that
// column's firing slices) explain h. Only a column whose thin slices
// hold most of the aggregate's excess counts: a few small merchant
// categories must not explain away BR's own surge.
func (at *attribution) thinExplains(k attrKey, h *hypothesis, eh float64, agg *hypothesis, hs []*hypothesis) bool {
	eset, maxRel := map[string]float64{}, map[string]float64{}
	for _, t := range at.r.thin {
		if t.metric == k.metric && t.feature == k.feature && t.col != columnOf(h) && math.Signbit(t.excess) == math.Signbit(eh) {
			eset[t.col] += t.excess
			maxRel[t.col] = math.Max(maxRel[t.col], t.rel)
		}
	}
	thinCols := make([]string, 0, len(eset))
	for col, e := range eset {
		if math.Abs(e) < math.Abs(excessOf(agg))/2 {
			delete(eset, col)
			continue
		}
		thinCols = append(thinCols, col)
	}
	sort.Strings(thinCols)
	for _, c := range hs {
		if col := columnOf(c); eset[col] != 0 && at.explainedBy[c] == nil && math.Signbit(excessOf(c)) == math.Signbit(eh) {
			eset[col] += excessOf(c)
			maxRel[col] = math.Max(maxRel[col], relOf(c))
		}
	}
	for _, col := range thinCols {
		if e := eset[col]; maxRel[col] > relOf(h) && at.r.within(h, eh, e, at.total[k]) {
			return true
		}
	}
	return false
}

// noteExplained stops explained hypotheses from firing and adds to each
// firing root's summary what it also moved; a firing aggregate's summary
// names the thin slice that holds most of its excess. Notes follow the
// order of the run's hypotheses, so the same input always gives the
// same summaries.
func (r *run) noteExplained(explainedBy map[*hypothesis]*hypothesis) {
	notes := map[*hypothesis][]*hypothesis{}
	var roots []*hypothesis
	for _, h := range r.hyps {
		by := explainedBy[h]
		if by == nil {
			continue
		}
		for i := 0; i < len(r.hyps) && explainedBy[by] != nil; i++ {
			by = explainedBy[by] // the root of a chain
		}
		h.Firing = false
		if notes[by] == nil {
			roots = append(roots, by)
		}
		notes[by] = append(notes[by], h)
	}
	for _, by := range roots {
		if by.Firing {
			by.summary += "; " + explainsText(by, notes[by])
		}
	}
	for _, h := range r.hyps {
		if h.Firing && len(h.Slice) == 0 && attributable[h.Metric] {
			h.summary += r.thinText(h, excessOf(h))
		}
	}
}

// within says whether what is left of h's excess eh, once eset (the
// excess of another column's slices) is taken out, is below the
// effect-size gate or within two standard deviations of noise. All of
// eset falls on the aggregate; on a slice with a share frac of the n
// requests, that share of it, up to concentration times as much. The
// noise is the baseline's own events (Poisson) and, for a slice, the
// random split of eset across the column (binomial).
func (r *run) within(h *hypothesis, eh, eset, n float64) bool {
	nh := float64(h.NCurrent)
	share := eset
	noiseVar := nh * h.Baseline
	if len(h.Slice) > 0 {
		frac := math.Min(nh/n, 1)
		share = eset * math.Min(concentration*frac, 1)
		noiseVar += math.Abs(eset) * frac * (1 - frac)
	}
	residual := eh - share
	if math.Signbit(eh) {
		residual = -residual
	}
	if len(h.Slice) == 0 && !r.gateAggregate {
		// The aggregate: the rest of the traffic must not have moved
		// beyond noise. An effect-size gate would let a few slices that
		// happened to clear it explain away a broad move that the
		// aggregate only just shows (a rollout that doubles every
		// slice's blocks).
		return residual < 2*math.Sqrt(noiseVar)
	}
	return residual < math.Max(r.d.margin(h.Baseline)*nh, 2*math.Sqrt(noiseVar))
}

// relChange is the relative change of v from baseline b (b floored at
// 1e-4, so a rate rising from zero still ranks).
func relChange(v, b float64) float64 { return math.Abs(v-b) / math.Max(b, 1e-4) }

// thinSlice is a slice below min_samples: not tested, but its extra
// events are part of the aggregate's.
type thinSlice struct {
	metric, feature, col, label string
	n, excess, rel              float64
}

// addThin records a slice of group g too small to test, with its
// current and baseline counts of metric's events.
func (r *run) addThin(metric string, g *group, cur, base Prop) {
	if g.col == "" || cur.N == 0 || base.N == 0 {
		return
	}
	r.thin = append(r.thin, thinSlice{metric: metric, col: g.col, label: label(g.col, g.val), n: cur.N,
		excess: (cur.Rate() - base.Rate()) * cur.N, rel: relChange(cur.Rate(), base.Rate())})
}

// thinText names the unchecked slice that holds most of a firing
// aggregate's excess: at night FR may log too few rows to be tested on
// its own while its incident is what moves the aggregate, and the
// triager should see where to look.
func (r *run) thinText(agg *hypothesis, e float64) string {
	var top *thinSlice
	for i := range r.thin {
		t := &r.thin[i]
		if t.metric != agg.Metric || t.feature != agg.Feature || math.Signbit(t.excess) != math.Signbit(e) {
			continue
		}
		if top == nil || math.Abs(t.excess) > math.Abs(top.excess) {
			top = t
		}
	}
	if top == nil || e == 0 || math.IsNaN(e) || math.Abs(top.excess) < math.Abs(e)/2 {
		return ""
	}
	return fmt.Sprintf("; most of it in %s (%s of %s extra; %s rows, too few to test alone)",
		top.label, signed(top.excess), signed(e), count(top.n))
}

// signed renders an event count with its sign: "+104", "-12".
func signed(x float64) string {
	if x < 0 {
		return "-" + count(-x)
	}
	return "+" + count(x)
}

// explainsText says what a root also moved: a few slices by name, more
// by count ("also moves overall, merchant_category retail and grocery and
// 8 country slices"), other metrics by their name ("; score PSI overall
// and in 30 country slices").
func explainsText(root *hypothesis, hs []*hypothesis) string {
	byMetric := map[string][]*hypothesis{}
	var metrics []string
	for _, h := range hs {
		if byMetric[h.Metric] == nil {
			metrics = append(metrics, h.Metric)
		}
		byMetric[h.Metric] = append(byMetric[h.Metric], h)
	}
	sort.SliceStable(metrics, func(i, j int) bool {
		if (metrics[i] == root.Metric) != (metrics[j] == root.Metric) {
			return metrics[i] == root.Metric
		}
		return metrics[i] < metrics[j]
	})
	parts := make([]string, 0, len(metrics))
	for _, m := range metrics {
		var slices []map[string]string
		for _, h := range byMetric[m] {
			slices = append(slices, h.Slice)
		}
		parts = append(parts, metricSlicesText(m, m == root.Metric, slices))
	}
	return "also moves " + strings.Join(parts, "; ")
}

// attributeDistributions explains distribution drift (PSI) as attribute
// explains rates, with PSI's convexity in place of counting events: the
// divergence of a mixture is at most the traffic-weighted divergence of
// its parts, so a root slice R (share n_R/N of the traffic) can move the
// PSI of the aggregate by up to n_R/N of its own, and of a slice of
// another column by up to concentration times that share. Its rules, in
// order (distRules, then the broad move): a slice whose rate (block
// rate, null rate) was explained has its distribution explained by the
// same root; a firing rate of the same slice and class speaks for it; a
// firing PSI is explained when what is left once another column's roots'
// part is taken out is below the alert threshold; and in a broad move
// (the aggregate's PSI fires unexplained) a slice whose PSI rose no more
// than broadFactor times the aggregate's is that move.
func (r *run) attributeDistributions(explainedBy map[*hypothesis]*hypothesis) {
	d := r.distAttribution(explainedBy)
	for _, k := range d.keys {
		if d.total[k] == 0 {
			continue
		}
		d.explainEach(k)
		d.broadDrift(k)
	}
}

// distAttribution is attributeDistributions in progress.
type distAttribution struct {
	attribution
	// rateBy: slice and feature → the root of its explained rate.
	rateBy map[string]*hypothesis
	// rateOf: slice and feature → its firing, unexplained rate.
	rateOf map[string]*hypothesis
}

// distRule is one named rule that may explain one firing PSI: it returns
// the explaining hypothesis, or nil.
type distRule struct {
	name    string
	explain func(d *distAttribution, k attrKey, h *hypothesis) *hypothesis
}

// distRules are tried in order on each firing PSI; the first that
// explains it wins.
var distRules = []distRule{
	{"its rate's root", (*distAttribution).rateRoot},
	{"its slice's firing rate", (*distAttribution).sliceRate},
	{"another column's slices", (*distAttribution).otherColumn},
}

func sliceFeature(h *hypothesis) string { return SliceKey(h.Slice) + "\x00" + h.Feature }

func (r *run) distAttribution(explainedBy map[*hypothesis]*hypothesis) *distAttribution {
	d := &distAttribution{
		attribution: attribution{r: r, groups: map[attrKey][]*hypothesis{}, total: map[attrKey]float64{}, explainedBy: explainedBy},
		rateBy:      map[string]*hypothesis{}, rateOf: map[string]*hypothesis{},
	}
	for _, h := range r.hyps {
		if by := explainedBy[h]; by != nil && attributable[h.Metric] {
			d.rateBy[sliceFeature(h)] = by
		}
	}
	// A firing rate of the same slice and class tells the same story
	// (electronics blocks half its traffic and its scores shift): the
	// alert speaks with the rate, which other detectors' consequences
	// can be weighed against.
	for _, h := range r.hyps {
		if h.Firing && explainedBy[h] == nil && attributable[h.Metric] {
			if k := sliceFeature(h); d.rateOf[k] == nil {
				d.rateOf[k] = h
			}
		}
	}
	// Keys in the order of the run's hypotheses (stable).
	for _, h := range r.hyps {
		if !distributional[h.Metric] || math.IsNaN(h.effect) {
			continue
		}
		k := attrKey{h.Metric, h.Feature}
		if len(h.Slice) == 0 {
			d.total[k] = float64(h.NCurrent)
		}
		if h.Firing && explainedBy[h] == nil {
			if d.groups[k] == nil {
				d.keys = append(d.keys, k)
			}
			d.groups[k] = append(d.groups[k], h)
		}
	}
	return d
}

// explainEach tries distRules on each firing PSI of k, the largest
// effect first, the aggregate last.
func (d *distAttribution) explainEach(k attrKey) {
	order := append([]*hypothesis(nil), d.groups[k]...)
	sort.SliceStable(order, func(i, j int) bool {
		ai, aj := len(order[i].Slice) == 0, len(order[j].Slice) == 0
		if ai != aj {
			return aj
		}
		return order[i].effect > order[j].effect
	})
	for _, h := range order {
		for _, rule := range distRules {
			if by := rule.explain(d, k, h); by != nil {
				d.explainedBy[h] = by
				break
			}
		}
	}
}

// rateRoot: the slice's rate was explained; its distribution is, by the
// same root.
func (d *distAttribution) rateRoot(_ attrKey, h *hypothesis) *hypothesis {
	if by := d.rateBy[sliceFeature(h)]; by != h {
		return by
	}
	return nil
}

// sliceRate: a firing rate of the same slice and class speaks for it.
func (d *distAttribution) sliceRate(_ attrKey, h *hypothesis) *hypothesis {
	if by := d.rateOf[sliceFeature(h)]; by != nil && by.Class == h.Class {
		return by
	}
	return nil
}

// otherColumn: another column's firing PSIs bound h's by convexity; what
// is left must be below the alert threshold. The slice with the largest
// part explains it.
func (d *distAttribution) otherColumn(k attrKey, h *hypothesis) *hypothesis {
	n := d.total[k]
	byCol, cols := byColumn(d.groups[k])
	gate := h.BaselineHigh - h.Baseline
	for _, col := range cols {
		if col == columnOf(h) {
			continue
		}
		var top *hypothesis
		var bound, covered, topPart float64
		for _, c := range byCol[col] {
			if d.explainedBy[c] != nil || c.effect <= 0 {
				continue
			}
			share := float64(c.NCurrent) / n
			if len(h.Slice) > 0 {
				share = math.Min(1, concentration*share)
			}
			part := share * c.effect
			bound += part
			covered += float64(c.NCurrent)
			if top == nil || part > topPart {
				top, topPart = c, part
			}
		}
		if top == nil || len(h.Slice) == 0 && covered/n > maxCauseShare || len(h.Slice) > 0 && top.effect <= h.effect {
			continue
		}
		if h.effect-bound < gate {
			return top
		}
	}
	return nil
}

// broadDrift: the aggregate's PSI fires unexplained; a slice whose PSI
// rose no more than broadFactor times it is that move.
func (d *distAttribution) broadDrift(k attrKey) {
	hs := d.groups[k]
	var agg *hypothesis
	for _, h := range hs {
		if len(h.Slice) == 0 && d.explainedBy[h] == nil {
			agg = h
		}
	}
	if agg == nil {
		return
	}
	for _, h := range hs {
		if h != agg && d.explainedBy[h] == nil && h.effect <= broadFactor*agg.effect {
			d.explainedBy[h] = agg
		}
	}
}

// metricSlicesText names where a metric moved: its slices alone when it is
// the root's own metric ("overall and 8 country slices"), else with the
// metric's name ("score PSI overall and in 30 country slices").
func metricSlicesText(metric string, own bool, slices []map[string]string) string {
	parts := slicesParts(slices)
	if own {
		return andList(parts)
	}
	return MetricText(metric) + " " + withIn(parts)
}

// withIn joins slice names after a metric: "overall and in country FR",
// "in country BR and merchant_category gaming".
func withIn(parts []string) string {
	for i, p := range parts {
		if p != "overall" {
			parts[i] = "in " + p
			break
		}
	}
	return andList(parts)
}

// MovesText is what a root's summary says about the other alerts it
// explains, given each one's metric and slice: the root's own metric
// first, then the others by name ("also moves block rate in 4 country
// slices, divergence overall").
func MovesText(rootMetric string, metrics []string, slices []map[string]string) string {
	var order []string
	by := map[string][]map[string]string{}
	for i, m := range metrics {
		t := MetricText(m)
		if by[t] == nil {
			order = append(order, t)
		}
		by[t] = append(by[t], slices[i])
	}
	own := MetricText(rootMetric)
	sort.SliceStable(order, func(i, j int) bool {
		if (order[i] == own) != (order[j] == own) {
			return order[i] == own
		}
		return order[i] < order[j]
	})
	parts := make([]string, 0, len(order))
	for _, t := range order {
		parts = append(parts, t+" "+withIn(slicesParts(by[t])))
	}
	return "also moves " + strings.Join(parts, ", ")
}

// slicesParts names slices as a summary does: "overall", a few slices of
// a column by value, more by count ("overall", "merchant_category retail
// and grocery", "8 country slices").
func slicesParts(slices []map[string]string) []string {
	overall := false
	perCol := map[string][]string{}
	for _, sl := range slices {
		if len(sl) == 0 {
			overall = true
			continue
		}
		for c, v := range sl {
			perCol[c] = append(perCol[c], label(c, v))
		}
	}
	var parts []string
	if overall {
		parts = append(parts, "overall")
	}
	cols := make([]string, 0, len(perCol))
	for c := range perCol {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	for _, c := range cols {
		vs := perCol[c]
		if len(vs) > maxNamed {
			parts = append(parts, fmt.Sprintf("%d %s slices", len(vs), c))
			continue
		}
		sort.Strings(vs)
		for i, v := range vs {
			vs[i] = strings.TrimPrefix(v, c+" ")
		}
		parts = append(parts, c+" "+andList(vs))
	}
	return parts
}

// metricTexts are the names summaries give metrics.
var metricTexts = map[string]string{
	MetricBlockRate: "block rate", MetricScorePSI: "score PSI", MetricRateBound: "block rate bound",
	MetricBlockedBound: "blocked count", MetricProdBlocks: "divergence", MetricShadowBlocks: "divergence",
	MetricCorrelation: "score correlation", MetricExpected: "golden rows' block rate",
	MetricNullRate: "null rate", MetricFillRate: "default fill", MetricFeaturePSI: "feature PSI",
}

// MetricText is a metric's name in summaries ("score PSI").
func MetricText(metric string) string {
	if t, ok := metricTexts[metric]; ok {
		return t
	}
	return strings.ReplaceAll(metric, "_", " ")
}

// maxNamed: up to this many slices of a column are named, more counted.
const maxNamed = 3

// andList joins "a", "b" and "c" as "a, b and c".
func andList(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}
