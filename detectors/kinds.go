package detectors

import (
	"fmt"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// kinds builds each detector kind (configs.Kinds) for a Detector: one
// entry per kind, whose constructor, queries and evaluation live in the
// kind's own file. A kind's parameters, defaults and checks live in
// configs/kinds.go.
var kinds = map[string]func(d *Detector) (kind, error){
	configs.KindBlockRate:     newBlockRate,     // blockrate.go
	configs.KindFeatureHealth: newFeatureHealth, // featurehealth.go
	configs.KindShadow:        newShadow,        // shadow.go
	configs.KindVolume:        newVolume,        // volume.go
	configs.KindFreshness:     newFreshness,     // volume.go
	configs.KindStaleness:     newStaleness,     // staleness.go
	configs.KindExpectation:   newExpectation,   // expectation.go
	configs.KindPerformance:   newPerformance,   // performance.go
}

// kind is what each detector kind provides: its one query for a set of
// windows, the time ranges that query reads, and the evaluation of its
// rows into hypotheses.
type kind interface {
	query(w windows) *sqlText
	spans(w windows) []span
	evaluate(res *store.Result, r *run) error
}

// rollupKind is a kind that can read the model's minute rollup instead
// (configs.RollupKinds, source: rollup): rollupQuery returns the columns
// query does, from the rollup tables (rollup.go).
type rollupKind interface {
	kind
	rollupQuery(w windows) *sqlText
}

// base is what every kind keeps: its detector, the source it reads (raw
// table or rollup) and its parameter block P (configs/kinds.go).
type base[P any] struct {
	d   *Detector
	src source
	p   *P
}

// newBase starts a kind named name over d with its parameter block p,
// which configs.Load always sets (with the kind's defaults).
func newBase[P any](d *Detector, name string, p *P) (base[P], error) {
	if p == nil {
		return base[P]{}, fmt.Errorf("%s parameters missing (load the config with configs.Load)", name)
	}
	return base[P]{d: d, src: newSource(d), p: p}, nil
}

// newKind builds a kind that keeps nothing beyond its base: wrap makes
// the kind's type of the base newBase starts.
func newKind[P any](d *Detector, name string, p *P, wrap func(base[P]) kind) (kind, error) {
	b, err := newBase(d, name, p)
	if err != nil {
		return nil, err
	}
	return wrap(b), nil
}
