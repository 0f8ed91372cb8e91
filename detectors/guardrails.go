package detectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Guardrails answer "is the candidate safe to ship?": a candidate model
// (the shadow role, or a given model_version) against production over a
// period, slice by slice for every slice column of the model: the block
// rate, and recall and precision on matured labels. Each difference
// (candidate less production) comes with its confidence interval; a
// guardrail fails where the difference is significantly beyond its limit
// (the limit is the null hypothesis, as the effect-size gate of the
// detectors), with every p-value of the run through Benjamini–Hochberg so
// that thirty countries do not make one fail by chance. Like a detector,
// the whole report is ONE pushed-down aggregation: per slice and model,
// counts of rows, blocks and, joined by request id to the labels, matured
// labelled rows, fraud, labelled blocks and caught fraud.

// CandidateShadow names the shadow role as the candidate.
const CandidateShadow = "shadow"

// Verdicts of a guardrail report, which are `mlwatch guardrails`' exit codes.
const (
	VerdictShip          = "ship"            // exit 0
	VerdictFail          = "fail"            // exit 1: a guardrail fails
	VerdictNotEnoughData = "not_enough_data" // exit 2
)

// Statuses of one guardrail check.
const (
	CheckPass    = "pass"
	CheckFail    = "fail"
	CheckSkipped = "skipped"
	// CheckExplained is a check beyond its limit only through another
	// failed check's extra events (see attributeGuardrails): listed
	// under that one, not as a failure of its own.
	CheckExplained = "explained"
)

// GuardrailOptions are one guardrails run.
type GuardrailOptions struct {
	Model *configs.Model
	// Limits are the model's guardrails block (configs.Load fills the
	// defaults); nil uses the defaults.
	Limits *configs.Guardrails
	// From and To bound the predictions compared, [From, To).
	From, To time.Time
	// At is when the labels are read: a prediction counts for recall and
	// precision once it is a maturity older than At, with the labels that
	// arrived within its maturity.
	At time.Time
	// Candidate is CandidateShadow (or empty) for the shadow role, else a
	// model_version: its rows (any role) against the production rows of
	// other versions.
	Candidate string
	// TopK values per slice column (default 50); the rest is OtherSlice.
	TopK int
	// NoLabels leaves the labels out (a missing labels table).
	NoLabels bool
}

// GuardrailCheck is one limit checked on one slice.
type GuardrailCheck struct {
	Slice  map[string]string `json:"slice"`
	Metric string            `json:"metric"`
	// Production and Candidate are the two rates, out of NProduction and
	// NCandidate (rows for the block rate, matured fraud labels for recall,
	// matured labelled blocks for precision).
	Production  float64 `json:"production"`
	Candidate   float64 `json:"candidate"`
	NProduction uint64  `json:"n_production"`
	NCandidate  uint64  `json:"n_candidate"`
	// Diff is Candidate - Production, with its confidence interval.
	Diff float64 `json:"diff"`
	Low  float64 `json:"ci_low"`
	High float64 `json:"ci_high"`
	// Limit is the bound Diff must keep: at most +max_block_rate_rise, at
	// least -max_recall_drop / -max_precision_drop.
	Limit  float64 `json:"limit"`
	PValue float64 `json:"p_value"`
	Status string  `json:"status"`
	// Reason says why a check failed or was skipped.
	Reason string `json:"reason,omitempty"`
	// ExplainedBy names the failed check (its slice) whose extra events
	// explain this one's (status explained).
	ExplainedBy string `json:"explained_by,omitempty"`
}

// SliceLabel names the check's slice: "overall" or "column=value".
func (c GuardrailCheck) SliceLabel() string {
	if len(c.Slice) == 0 {
		return "overall"
	}
	keys := make([]string, 0, len(c.Slice))
	for k := range c.Slice {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + c.Slice[k]
	}
	return strings.Join(parts, ",")
}

