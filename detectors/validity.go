package detectors

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/mlwatch/mlwatch/configs"
)

// Data validity. Rows that cannot be what they claim (a decision other
// than 0 and 1, a score that is no probability, a request id that is
// empty or logged twice) are the logging's failure, not the model's: the
// detectors count them in the query they already run (more countIf
// columns, no second scan), leave them out of the model's figures (block
// rate, score PSI, disagreement), and test their share of all rows
// against the baseline with the same statistics as every rate (min
// samples, effect-size gate, seasonal spread, Benjamini–Hochberg). A rise
// is feature_pipeline (infra), reported once per run on the aggregate,
// naming the slice values that hold most of the invalid rows. The model's
// first block_rate detector reports decisions and scores, its first
// shadow detector the request ids.

// reportsValidity says whether detector d reports its model's invalid
// rows: it is the first enabled detector of its kind for its model in the
// config. Every detector leaves invalid rows out of its figures, but one
// says so, so that two block_rate detectors of a model (one per slice
// set, or a rollup twin) do not page twice for the same rows.
func reportsValidity(cfg *configs.Config, d *configs.Detector) bool {
	for i := range cfg.Detectors {
		o := &cfg.Detectors[i]
		if o.Model == d.Model && o.Kind == d.Kind && !o.Disabled {
			return o.Name == d.Name
		}
	}
	return true // d itself is disabled: evaluated by hand, it reports
}

// Metrics of the data-validity checks.
const (
	MetricInvalidDecision    = "invalid_decision_share"
	MetricInvalidScore       = "invalid_score_share"
	MetricEmptyRequestID     = "empty_request_id_share"
	MetricDuplicateRequestID = "duplicate_request_id_share"
)

// validity is one data-validity check: what makes a row invalid (for the
// summary) and how to read a group's invalid rows and all rows in window w.
type validity struct {
	metric string
	what   string // "have a decision outside {0, 1}"
	bad    func(g *group, w int) float64
	rows   func(g *group, w int) float64
}

// check tests whether the share of invalid rows of the aggregate agg rose
// over its baseline. Its sample is every row, valid or not, so a window
// whose rows are all invalid (and whose model figures were skipped for
// lack of valid ones) is measured here all the same.
func (v validity) check(r *run, agg *group, groups []*group) {
	nb := len(r.w.base)
	cur := Prop{v.bad(agg, 0), v.rows(agg, 0)}
	if cur.X == 0 {
		// Nothing invalid now: nothing rose, and a hypothesis that cannot
		// fire would only make Benjamini–Hochberg stricter for the rest.
		return
	}
	days := make([]Prop, nb)
	var base Prop
	for w := 1; w <= nb; w++ {
		days[w-1] = Prop{v.bad(agg, w), v.rows(agg, w)}
		base.X += days[w-1].X
		base.N += days[w-1].N
	}
	// Every row counts here, so a sample this small left the model's own
	// checks of the aggregate skipped (and counted) too.
	if !r.d.enough(cur.N) || !r.d.enough(base.N) {
		return
	}
	h := newHyp(v.metric, map[string]string{}, "", ClassFeaturePipeline)
	pb := base.Rate()
	margin := r.d.margin(pb)
	var spread float64
	if r.w.seasonal {
		spread = SeasonalVar(days)
	}
	h.PValue = ChangeTest(cur, base, Change{Margin: margin, Var: spread, Tail: TailUp})
	h.Value, h.Baseline, h.effect = cur.Rate(), pb, cur.Rate()-pb
	h.BaselineLow = 0
	h.BaselineHigh = math.Min(1, pb+margin+2*math.Sqrt(spread+pb*(1-pb)/cur.N))
	h.NCurrent, h.NBaseline = uint64(cur.N), uint64(base.N)
	h.gate = h.effect >= margin
	h.summary = fmt.Sprintf("logging broke: %s of rows %s (was %s; n=%s vs %s rows)%s; they are left out of the model's figures",
		pct(cur.Rate()), v.what, pct(pb), count(cur.N), count(base.N), v.where(groups, cur.X))
	h.details = details("invalid", cur.X, "baseline_invalid", base.X, "margin", margin)
	r.add(h)
}

// where names, for each slice column, the value holding at least half of
// the current window's invalid rows (total): "; most of them in
// country=FR (93%)". Slice columns cut to their top K include OtherSlice.
func (v validity) where(groups []*group, total float64) string {
	if total <= 0 {
		return ""
	}
	best := map[string]*group{}
	bestX := map[string]float64{}
	for _, g := range groups {
		if g.col == "" {
			continue
		}
		if x := v.bad(g, 0); x > bestX[g.col] {
			best[g.col], bestX[g.col] = g, x
		}
	}
	var parts []string
	for c, g := range best {
		if share := bestX[c] / total; share >= 0.5 {
			parts = append(parts, fmt.Sprintf("%s=%s (%s)", c, g.val, pct(math.Min(1, share))))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return "; most of them in " + strings.Join(parts, ", ")
}
