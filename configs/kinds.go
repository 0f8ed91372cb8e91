package configs

import (
	"fmt"
	"time"
)

// Detector kinds.
const (
	KindBlockRate     = "block_rate"
	KindFeatureHealth = "feature_health"
	KindShadow        = "shadow"
	KindVolume        = "volume"
	KindFreshness     = "freshness"
	KindStaleness     = "staleness"
	KindExpectation   = "expectation"
	KindPerformance   = "performance"
)

// kindTable is every detector kind's place in configs, one entry each:
// the defaults of the shared decision settings, whether it can read a
// rollup, and its parameter block (the Detector field of the kind's name,
// which checks itself and fills its defaults). The kind's constructor,
// queries and evaluation are in detectors/ (detectors/kinds.go).
var kindTable = []kindSpec{
	{name: KindBlockRate, schedule: "*/5 * * * *", window: time.Hour, minAbs: 0.005, minRel: 0.5, rollup: true, incremental: true,
		block: blockOf(func(d *Detector) **BlockRateParams { return &d.BlockRate })},
	{name: KindFeatureHealth, schedule: "*/5 * * * *", window: time.Hour, minAbs: 0.02, minRel: 1.0, rollup: true,
		block: blockOf(func(d *Detector) **FeatureHealthParams { return &d.FeatureHealth })},
	{name: KindShadow, schedule: "*/5 * * * *", window: time.Hour, minAbs: 0.005, minRel: 1.0,
		block: blockOf(func(d *Detector) **ShadowParams { return &d.ShadowParams })},
	{name: KindVolume, schedule: "*/5 * * * *", window: time.Hour, rollup: true, incremental: true,
		block: blockOf(func(d *Detector) **VolumeParams { return &d.Volume })},
	{name: KindFreshness, schedule: "* * * * *", window: 15 * time.Minute,
		block: blockOf(func(d *Detector) **FreshnessParams { return &d.Freshness })},
	{name: KindStaleness, schedule: "@hourly", window: 24 * time.Hour,
		block: blockOf(func(d *Detector) **StalenessParams { return &d.Staleness })},
	{name: KindExpectation, schedule: "*/5 * * * *", window: time.Hour, incremental: true,
		block:    blockOf(func(d *Detector) **ExpectationParams { return &d.Expectation }),
		required: "an expectation detector needs an expectation block with match and min_rate or max_rate"},
	{name: KindPerformance, schedule: "@hourly", window: 24 * time.Hour, minAbs: 0.02, minRel: 0.2,
		block: blockOf(func(d *Detector) **PerformanceParams { return &d.Performance })}, // labels.go
}

// Kinds lists every detector kind.
var Kinds = kindNames(func(kindSpec) bool { return true })

// RollupKinds are the detector kinds that can read a rollup.
var RollupKinds = kindNames(func(k kindSpec) bool { return k.rollup })

// IncrementalKinds are the detector kinds with a partial form: the ones
// incremental evaluation serves (global.incremental).
var IncrementalKinds = kindNames(func(k kindSpec) bool { return k.incremental })

// kindSpec is one detector kind's entry of kindTable.
type kindSpec struct {
	name string
	// Defaults of schedule, window, min_abs_change and min_rel_change.
	schedule       string
	window         time.Duration
	minAbs, minRel float64
	// rollup: the kind can read the model's minute rollup (source: rollup).
	rollup bool
	// incremental: the kind's query has a partial form
	// (detectors/incremental.go), so it can be evaluated incrementally.
	incremental bool
	// block returns the detector's parameter block of this kind, nil when
	// unset; with fill, an unset block is set to an empty one first.
	block func(d *Detector, fill bool) params
	// required, when set, is the problem of a detector without the block:
	// the kind has no defaults for it.
	required string
}

// params is a kind's parameter block: check fills its defaults and
// reports its problems under path (the detector's).
type params interface {
	check(v *validator, path string, d *Detector, m *Model)
}