// GuardrailReport is the answer of one guardrails run.
type GuardrailReport struct {
	Model     string    `json:"model"`
	Candidate string    `json:"candidate"` // "shadow" or "version <v>"
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	At        time.Time `json:"at"`
	Verdict   string    `json:"verdict"`
	// ExitCode is the verdict as `mlwatch guardrails` exits: 0 ship, 1
	// fail, 2 not enough data.
	ExitCode int `json:"exit_code"`
	// Failed names the slices (and metrics) whose guardrail failed, one
	// line per cause: a check another failed check explains is named on
	// that one's line ("also moves overall and 7 merchant_category
	// slices"), not on a line of its own. Missing says what data a
	// decision lacks.
	Failed  []string `json:"failed"`
	Missing []string `json:"missing"`
	// Labels says what the decision rests on: "matured labels" or why
	// block rates alone decided.
	Labels string `json:"labels"`
	// MaturedShare is the share of the period's production rows old enough
	// to count (a maturity before At); LabelCoverage the share of those
	// with a label.
	MaturedShare  float64          `json:"matured_share"`
	LabelCoverage float64          `json:"label_coverage"`
	Limits        GuardrailLimits  `json:"limits"`
	Checks        []GuardrailCheck `json:"checks"`
	Query         string           `json:"query"`
}

// GuardrailLimits are the limits a report applied.
type GuardrailLimits struct {
	MinSamples       int      `json:"min_samples"`
	MinLabeled       int      `json:"min_labeled"`
	MaxBlockRateRise float64  `json:"max_block_rate_rise"`
	MaxRecallDrop    float64  `json:"max_recall_drop"`
	MaxPrecisionDrop *float64 `json:"max_precision_drop"`
	FDR              float64  `json:"fdr"`
	Confidence       float64  `json:"confidence"`
	Maturity         string   `json:"maturity,omitempty"`
}

// guardrailCols are the query's result columns after sc, sv, w (0
// production, 1 candidate): rows with a valid decision n, blocked b,
// matured m, matured and labelled l, labelled fraud f, labelled blocks
// lb, caught fraud tp.
var guardrailCols = []string{"n", "b", "m", "l", "f", "lb", "tp"}

// guardrailLimits fills defaults for a model without a guardrails block.
func guardrailLimits(g *configs.Guardrails) GuardrailLimits {
	l := GuardrailLimits{MinSamples: 1000, MinLabeled: 50, MaxBlockRateRise: 0.005, FDR: 0.05, Confidence: 0.95}
	if g == nil {
		return l
	}
	if g.MinSamples > 0 {
		l.MinSamples = g.MinSamples
	}
	if g.MinLabeled > 0 {
		l.MinLabeled = g.MinLabeled
	}
	if g.MaxBlockRateRise != nil {
		l.MaxBlockRateRise = *g.MaxBlockRateRise
	}
	if g.MaxRecallDrop != nil {
		l.MaxRecallDrop = *g.MaxRecallDrop
	}
	l.MaxPrecisionDrop = g.MaxPrecisionDrop
	if g.FDR > 0 {
		l.FDR = g.FDR
	}
	if g.Confidence > 0 {
		l.Confidence = g.Confidence
	}
	return l
}

// ErrGuardrailUsage marks a run that cannot be asked (no shadow to
// compare, an empty period): the caller's mistake, not the data's.
var ErrGuardrailUsage = errors.New("guardrails")

func (o *GuardrailOptions) check() error {
	if o.Model == nil {
		return fmt.Errorf("%w: no model", ErrGuardrailUsage)
	}
	if !o.To.After(o.From) {
		return fmt.Errorf("%w: --to %s is not after --from %s", ErrGuardrailUsage, o.To.Format(time.RFC3339), o.From.Format(time.RFC3339))
	}
	if (o.Candidate == "" || o.Candidate == CandidateShadow) && o.Model.Shadow.Mode == configs.ShadowNone {
		return fmt.Errorf("%w: model %s has no shadow (models[].shadow.mode is none): name a candidate model_version", ErrGuardrailUsage, o.Model.Name)
	}
	return nil
}

func (o *GuardrailOptions) shadow() bool { return o.Candidate == "" || o.Candidate == CandidateShadow }

func (o *GuardrailOptions) labels() *configs.Labels {
	if o.NoLabels {
		return nil
	}
	return o.Model.Labels
}

func (o *GuardrailOptions) src() source {
	k := o.TopK
	if k <= 0 {
		k = 50
	}
	return source{d: &configs.Detector{TopK: k}, m: o.Model, table: store.ParseTable(o.Model.Table).Quoted()}
}

// GuardrailQuery renders the one aggregation of a guardrails run.
func GuardrailQuery(o GuardrailOptions) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	return guardrailQuery(o).bind()
}

