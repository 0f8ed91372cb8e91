// Package detectors decides, from a model's prediction log in ClickHouse,
// what changed and which team owns it. There is one file per detector
// kind (blockrate.go, featurehealth.go, shadow.go, volume.go with
// freshness, staleness.go, expectation.go, performance.go), listed once in
// kinds.go, and the statistics they share (stats.go).
//
// # API
//
//	d, err := detectors.New(cfg, &cfg.Detectors[i]) // cfg from configs.Load
//	res, err := d.Evaluate(ctx, db, at)              // db: any Querier (*store.DB)
//
// Evaluate runs exactly ONE query (for shadow on a model with
// models[].cluster: the same query on each shard's local table, merged in
// Go; shards.go), with windows ending at `at` less the
// detector's eval_delay (time is always an argument), and returns a
// Result: Findings (what to alert on; Finding.Class → Classes → owner and
// default severity), Evaluations (every hypothesis checked, firing or not,
// the evaluations table's row shape: Result.EvaluationRows with
// EvaluationColumns), Skipped (checks below min_samples), Query (the
// exact SQL text that ran) and Stats. d.Query(at) renders that SQL
// without running it. A Detector holds no state between evaluations.
//
// # Queries
//
// Each query aggregates in ClickHouse and returns current and baseline
// figures for every slice, GROUP BY slice and window w (0 current, i > 0
// the i-th baseline window: the same window i days earlier with a seasonal
// baseline, the preceding span with a previous one); rows are never
// fetched. Cost: the windows' time ranges are the PREWHERE (partition
// pruning and the primary key skip the gaps between seasonal windows;
// wide columns are read only inside them), every column is read once, and
// one parallel aggregation groups rows by (slice number, value, window,
// bin): slices are numbered (expand), not arrays of tuples. Slices are the
// aggregate plus each slice column, cut to the column's top_k values by
// rows with LIMIT BY over the aggregated result (no second scan ranks
// them); every figure is a count or a sum, so the tail beyond top_k,
// OtherSlice, is rebuilt in Go as the aggregate less the kept values
// (fold). NULL and empty values are NullSlice. Distributions travel as
// histograms of exact float bins (the top 15 bits of the float64), so one
// scan serves PSI over baseline deciles of the score and of all features
// on both engines alike (features: one ARRAY JOIN of names and values,
// grouped by name and bin; the row count rides on each row's first
// element). The SQL stays within what ClickHouse 18.16 and 26.x both
// accept (the tests run every query on both: storetest.Engines; the
// golden SQL is in detectors/testdata).
//
// With source: rollup, block_rate, volume and feature_health read the
// model's minute rollup instead (rollup.go; `mlwatch schema apply
// --rollups`), with the same result columns and so the same decisions:
// cost then grows with minutes × slice combinations, not rows.
//
// # Decisions
//
// A slice needs min_samples in both windows. Rates are tested against a
// null of "changed by no more than the effect-size gate" (the larger of
// min_abs_change and min_rel_change × baseline), with the seasonal
// day-to-day spread of the baseline widening the variance; small expected
// counts use exact (beta-)binomial tails instead of the normal one. All
// p-values of one evaluation go through Benjamini–Hochberg at fdr. With
// shadow data the shadow model is the control: a move it shares is
// population_shift, one it does not is model_behavior.
package detectors

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Querier runs one aggregated SELECT and returns its whole result; a
// *store.DB is one. Detectors need nothing else from ClickHouse.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (*store.Result, error)
}

// Detector is one configured check of one model, ready to evaluate at any
// time. It holds no state between evaluations: the alert lifecycle lives
// in the alerts package.
type Detector struct {
	cfg   *configs.Detector
	model *configs.Model
	impl  kind
	// validity: this detector reports its model's invalid rows (see
	// reportsValidity in validity.go).
	validity bool
	// initiator: read the model's Distributed table even when its model
	// is on a cluster (PairOnInitiator).
	initiator atomic.Bool
}