// blockOf makes kindSpec.block from the address of the Detector field.
func blockOf[P any, PP interface {
	*P
	params
}](field func(d *Detector) *PP) func(*Detector, bool) params {
	return func(d *Detector, fill bool) params {
		f := field(d)
		if *f == nil {
			if !fill {
				return nil
			}
			*f = PP(new(P))
		}
		return *f
	}
}

func kindNames(keep func(kindSpec) bool) []string {
	var out []string
	for _, k := range kindTable {
		if keep(k) {
			out = append(out, k.name)
		}
	}
	return out
}

func kindOf(name string) (kindSpec, bool) {
	for _, k := range kindTable {
		if k.name == name {
			return k, true
		}
	}
	return kindSpec{}, false
}

// params checks that only the block of the detector's own kind is set, and
// checks that one, filling its defaults.
func (v *validator) params(path string, d *Detector, m *Model, spec kindSpec) {
	for _, k := range kindTable {
		if k.name != d.Kind && k.block(d, false) != nil {
			v.errf(path+"."+k.name, "a %s block on a %s detector", k.name, d.Kind)
		}
	}
	if spec.required != "" && spec.block(d, false) == nil {
		v.errf(path, "%s", spec.required)
		return
	}
	spec.block(d, true).check(v, path, d, m)
}

// BlockRateParams tune the block_rate detector.
type BlockRateParams struct {
	// Absolute bounds on the current window (aggregate): rates in [0,1],
	// counts per window. Unset bounds are not checked.
	MinRate    *float64 `yaml:"min_rate"`
	MaxRate    *float64 `yaml:"max_rate"`
	MinBlocked *int64   `yaml:"min_blocked"`
	MaxBlocked *int64   `yaml:"max_blocked"`
	// ScorePSI adds score-distribution drift (PSI over baseline deciles).
	ScorePSI *bool   `yaml:"score_psi"`
	PSIWarn  float64 `yaml:"psi_warn"`
	PSIAlert float64 `yaml:"psi_alert"`
	// ShadowShare is how much of the production move the shadow must share
	// (same direction) for the slice to count as population_shift.
	ShadowShare float64 `yaml:"shadow_share"`
}

func (p *BlockRateParams) check(v *validator, path string, _ *Detector, _ *Model) {
	path += ".block_rate"
	v.rate(path+".min_rate", p.MinRate)
	v.rate(path+".max_rate", p.MaxRate)
	if p.MinRate != nil && p.MaxRate != nil && *p.MinRate > *p.MaxRate {
		v.errf(path+".min_rate", "min_rate is above max_rate")
	}
	if p.MinBlocked != nil && p.MaxBlocked != nil && *p.MinBlocked > *p.MaxBlocked {
		v.errf(path+".min_blocked", "min_blocked is above max_blocked")
	}
	if p.ScorePSI == nil {
		t := true
		p.ScorePSI = &t
	}
	v.psi(path, &p.PSIWarn, &p.PSIAlert)
	v.within(path, "shadow_share", &p.ShadowShare, 0.5, closed01)
}

// FeatureHealthParams tune the feature_health detector.
type FeatureHealthParams struct {
	// Features restricts the check to these names; empty: the model's.
	Features []string `yaml:"features"`
	// NullRateMax is an absolute ceiling on a feature's null rate.
	NullRateMax float64 `yaml:"null_rate_max"`
	// DefaultValue is the fill value watched for (0 when unset); Defaults
	// overrides it per feature.
	DefaultValue *float64           `yaml:"default_value"`
	Defaults     map[string]float64 `yaml:"defaults"`
	// Drift turns PSI drift of non-null values on (default true).
	Drift    *bool   `yaml:"drift"`
	PSIWarn  float64 `yaml:"psi_warn"`
	PSIAlert float64 `yaml:"psi_alert"`
}