func guardrailQuery(o GuardrailOptions) *sqlText {
	s := o.src()
	m := o.Model
	c := m.Columns
	slices := m.Slices
	from, to := o.From.UTC().Truncate(time.Second), o.To.UTC().Truncate(time.Second)
	at := o.At.UTC().Truncate(time.Second)
	l := o.labels()
	ok := fmt.Sprintf("_dec < %d", decInvalid)
	aggs := []string{"countIf(" + ok + ")", "countIf(_dec = 1)", "countIf(" + ok + " AND _mat)", "countIf(" + ok + " AND _ok)",
		"countIf(" + ok + " AND _ok AND _y = 1)", "countIf(_ok AND _dec = 1)", "countIf(_ok AND _y = 1 AND _dec = 1)"}
	inner := &sqlText{}
	sliceSelect(inner, slices, "w", guardrailCols, aggs)
	inner.add("\n    FROM (\n      SELECT _g AS w, _dec, ")
	var maturity time.Duration
	if l != nil {
		maturity = l.Maturity.D()
	}
	inner.add("_ts < ? AS _mat, ", at.Add(-maturity))
	if l != nil {
		inner.add(fmt.Sprintf("_y, _mat AND _lab = 1 AND toUInt32(_lat) < toUInt32(_ts) + %d AS _ok", int64(maturity.Seconds())))
	} else {
		inner.add("toUInt8(0) AS _y, 0 AS _ok")
	}
	for i := range slices {
		inner.add(fmt.Sprintf(", _c%d", i))
	}
	inner.add("\n      FROM (\n        SELECT ")
	if o.shadow() {
		columns(inner, s.roles())
		inner.add(", _role AS _g")
	} else {
		inner.add(decision(s.col(c.Decision)) + " AS _dec, ")
		if m.Shadow.Mode == configs.ShadowRows {
			inner.add("multiIf("+s.col(c.ModelVersion)+" = ?, 1, "+s.col(c.Role)+" = ?, 0, 2) AS _g", o.Candidate, m.Shadow.ProductionRole)
		} else {
			inner.add("if("+s.col(c.ModelVersion)+" = ?, 1, 0) AS _g", o.Candidate)
		}
	}
	inner.add(", " + s.ts() + " AS _ts, " + s.col(c.RequestID) + " AS _id")
	s.sliceValues(inner, slices)
	inner.add("\n        FROM " + s.table + "\n       ")
	s.filter(inner, []span{{from, to}}, true)
	if l != nil {
		inner.add("\n      ) AS p\n      ANY LEFT JOIN (\n        ")
		end := to.Add(maturity)
		if end.After(at) {
			end = at
		}
		labelSource(inner, s, l, from, end)
		inner.add("\n      ) AS l USING _id\n      WHERE _g < 2\n    )\n    GROUP BY _si, sv, w")
	} else {
		inner.add("\n      ) AS p\n      WHERE _g < 2\n    )\n    GROUP BY _si, sv, w")
	}
	return s.ranked(inner, false, guardrailCols, "n")
}

// RunGuardrails runs the guardrails' one query and decides.
func RunGuardrails(ctx context.Context, db Querier, o GuardrailOptions) (*GuardrailReport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	text, err := guardrailQuery(o).bind()
	if err != nil {
		return nil, fmt.Errorf("guardrails %s: %w", o.Model.Name, err)
	}
	res, err := db.Query(ctx, text)
	if err != nil {
		return &GuardrailReport{Model: o.Model.Name, Query: text}, fmt.Errorf("guardrails %s: query: %w", o.Model.Name, err)
	}
	r, err := decideGuardrails(res, o)
	if r != nil {
		r.Query = text
	}
	return r, err
}

// LabelsMissing reports whether err is the labels table of m being absent
// (unknown table or database naming it): the caller may run again with
// NoLabels and say so.
func LabelsMissing(err error, m *configs.Model) bool {
	if m == nil || m.Labels == nil || m.Labels.Table == "" {
		return false
	}
	if !errors.Is(err, store.ErrUnknownTable) && !errors.Is(err, store.ErrUnknownDatabase) {
		return false
	}
	return strings.Contains(err.Error(), store.ParseTable(m.LabelsTable()).Name)
}