// New prepares the detector d of config cfg (a config that configs.Load
// accepted, so identifiers are valid and defaults are filled).
func New(cfg *configs.Config, d *configs.Detector) (*Detector, error) {
	if d == nil {
		return nil, fmt.Errorf("detectors: nil detector")
	}
	var m *configs.Model
	for i := range cfg.Models {
		if cfg.Models[i].Name == d.Model {
			m = &cfg.Models[i]
		}
	}
	if m == nil {
		return nil, fmt.Errorf("detector %s: unknown model %q", d.Name, d.Model)
	}
	det := &Detector{cfg: d, model: m, validity: reportsValidity(cfg, d)}
	var err error
	if build, ok := kinds[d.Kind]; !ok {
		err = fmt.Errorf("unknown kind %q", d.Kind)
	} else if det.impl, err = build(det); err == nil && d.Source == configs.SourceRollup {
		if _, ok := det.impl.(rollupKind); !ok {
			err = fmt.Errorf("kind %s cannot read a rollup", d.Kind)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("detector %s: %w", d.Name, err)
	}
	return det, nil
}

// Config returns the detector's configuration, for schedules and labels.
func (d *Detector) Config() *configs.Detector { return d.cfg }

// Query renders the exact SQL an evaluation at `at` runs, for `explain`
// and the runs table.
func (d *Detector) Query(at time.Time) (string, error) {
	w := newWindows(d.cfg, at)
	q := d.sql(w)
	if k := d.sharded(); k != nil {
		q = k.shardQuery(w) // the query each shard runs
	}
	sql, err := q.bind()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", d.cfg.Kind, d.cfg.Name, err)
	}
	return sql, nil
}

// sql is the detector's one query for windows w: its kind's raw query, or
// its rollup query with source: rollup.
func (d *Detector) sql(w windows) *sqlText {
	if d.cfg.Source == configs.SourceRollup {
		return d.impl.(rollupKind).rollupQuery(w)
	}
	return d.impl.query(w)
}

// Ranges returns the half-open time ranges [from, to) of the prediction
// table that an evaluation at `at` reads, so a benchmark can build the
// floor (one scan of the same ranges) and operators can see the cost.
func (d *Detector) Ranges(at time.Time) [][2]time.Time {
	var out [][2]time.Time
	for _, sp := range d.impl.spans(newWindows(d.cfg, at)) {
		out = append(out, [2]time.Time{sp.from, sp.to})
	}
	return out
}

// Evaluate runs the detector's one query for windows ending at `at` (less
// eval_delay) and decides its hypotheses. A query error is returned
// wrapped, with the partial Result still carrying the query text.
func (d *Detector) Evaluate(ctx context.Context, q Querier, at time.Time) (*Result, error) {
	w := newWindows(d.cfg, at)
	if k := d.sharded(); k != nil {
		return d.evaluateShards(ctx, q, w, k)
	}
	return d.evaluateSQL(ctx, q, w, d.sql(w))
}

// newResult is an evaluation's Result before its query runs.
func (d *Detector) newResult(w windows) *Result {
	return &Result{
		Detector:    d.cfg.Name,
		Kind:        d.cfg.Kind,
		Model:       d.model.Name,
		At:          w.at,
		WindowStart: w.cur.from,
		WindowEnd:   w.cur.to,
	}
}

// decide decides the hypotheses of rows, the result of the detector's
// query for windows w, into res.
func (d *Detector) decide(res *Result, rows *store.Result, w windows) error {
	res.Stats = rows.Stats
	r := &run{d: d, w: w}
	if err := d.impl.evaluate(rows, r); err != nil {
		return fmt.Errorf("%s %s: %w", d.cfg.Kind, d.cfg.Name, err)
	}
	r.finish(res)
	return nil
}

// evaluateSQL runs query, the detector's query for windows w (raw, rollup
// or incremental), and decides its hypotheses.
func (d *Detector) evaluateSQL(ctx context.Context, q Querier, w windows, query *sqlText) (*Result, error) {
	res := d.newResult(w)
	sql, err := query.bind()
	if err != nil {
		return res, fmt.Errorf("%s %s: %w", d.cfg.Kind, d.cfg.Name, err)
	}
	res.Query = sql
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return res, fmt.Errorf("%s %s: query: %w", d.cfg.Kind, d.cfg.Name, err)
	}
	return res, d.decide(res, rows, w)
}