func (p *FeatureHealthParams) check(v *validator, path string, _ *Detector, m *Model) {
	path += ".feature_health"
	v.within(path, "null_rate_max", &p.NullRateMax, 0.5, closed01)
	if p.DefaultValue == nil {
		zero := 0.0
		p.DefaultValue = &zero
	}
	if p.Drift == nil {
		t := true
		p.Drift = &t
	}
	v.psi(path, &p.PSIWarn, &p.PSIAlert)
	if m != nil && m.Features.Layout == LayoutColumns {
		known := map[string]bool{}
		for _, n := range m.Features.Names {
			known[n] = true
		}
		for i, f := range p.Features {
			if !known[f] {
				v.errf(fmt.Sprintf("%s.features[%d]", path, i), "feature %q is not among model %q's feature columns", f, m.Name)
			}
		}
	}
	v.noDuplicates(path+".features", p.Features)
}

// ShadowParams tune the shadow detector.
type ShadowParams struct {
	// MinCorrelation reports when the score correlation of paired rows falls
	// below it (0 disables).
	MinCorrelation float64 `yaml:"min_correlation"`
}

func (p *ShadowParams) check(v *validator, path string, _ *Detector, m *Model) {
	v.within(path+".shadow", "min_correlation", &p.MinCorrelation, 0, interval{lo: -1, hi: 1}) // 0 disables
	if m != nil && m.Shadow.Mode == ShadowNone {
		v.errf(path+".kind", "model %q has shadow.mode none; a shadow detector has nothing to compare", m.Name)
	}
}

// VolumeParams tune the volume detector.
type VolumeParams struct {
	// DropRatio: current/baseline below it is a drop (default 0.5).
	DropRatio float64 `yaml:"drop_ratio"`
	// SpikeRatio: current/baseline above it is a spike (default 3; 0 disables).
	SpikeRatio float64 `yaml:"spike_ratio"`
}

func (p *VolumeParams) check(v *validator, path string, _ *Detector, _ *Model) {
	v.within(path+".volume", "drop_ratio", &p.DropRatio, 0.5, open01)
	if p.SpikeRatio == 0 {
		p.SpikeRatio = 3
	}
	if p.SpikeRatio < 0 || (p.SpikeRatio > 0 && p.SpikeRatio <= 1) {
		v.errf(path+".volume.spike_ratio", "spike_ratio must be above 1")
	}
}

// FreshnessParams tune the freshness detector.
type FreshnessParams struct {
	// MaxLag is how old the newest row may be at evaluation time.
	MaxLag Duration `yaml:"max_lag"`
}

func (p *FreshnessParams) check(*validator, string, *Detector, *Model) {
	if p.MaxLag == 0 {
		p.MaxLag = Duration(15 * time.Minute)
	}
}

// StalenessParams tune the staleness detector.
type StalenessParams struct {
	// MaxAge is how long a serving model version may stay in production.
	MaxAge Duration `yaml:"max_age"`
}

func (p *StalenessParams) check(*validator, string, *Detector, *Model) {
	if p.MaxAge == 0 {
		p.MaxAge = Duration(30 * 24 * time.Hour)
	}
}

// ExpectationParams describe golden requests and the block rate they must have.
type ExpectationParams struct {
	Match   []Match  `yaml:"match"`
	MinRate *float64 `yaml:"min_rate"`
	MaxRate *float64 `yaml:"max_rate"`
}

func (p *ExpectationParams) check(v *validator, path string, _ *Detector, _ *Model) {
	path += ".expectation"
	if len(p.Match) == 0 {
		v.errf(path+".match", "at least one matcher is required")
	}
	for i := range p.Match {
		v.match(fmt.Sprintf("%s.match[%d]", path, i), &p.Match[i])
	}
	if p.MinRate == nil && p.MaxRate == nil {
		v.errf(path, "min_rate or max_rate is required")
	}
	v.rate(path+".min_rate", p.MinRate)
	v.rate(path+".max_rate", p.MaxRate)
}