func decideGuardrails(res *store.Result, o GuardrailOptions) (*GuardrailReport, error) {
	lim := guardrailLimits(o.Limits)
	l := o.labels()
	if l != nil {
		lim.Maturity = configs.FormatDuration(l.Maturity.D())
	}
	cand := CandidateShadow
	if !o.shadow() {
		cand = "version " + o.Candidate
	}
	r := &GuardrailReport{Model: o.Model.Name, Candidate: cand, From: o.From.UTC(), To: o.To.UTC(), At: o.At.UTC(),
		Limits: lim, Failed: []string{}, Missing: []string{}, Checks: []GuardrailCheck{}}
	groups, c, err := readGroups(res, "", foldSpec{sums: guardrailCols}, o.src().d.TopK, guardrailCols...)
	if err != nil {
		return nil, err
	}
	gc := guardrailColumns{n: c[0], b: c[1], mat: c[2], lab: c[3], f: c[4], lb: c[5], tp: c[6]}
	agg := aggregateGroup(groups)
	guardrailCoverage(r, agg, gc, cand, o, l)
	ps, idx := runGuardrailChecks(r, groups, guardrailSpecs(lim, gc, l == nil), normalQuantile(0.5+lim.Confidence/2))
	failGuardrailChecks(r, ps, idx)
	attributeGuardrails(r, idx)
	guardrailVerdict(r)
	return r, nil
}

// guardrailColumns are the columns of a guardrail query (guardrailCols):
// rows, blocks, matured rows, labelled rows, fraud labels, labelled blocks
// and true positives, each per window (0 production, 1 the candidate).
type guardrailColumns struct{ n, b, mat, lab, f, lb, tp col }

// aggregateGroup is the group of all rows (an empty one when there are
// none).
func aggregateGroup(groups []*group) *group {
	var agg *group
	for _, g := range groups {
		if g.col == "" {
			agg = g
		}
	}
	if agg == nil {
		agg = &group{byW: map[int][]any{}}
	}
	return agg
}

// guardrailCoverage notes what the decision lacks (too few rows) and what
// it can say about labels: matured share, label coverage and the Labels
// sentence.
func guardrailCoverage(r *GuardrailReport, agg *group, c guardrailColumns, cand string, o GuardrailOptions, l *configs.Labels) {
	lim := r.Limits
	if np, nc := agg.num(0, c.n), agg.num(1, c.n); np < float64(lim.MinSamples) || nc < float64(lim.MinSamples) {
		r.Missing = append(r.Missing, fmt.Sprintf("block rate: production has %s rows and the candidate (%s) %s in %s .. %s; a decision needs %s of each (guardrails.min_samples)",
			count(np), cand, count(nc), r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), count(float64(lim.MinSamples))))
	}
	if np := agg.num(0, c.n); np > 0 {
		r.MaturedShare = agg.num(0, c.mat) / np
	}
	if m := agg.num(0, c.mat); m > 0 {
		r.LabelCoverage = agg.num(0, c.lab) / m
	}
	fraud := math.Min(agg.num(0, c.f), agg.num(1, c.f))
	switch {
	case o.Model.Labels == nil:
		r.Labels = "no labels configured (models[].labels): decided on block rates alone"
	case l == nil:
		r.Labels = fmt.Sprintf("labels table %s is missing: decided on block rates alone", o.Model.LabelsTable())
	case agg.num(0, c.mat) == 0:
		r.Labels = fmt.Sprintf("no matured predictions (a prediction matures %s after it was made, none in the period is older than %s): decided on block rates alone",
			lim.Maturity, r.At.Add(-l.Maturity.D()).Format(time.RFC3339))
	case fraud < float64(lim.MinLabeled):
		r.Labels = fmt.Sprintf("only %s matured fraud labels (guardrails.min_labeled %d; label coverage %s of %s matured rows): decided on block rates alone",
			count(fraud), lim.MinLabeled, pct(r.LabelCoverage), pct(r.MaturedShare))
	default:
		r.Labels = fmt.Sprintf("matured labels: %s of the period's rows are older than the %s maturity, %s of those are labelled (%s fraud)",
			pct(r.MaturedShare), lim.Maturity, pct(r.LabelCoverage), count(agg.num(0, c.f)))
	}
}

// guardrailSpec is one guardrail: a rate x/d whose candidate change must
// stay within limit.
type guardrailSpec struct {
	metric   string
	x, d     col
	min      float64
	limit    float64
	tail     Tail
	what     string
	disabled bool
}

// guardrailSpecs are the guardrails checked, in order: block rate, recall
// and, when limited, precision (the label ones off without labels).
func guardrailSpecs(lim GuardrailLimits, c guardrailColumns, noLabels bool) []guardrailSpec {
	specs := []guardrailSpec{
		{MetricBlockRate, c.b, c.n, float64(lim.MinSamples), lim.MaxBlockRateRise, TailUp, "rows", false},
		{MetricRecall, c.tp, c.f, float64(lim.MinLabeled), -lim.MaxRecallDrop, TailDown, "matured fraud labels", noLabels},
	}
	if lim.MaxPrecisionDrop != nil {
		specs = append(specs, guardrailSpec{MetricPrecision, c.tp, c.lb, float64(lim.MinLabeled), -*lim.MaxPrecisionDrop, TailDown, "matured labelled blocks", noLabels})
	}
	return specs
}