// Result is everything one evaluation produced: the findings to alert on,
// every hypothesis it checked (for the evaluations table and charts), how
// many it skipped for lack of samples, and the query it ran.
type Result struct {
	Detector string
	Kind     string
	Model    string
	// At is the evaluation time; [WindowStart, WindowEnd) the current
	// window (WindowEnd = At - eval_delay).
	At          time.Time
	WindowStart time.Time
	WindowEnd   time.Time

	Findings    []Finding
	Evaluations []Evaluation
	// Skipped counts slice (and feature) checks below min_samples;
	// Unchecked names the slices and features among them, whose alerts
	// should hold rather than resolve.
	Skipped   int
	Unchecked []Unchecked
	// Query is the exact SQL text that ran (values bound).
	Query string
	Stats store.Stats
}

// Evaluation is one checked hypothesis with its figures, firing or not:
// the row shape of the evaluations table (store.Tables.Evaluations).
type Evaluation struct {
	Metric  string            `json:"metric"`
	Slice   map[string]string `json:"slice"` // slice column → value; empty for the aggregate
	Feature string            `json:"feature"`
	Class   Class             `json:"class"` // the class it would alert as
	Value   float64           `json:"value"`
	// Baseline is the comparison figure; BaselineLow/High bound the band
	// inside which the value does not alert (NaN where there is none).
	Baseline     float64 `json:"baseline"`
	BaselineLow  float64 `json:"baseline_low"`
	BaselineHigh float64 `json:"baseline_high"`
	ShadowValue  float64 `json:"shadow_value"` // NaN without shadow figures
	PValue       float64 `json:"p_value"`      // NaN where no test applies
	NCurrent     uint64  `json:"n_current"`
	NBaseline    uint64  `json:"n_baseline"`
	Firing       bool    `json:"firing"`
}

// EvaluationsTable is the evaluations table (store.Tables.Evaluations),
// one row per decision a detector made: the figures behind every finding
// and every checked slice, for charts and backtests.
var EvaluationsTable = store.TableDef{
	Columns: [][2]string{
		{"at", "DateTime"},
		{"detector", "String"},
		{"kind", "String"},
		{"model", "String"},
		{"metric", "String"},
		{"slice", "String"}, // canonical JSON of slice column → value; "{}" for aggregate
		{"feature", "String"},
		{"class", "String"},
		{"value", "Float64"},
		{"baseline", "Float64"},
		{"baseline_low", "Float64"},
		{"baseline_high", "Float64"},
		{"shadow_value", "Float64"},
		{"p_value", "Float64"},
		{"n_current", "UInt64"},
		{"n_baseline", "UInt64"},
		{"firing", "UInt8"},
		{"source", "String"}, // run | backtest
	},
	Engine: "MergeTree PARTITION BY toYYYYMMDD(at) ORDER BY (detector, metric, at)",
}

// EvaluationColumns are the evaluations table's columns in the order of
// Result.EvaluationRows.
var EvaluationColumns = EvaluationsTable.ColumnNames()

// EvaluationRows renders the evaluations as rows for store.Insert into the
// evaluations table; source is "run" or "backtest".
func (r *Result) EvaluationRows(source string) [][]any {
	rows := make([][]any, 0, len(r.Evaluations))
	for _, e := range r.Evaluations {
		firing := uint8(0)
		if e.Firing {
			firing = 1
		}
		rows = append(rows, []any{r.At, r.Detector, r.Kind, r.Model, e.Metric, SliceKey(e.Slice), e.Feature, string(e.Class),
			e.Value, e.Baseline, e.BaselineLow, e.BaselineHigh, e.ShadowValue, e.PValue, e.NCurrent, e.NBaseline, firing, source})
	}
	return rows
}

// hypothesis is one decision of a run: its figures, whether its non-test
// conditions hold (effect size, thresholds), and the finding it becomes.
type hypothesis struct {
	Evaluation
	// gate holds when every condition but the test holds; a hypothesis
	// with a NaN p-value fires on the gate alone.
	gate    bool
	effect  float64
	shadowB float64
	// spread is the baseline's day-to-day variance the change test used
	// (0 without a seasonal baseline): the broad-move test reads it too.
	spread  float64
	summary string
	details map[string]float64
}

