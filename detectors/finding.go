package detectors

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
)

// Class is a failure class; the class decides the owner.
type Class string

// Failure classes (README.md, Alerts).
const (
	ClassFeaturePipeline   Class = "feature_pipeline"
	ClassPipelineOutage    Class = "pipeline_outage"
	ClassMonitoringFailure Class = "monitoring_failure"
	ClassModelBehavior     Class = "model_behavior"
	ClassPopulationShift   Class = "population_shift"
	ClassModelDivergence   Class = "model_divergence"
	ClassModelStaleness    Class = "model_staleness"
)

// Owner is the team a class belongs to (models[].owners names its
// receiver).
type Owner string

// Owners.
const (
	OwnerProduct Owner = "product"
	OwnerInfra   Owner = "infra"
)

// ClassInfo is what a failure class implies.
type ClassInfo struct {
	Owner    Owner
	Severity configs.Severity // default severity
	// Cause marks infra classes that explain product-class alerts of the
	// same model (root-cause inhibition).
	Cause bool
}

// Classes maps each failure class to its owner and default severity.
var Classes = map[Class]ClassInfo{
	ClassFeaturePipeline:   {OwnerInfra, configs.SeverityPage, true},
	ClassPipelineOutage:    {OwnerInfra, configs.SeverityPage, true},
	ClassMonitoringFailure: {OwnerInfra, configs.SeverityTicket, false},
	ClassModelBehavior:     {OwnerProduct, configs.SeverityPage, false},
	ClassPopulationShift:   {OwnerProduct, configs.SeverityInfo, false},
	ClassModelDivergence:   {OwnerProduct, configs.SeverityTicket, false},
	ClassModelStaleness:    {OwnerProduct, configs.SeverityTicket, false},
}

// Finding is one change a detector decided is real: the Evaluation that
// fired (its metric, slice, feature, class and figures) with the
// detector, the window and the words that show it.
type Finding struct {
	Detector string           `json:"detector"`
	Kind     string           `json:"kind"`
	Severity configs.Severity `json:"severity"`
	Model    string           `json:"model"`
	// Evaluation is the decision (Firing is set). Its PValue is NaN where
	// the decision has no test (absolute bounds, lag); its ShadowValue,
	// with ShadowBaseline below, the shadow model's figures where the
	// detector compared them (NaN otherwise).
	Evaluation

	Effect         float64 `json:"effect"` // value - baseline
	ShadowBaseline float64 `json:"shadow_baseline"`

	Summary string `json:"summary"`
	// WindowStart and WindowEnd bound the current window; At is the
	// evaluation time (WindowEnd plus the detector's eval_delay).
	WindowStart time.Time `json:"window_start"`
	At          time.Time `json:"at"`
	WindowEnd   time.Time `json:"window_end"`
	// Details holds second figures that explain the decision (Jensen–Shannon
	// beside PSI, score correlation, the seasonal spread), by name.
	Details map[string]float64 `json:"details,omitempty"`
	// Rollout, when set, is the model's version change inside the window
	// (MarkRollouts): the likely root of the move.
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Unchecked is a slice (and feature) that a run could not decide for lack
// of samples. Its alerts keep their state instead of resolving: a slice
// that goes quiet at night has not recovered, it has gone unobserved.
type Unchecked struct {
	Slice   map[string]string
	Feature string
}

// Key identifies the slice and feature the way alerts match it.
func (u Unchecked) Key() string { return SliceKey(u.Slice) + "\x00" + u.Feature }

// SliceKey renders a slice as canonical JSON ({} for the aggregate), the
// form stored in the evaluations table and used in fingerprints.
func SliceKey(slice map[string]string) string {
	b := []byte{'{'}
	for i, k := range slices.Sorted(maps.Keys(slice)) {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(slice[k])
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, vb...)
	}
	return string(append(b, '}'))
}

// JoinSlice renders a slice for people: "col=value" in column order,
// joined by sep ("" for the aggregate).
func JoinSlice(slice map[string]string, sep string) string {
	parts := make([]string, 0, len(slice))
	for _, k := range slices.Sorted(maps.Keys(slice)) {
		parts = append(parts, k+"="+slice[k])
	}
	return strings.Join(parts, sep)
}