// runGuardrailChecks adds every group's check of every guardrail to r,
// skipped or passing; it returns the tested checks' p-values and their
// indices in r.Checks.
func runGuardrailChecks(r *GuardrailReport, groups []*group, specs []guardrailSpec, z float64) (ps []float64, idx []int) {
	for _, g := range groups {
		for _, sp := range specs {
			if sp.disabled {
				continue
			}
			prod := Prop{g.num(0, sp.x), g.num(0, sp.d)}
			cd := Prop{g.num(1, sp.x), g.num(1, sp.d)}
			ck := GuardrailCheck{Slice: sliceOf(g.col, g.val), Metric: sp.metric, Production: prod.Rate(), Candidate: cd.Rate(),
				NProduction: uint64(prod.N), NCandidate: uint64(cd.N), Limit: sp.limit, PValue: math.NaN(),
				Diff: math.NaN(), Low: math.NaN(), High: math.NaN()}
			if prod.N < sp.min || cd.N < sp.min {
				ck.Status = CheckSkipped
				ck.Reason = fmt.Sprintf("%s production and %s candidate %s, below %s", count(prod.N), count(cd.N), sp.what, count(sp.min))
				r.Checks = append(r.Checks, ck)
				continue
			}
			ck.Diff, ck.Low, ck.High = diffInterval(cd, prod, z)
			// The limit is the null: "significant" means significantly
			// beyond it. A candidate is compared with production as the
			// baseline (its own sampling error counted once each).
			ck.PValue = ChangeTest(cd, prod, Change{Margin: math.Abs(sp.limit), Tail: sp.tail})
			ck.Status = CheckPass
			r.Checks = append(r.Checks, ck)
			ps = append(ps, ck.PValue)
			idx = append(idx, len(r.Checks)-1)
		}
	}
	return ps, idx
}

// failGuardrailChecks fails the tested checks that Benjamini-Hochberg
// rejects at the report's FDR (attributeGuardrails lists them in Failed).
func failGuardrailChecks(r *GuardrailReport, ps []float64, idx []int) {
	lim := r.Limits
	for i, rej := range BH(ps, lim.FDR) {
		ck := &r.Checks[idx[i]]
		if !rej {
			continue
		}
		ck.Status = CheckFail
		dir := "rises"
		if ck.Diff < 0 {
			dir = "drops"
		}
		ck.Reason = fmt.Sprintf("%s %s by %s points (%s vs %s, %.0f%% CI %s .. %s; limit %s)", strings.ReplaceAll(ck.Metric, "_", " "), dir,
			points(math.Abs(ck.Diff)), pct(ck.Candidate), pct(ck.Production), 100*lim.Confidence, points(ck.Low), points(ck.High), SignedPoints(ck.Limit))
	}
}