// run collects one evaluation's hypotheses and decides them together.
type run struct {
	d         *Detector
	w         windows
	hyps      []*hypothesis
	skipped   int
	unchecked []Unchecked
	// thin are the slices too small to check whose change still counts:
	// when the aggregate fires, its summary names the one holding most of
	// its excess.
	thin []thinSlice
	// suppress, when set, clears Firing of hypotheses another one explains
	// (a fill is not also drift); it runs after the joint decision.
	suppress func(hyps []*hypothesis)
}

func (r *run) add(h *hypothesis) {
	r.hyps = append(r.hyps, h)
}

// skip counts a check below min_samples and names its slice and feature.
func (r *run) skip(slice map[string]string, feature string) {
	r.skipped++
	r.unchecked = append(r.unchecked, Unchecked{Slice: slice, Feature: feature})
}

// finish applies Benjamini–Hochberg at the detector's fdr over every
// tested hypothesis, fires the significant ones whose gate holds (and the
// untested ones whose gate holds), and builds the findings.
func (r *run) finish(res *Result) {
	ps := make([]float64, len(r.hyps))
	for i, h := range r.hyps {
		ps[i] = h.PValue
	}
	rejected := BH(ps, r.d.cfg.FDR)
	for i, h := range r.hyps {
		h.Firing = h.gate && (math.IsNaN(h.PValue) || rejected[i])
	}
	if r.suppress != nil {
		r.suppress(r.hyps)
	}
	r.attribute()
	res.Skipped, res.Unchecked = r.skipped, r.unchecked
	for _, h := range r.hyps {
		res.Evaluations = append(res.Evaluations, h.Evaluation)
		if h.Firing {
			res.Findings = append(res.Findings, r.finding(h))
		}
	}
	sort.SliceStable(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if a.Class != b.Class {
			return a.Class < b.Class
		}
		return len(a.Slice) < len(b.Slice)
	})
}

func (r *run) finding(h *hypothesis) Finding {
	sev := r.d.cfg.Severity
	if sev == "" {
		sev = Classes[h.Class].Severity
	}
	ev := h.Evaluation
	if ev.Slice == nil {
		ev.Slice = map[string]string{}
	}
	return Finding{
		Detector:       r.d.cfg.Name,
		Kind:           r.d.cfg.Kind,
		Severity:       sev,
		Model:          r.d.model.Name,
		Evaluation:     ev,
		Effect:         h.effect,
		ShadowBaseline: h.shadowB,
		Summary:        h.summary,
		WindowStart:    r.w.cur.from,
		WindowEnd:      r.w.cur.to,
		At:             r.w.at,
		Details:        h.details,
	}
}

// shadowMoved records the shadow's rates beside h's and says whether the
// shadow moved the same way by at least share of production's change: the
// population moved, not the model, and h becomes a population shift.
func (h *hypothesis) shadowMoved(scur, sbase Prop, share float64) bool {
	h.ShadowValue, h.shadowB = scur.Rate(), sbase.Rate()
	ds := scur.Rate() - sbase.Rate()
	if ds*h.effect > 0 && math.Abs(ds) >= share*math.Abs(h.effect) {
		h.Class = ClassPopulationShift
		return true
	}
	return false
}

// newHyp starts a hypothesis with every optional figure NaN.
func newHyp(metric string, slice map[string]string, feature string, class Class) *hypothesis {
	nan := math.NaN()
	return &hypothesis{
		Evaluation: Evaluation{
			Metric: metric, Slice: slice, Feature: feature, Class: class,
			Value: nan, Baseline: nan, BaselineLow: nan, BaselineHigh: nan, ShadowValue: nan, PValue: nan,
		},
		effect:  nan,
		shadowB: nan,
	}
}

// margin is the effect-size gate as an absolute change from base: the
// larger of min_abs_change and min_rel_change times the baseline.
func (d *Detector) margin(base float64) float64 {
	return math.Max(d.cfg.MinAbsChange, d.cfg.MinRelChange*base)
}

// enough reports whether a sample meets min_samples.
func (d *Detector) enough(n float64) bool { return n >= float64(d.cfg.MinSamples) }

// slices returns the detector's slice columns: its own list, or the model's.
func (d *Detector) slices() []string {
	if d.cfg.Slices != nil {
		return *d.cfg.Slices
	}
	return d.model.Slices
}
