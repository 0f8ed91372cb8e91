package monitor

import (
	"context"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// versionState remembers, per model, the last version probe and the
// rollouts seen recently: the findings of every detector run at the same
// time share one probe, and /api/v1/models and the charts list them.
type versionState struct {
	mu     sync.Mutex
	last   map[string]detectors.Versions // by model
	recent map[string][]detectors.Rollout
}

// maxRecentRollouts bounds the rollouts kept per model.
const maxRecentRollouts = 20

func newVersionState() *versionState {
	return &versionState{last: map[string]detectors.Versions{}, recent: map[string][]detectors.Rollout{}}
}

// versionLookback is the span a model's probe reads: twice the longest
// current window of its detectors, so the first half shows the version
// before any window began.
func versionLookback(cfg *configs.Config, model string) time.Duration {
	w := time.Hour
	for _, d := range cfg.Detectors {
		if d.Model == model && d.Window.D() > w && d.Kind != configs.KindStaleness {
			w = d.Window.D()
		}
	}
	return 2 * w
}

// versions returns the model's version probe at `at`, running it once per
// model and time (detectors scheduled together share it).
func (m *Monitor) versions(ctx context.Context, cfg *configs.Config, model string, at time.Time) (detectors.Versions, bool) {
	vs := m.vstate
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v, ok := vs.last[model]; ok && v.At.Equal(at.UTC().Truncate(time.Second)) {
		return v, true
	}
	var mc *configs.Model
	for i := range cfg.Models {
		if cfg.Models[i].Name == model {
			mc = &cfg.Models[i]
		}
	}
	if mc == nil || mc.Columns.ModelVersion == "" {
		return detectors.Versions{}, false
	}
	v, err := detectors.ProbeVersions(ctx, m.db, mc, at, versionLookback(cfg, model))
	if err != nil {
		m.log.Warn("version probe failed", zap.String("model", model), zap.Error(err))
		return detectors.Versions{}, false
	}
	vs.last[model] = v
	for _, r := range v.Rollouts {
		seen := false
		for _, old := range vs.recent[model] {
			seen = seen || (old.Role == r.Role && old.From == r.From && old.To == r.To && old.At.Equal(r.At))
		}
		if !seen {
			vs.recent[model] = append(vs.recent[model], r)
		}
	}
	if n := len(vs.recent[model]); n > maxRecentRollouts {
		vs.recent[model] = vs.recent[model][n-maxRecentRollouts:]
	}
	return v, true
}

// markRollouts attaches the model's rollouts inside the windows to the
// result's findings (Finding.Rollout, and a sentence in the summary).
func (m *Monitor) markRollouts(ctx context.Context, cfg *configs.Config, res *detectors.Result) {
	if len(res.Findings) == 0 {
		return
	}
	v, ok := m.versions(ctx, cfg, res.Model, res.At)
	if !ok {
		return
	}
	detectors.MarkRollouts(res, v.Rollouts)
}

// ModelVersions is one model's entry of /api/v1/models: the versions it
// serves now per role, and the rollouts the monitor has seen recently.
type ModelVersions struct {
	Model    string                   `json:"model"`
	At       time.Time                `json:"at"`
	Current  []detectors.VersionShare `json:"current"`
	Rollouts []detectors.Rollout      `json:"rollouts"`
}

// Models lists every configured model's versions and recent rollouts, as
// of its last probe (a model not probed yet has no versions listed).
func (m *Monitor) Models() []ModelVersions {
	m.mu.RLock()
	cfg := m.cfg
	m.mu.RUnlock()
	vs := m.vstate
	vs.mu.Lock()
	defer vs.mu.Unlock()
	out := []ModelVersions{}
	for _, mc := range cfg.Models {
		v := vs.last[mc.Name]
		e := ModelVersions{Model: mc.Name, At: v.At, Current: v.Current, Rollouts: append([]detectors.Rollout{}, vs.recent[mc.Name]...)}
		if e.Current == nil {
			e.Current = []detectors.VersionShare{}
		}
		sort.SliceStable(e.Rollouts, func(i, j int) bool { return e.Rollouts[i].At.Before(e.Rollouts[j].At) })
		out = append(out, e)
	}
	return out
}