// attributeGuardrails gives the gate the attribution the alerts have
// (attribute.go): a candidate that blocks 80% of one small country lifts
// the overall block rate and every merchant category's by the same extra
// blocks, beyond the half-point limit in each. A failed block-rate check
// whose excess another column's failed slices explain (byOtherColumn:
// what is left of it, once theirs is taken out, is within the limit or
// within noise), or that moved with a broad failure of the overall
// (broadMove), is marked explained and named on its root's line of
// Failed; its figures stay in Checks. The limit plays the effect-size
// gate's part, the gate's FDR the detector's. Recall and precision are
// not attributed: their events (fraud caught) are few and a drop in one
// slice is each slice's own news. Then Failed lists the roots, in the
// order of Checks.
func attributeGuardrails(r *GuardrailReport, idx []int) {
	// The overall, too, is explained when what is left of its rise is
	// within the limit: the gate asks about the limit, not about noise.
	ar := &run{d: &Detector{cfg: &configs.Detector{FDR: r.Limits.FDR, MinAbsChange: r.Limits.MaxBlockRateRise}}, gateAggregate: true}
	checkOf, hypOf := map[*hypothesis]int{}, map[int]*hypothesis{}
	for _, i := range idx {
		ck := r.Checks[i]
		if ck.Metric != MetricBlockRate {
			continue
		}
		h := newHyp(ck.Metric, ck.Slice, "", ClassModelBehavior)
		h.Value, h.Baseline, h.NCurrent, h.NBaseline = ck.Candidate, ck.Production, ck.NCandidate, ck.NProduction
		h.Firing = ck.Status == CheckFail
		ar.hyps = append(ar.hyps, h)
		checkOf[h], hypOf[i] = i, h
	}
	at := ar.rateAttribution()
	for _, rule := range rateRules {
		for _, k := range at.keys {
			rule.apply(at, k, at.groups[k])
		}
	}
	also := map[int][]*hypothesis{}
	for _, h := range ar.hyps {
		by := at.explainedBy[h]
		for i := 0; i < len(ar.hyps) && by != nil && at.explainedBy[by] != nil; i++ {
			by = at.explainedBy[by] // the root of a chain
		}
		if by == nil {
			continue
		}
		root := checkOf[by]
		ck := &r.Checks[checkOf[h]]
		ck.Status, ck.ExplainedBy = CheckExplained, r.Checks[root].SliceLabel()
		ck.Reason += "; explained by " + ck.ExplainedBy
		also[root] = append(also[root], h)
	}
	for i, ck := range r.Checks {
		if ck.Status != CheckFail {
			continue
		}
		line := ck.SliceLabel() + ": " + ck.Reason
		if hs := also[i]; len(hs) > 0 {
			line += "; " + explainsText(hypOf[i], hs)
		}
		r.Failed = append(r.Failed, line)
	}
}

// guardrailVerdict: fail on a failed check, not enough data on a missing
// one, ship otherwise.
func guardrailVerdict(r *GuardrailReport) {
	switch {
	case len(r.Failed) > 0:
		r.Verdict, r.ExitCode = VerdictFail, 1
	case len(r.Missing) > 0:
		r.Verdict, r.ExitCode = VerdictNotEnoughData, 2
	default:
		r.Verdict, r.ExitCode = VerdictShip, 0
	}
}

// diffInterval is a - b with its Agresti–Caffo interval (one success and
// one failure added to each sample: it keeps its coverage for rare events
// and small slices where the plain Wald interval is too narrow).
func diffInterval(a, b Prop, z float64) (diff, low, high float64) {
	diff = a.Rate() - b.Rate()
	pa, pb := (a.X+1)/(a.N+2), (b.X+1)/(b.N+2)
	d := pa - pb
	se := math.Sqrt(pa*(1-pa)/(a.N+2) + pb*(1-pb)/(b.N+2))
	return diff, math.Max(-1, d-z*se), math.Min(1, d+z*se)
}

// normalQuantile is the standard normal's quantile (bisection on its
// survival function: a handful of calls per report).
func normalQuantile(p float64) float64 {
	lo, hi := -10.0, 10.0
	for i := 0; i < 100; i++ {
		mid := (lo + hi) / 2
		if 1-normalSF(mid) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// points renders a rate difference in percentage points.
func points(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", 100*x)
}

// SignedPoints renders a limit or difference in percentage points with
// its sign: "+0.00", never "-0.00", for a limit of "may not drop".
func SignedPoints(x float64) string {
	if x == 0 {
		x = 0
	}
	if x >= 0 {
		return "+" + points(x)
	}
	return points(x)
}

// MarshalJSON writes a check with its slice label and the figures a
// skipped check does not have (NaN) as null: encoding/json refuses NaN.
func (c GuardrailCheck) MarshalJSON() ([]byte, error) {
	num := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return &x
	}
	return json.Marshal(struct {
		Slice       map[string]string `json:"slice"`
		SliceLabel  string            `json:"slice_label"`
		Metric      string            `json:"metric"`
		Production  *float64          `json:"production"`
		Candidate   *float64          `json:"candidate"`
		NProduction uint64            `json:"n_production"`
		NCandidate  uint64            `json:"n_candidate"`
		Diff        *float64          `json:"diff"`
		Low         *float64          `json:"ci_low"`
		High        *float64          `json:"ci_high"`
		Limit       float64           `json:"limit"`
		PValue      *float64          `json:"p_value"`
		Status      string            `json:"status"`
		Reason      string            `json:"reason,omitempty"`
	}{c.Slice, c.SliceLabel(), c.Metric, num(c.Production), num(c.Candidate), c.NProduction, c.NCandidate,
		num(c.Diff), num(c.Low), num(c.High), c.Limit, num(c.PValue), c.Status, c.Reason})
}
