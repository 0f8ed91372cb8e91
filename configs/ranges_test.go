package configs

import (
	"math"
	"strings"
	"testing"
)

// The ranged settings: out of range each names its path and range, unset
// each gets its default.
func TestRangedSettings(t *testing.T) {
	v := &validator{file: "f.yaml", lines: map[string]int{}}
	g := &Guardrails{FDR: 1, Confidence: 0.4, Schedule: "nope", MinSamples: 1, MinLabeled: 1, Period: Duration(3600e9)}
	v.guardrails("g", g)
	(&PerformanceParams{CoverageDrop: 1, ShadowShare: -0.1}).check(v, "p", &Detector{}, nil)
	(&BlockRateParams{ShadowShare: 2, MinBlocked: new(int64), MaxBlocked: new(int64)}).check(v, "b", &Detector{}, nil)
	(&FeatureHealthParams{NullRateMax: 1.5}).check(v, "f", &Detector{}, nil)
	(&ShadowParams{MinCorrelation: -2}).check(v, "s", &Detector{}, nil)
	(&VolumeParams{DropRatio: 1}).check(v, "vol", &Detector{}, nil)
	(&FeatureHealthParams{NullRateMax: math.NaN()}).check(v, "nan", &Detector{}, nil)
	var got []string
	for _, p := range v.problems {
		got = append(got, p.Path+": "+p.Msg)
	}
	want := []string{
		"g.fdr: fdr must be in (0, 1)",
		"g.confidence: confidence must be in [0.5, 1)",
		`g.schedule: invalid cron spec "nope" (or off): `,
		"p.performance.coverage_drop: coverage_drop must be in (0, 1)",
		"p.performance.shadow_share: shadow_share must be in [0, 1]",
		"b.block_rate.shadow_share: shadow_share must be in [0, 1]",
		"f.feature_health.null_rate_max: null_rate_max must be in [0, 1]",
		"s.shadow.min_correlation: min_correlation must be in [-1, 1]",
		"vol.volume.drop_ratio: drop_ratio must be in (0, 1)",
		"nan.feature_health.null_rate_max: null_rate_max must be in [0, 1]",
	}
	if len(got) != len(want) {
		t.Fatalf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d: %s, want %s...", i, got[i], want[i])
		}
	}

	v = &validator{file: "f.yaml", lines: map[string]int{}}
	g = &Guardrails{Schedule: "off"}
	v.guardrails("g", g)
	pf := &PerformanceParams{}
	pf.check(v, "p", &Detector{}, nil)
	fh := &FeatureHealthParams{}
	fh.check(v, "f", &Detector{}, nil)
	vol := &VolumeParams{}
	vol.check(v, "vol", &Detector{}, nil)
	sh := &ShadowParams{}
	sh.check(v, "s", &Detector{}, nil)
	if len(v.problems) > 0 {
		t.Fatalf("defaults refused: %v", v.problems)
	}
	if g.FDR != 0.05 || g.Confidence != 0.95 || g.Cron != nil || pf.CoverageDrop != 0.5 || pf.ShadowShare != 0.5 ||
		fh.NullRateMax != 0.5 || vol.DropRatio != 0.5 || vol.SpikeRatio != 3 || sh.MinCorrelation != 0 {
		t.Errorf("defaults: guardrails %+v, performance %+v, feature_health %+v, volume %+v, shadow %+v", g, pf, fh, vol, sh)
	}
}
