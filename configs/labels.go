package configs

import (
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mlwatch/mlwatch/store"
)

// Labels names a model's ground truth: fraud labels (chargebacks,
// disputes, manual reviews) that arrive days or weeks after the
// prediction, joined to it by request id inside ClickHouse.
type Labels struct {
	// Table is "name" or "database.name"; empty: the labels are columns
	// of the prediction table's production rows.
	Table   string       `yaml:"table"`
	Columns LabelColumns `yaml:"columns"`
	// Maturity is how old a prediction must be before it counts: by then
	// most of its labels have arrived. Default 30d.
	Maturity Duration `yaml:"maturity"`
}

// LabelColumns maps the label columns to the labels table's names.
type LabelColumns struct {
	RequestID string `yaml:"request_id"`
	// Label is 1 for fraud, 0 for a good request.
	Label string `yaml:"label"`
	// LabeledAt is the DateTime the label arrived.
	LabeledAt string `yaml:"labeled_at"`
}

// Guardrails are the limits a candidate model (the shadow, or another
// model_version) must keep against production, slice by slice, before it
// may be promoted: `mlwatch guardrails`.
type Guardrails struct {
	// MinSamples is the traffic a slice needs in both models for its
	// block-rate limit to be checked (default 1000); labelled figures need
	// MinLabeled fraud (recall) or blocked (precision) labels (default 50).
	MinSamples int `yaml:"min_samples"`
	MinLabeled int `yaml:"min_labeled"`
	// MaxBlockRateRise is how much the candidate's block rate may exceed
	// production's in any slice, absolute (default 0.005: half a point).
	MaxBlockRateRise *float64 `yaml:"max_block_rate_rise"`
	// MaxRecallDrop and MaxPrecisionDrop bound the candidate's loss of
	// recall and precision on matured labels, absolute (default 0 for
	// recall: it may not drop; precision unchecked when unset).
	MaxRecallDrop    *float64 `yaml:"max_recall_drop"`
	MaxPrecisionDrop *float64 `yaml:"max_precision_drop"`
	// FDR is the Benjamini–Hochberg level across slices (default 0.05).
	FDR float64 `yaml:"fdr"`
	// Confidence of the reported intervals (default 0.95).
	Confidence float64 `yaml:"confidence"`
	// Schedule is when the daemon computes the model's guardrail report
	// for the status page (cron, default "@hourly"; "off": never), over
	// the Period before the fire time (default 7d), shadow against
	// production.
	Schedule string        `yaml:"schedule"`
	Period   Duration      `yaml:"period"`
	Cron     cron.Schedule `yaml:"-"`
}

// PerformanceParams tune the performance detector.
type PerformanceParams struct {
	// CoverageDrop: the matured predictions' label coverage below this
	// fraction of the baseline's means the labels feed broke (default 0.5).
	CoverageDrop float64 `yaml:"coverage_drop"`
	// ShadowShare is how much of production's drop the shadow must share
	// for it to count as population_shift (default 0.5).
	ShadowShare float64 `yaml:"shadow_share"`
}

// labels checks a model's labels block and fills its defaults.
func (v *validator) labels(path string, m *Model) {
	l := m.Labels
	if l == nil {
		return
	}
	if l.Table != "" {
		v.table(path+".table", l.Table)
	}
	v.column(path+".columns.request_id", &l.Columns.RequestID, m.Columns.RequestID)
	v.column(path+".columns.label", &l.Columns.Label, "label")
	v.column(path+".columns.labeled_at", &l.Columns.LabeledAt, "labeled_at")
	if _, set := v.lines[path+".maturity"]; l.Maturity == 0 && !set {
		l.Maturity = Duration(30 * 24 * time.Hour)
	}
	if l.Maturity.D() < time.Hour || l.Maturity.D() > 365*24*time.Hour {
		v.errf(path+".maturity", "maturity must be between 1h and 365d")
	}
}

// guardrails checks a model's guardrails block and fills its defaults.
func (v *validator) guardrails(path string, g *Guardrails) {
	if g == nil {
		return
	}
	v.count(path, "min_samples", &g.MinSamples, 1000)
	v.count(path, "min_labeled", &g.MinLabeled, 50)
	if g.MaxBlockRateRise == nil {
		x := 0.005
		g.MaxBlockRateRise = &x
	}
	if g.MaxRecallDrop == nil {
		x := 0.0
		g.MaxRecallDrop = &x
	}
	v.rate(path+".max_block_rate_rise", g.MaxBlockRateRise)
	v.rate(path+".max_recall_drop", g.MaxRecallDrop)
	v.rate(path+".max_precision_drop", g.MaxPrecisionDrop)
	v.within(path, "fdr", &g.FDR, 0.05, open01)
	v.within(path, "confidence", &g.Confidence, 0.95, interval{lo: 0.5, hi: 1, hiOpen: true})
	if g.Schedule == "" {
		g.Schedule = "@hourly"
	}
	g.Cron = v.schedule(path, g.Schedule, "off")
	if g.Period == 0 {
		g.Period = Duration(7 * 24 * time.Hour)
	}
	if g.Period.D() < time.Hour || g.Period.D() > 400*24*time.Hour {
		v.errf(path+".period", "period must be between 1h and 400d")
	}
}

// check checks a performance detector against its model and fills
// its defaults: the window ends a maturity ago (eval_delay), so that the
// predictions it judges have had time to get their labels.
func (p *PerformanceParams) check(v *validator, path string, d *Detector, m *Model) {
	v.within(path+".performance", "coverage_drop", &p.CoverageDrop, 0.5, open01)
	v.within(path+".performance", "shadow_share", &p.ShadowShare, 0.5, closed01)
	if m == nil {
		return
	}
	if m.Labels == nil {
		v.errf(path+".kind", "model %q has no labels block; a performance detector needs its ground truth (models[].labels)", m.Name)
		return
	}
	maturity := m.Labels.Maturity
	if _, set := v.lines[path+".eval_delay"]; !set {
		d.EvalDelay = maturity
	} else if d.EvalDelay < maturity {
		v.errf(path+".eval_delay", "eval_delay %s is shorter than model %s's labels maturity %s: the window would judge predictions whose labels have not arrived",
			d.EvalDelay, m.Name, maturity)
	}
}

// LabelsTable returns the model's labels table as "name" or
// "database.name": an unqualified name lives in the prediction table's
// database. Empty without a labels table.
func (m *Model) LabelsTable() string {
	if m.Labels == nil || m.Labels.Table == "" {
		return ""
	}
	return store.ParseTable(m.Labels.Table).In(store.ParseTable(m.Table).Database).String()
}
