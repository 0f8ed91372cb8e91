package monitor

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// GuardrailStatus is a model's latest guardrail report as the daemon
// computed it (models[].guardrails.schedule, over guardrails.period before
// the fire time, the shadow against production): what the status page and
// GET /api/v1/guardrails show. The verdict of `mlwatch guardrails` in CI
// is the same computation for a period someone chose.
type GuardrailStatus struct {
	Model    string                     `json:"model"`
	Schedule string                     `json:"schedule"`
	Period   string                     `json:"period"`
	At       time.Time                  `json:"at"` // fire time: the report covers [At - Period, At)
	Report   *detectors.GuardrailReport `json:"report,omitempty"`
	Error    string                     `json:"error,omitempty"`
}

// guardrailState keeps the latest report per model.
type guardrailState struct {
	mu     sync.Mutex
	latest map[string]GuardrailStatus
}

// guardrailTaskPrefix names the scheduler tasks of guardrail reports.
const guardrailTaskPrefix = "guardrails/"

// guardrailModels lists the models the daemon judges on a schedule: those
// with a guardrails block, a schedule and a shadow.
func guardrailModels(cfg *configs.Config) []*configs.Model {
	var out []*configs.Model
	for i := range cfg.Models {
		m := &cfg.Models[i]
		if m.Guardrails != nil && m.Guardrails.Cron != nil && m.Shadow.Mode != configs.ShadowNone {
			out = append(out, m)
		}
	}
	return out
}

// guardrailTasks are the scheduler tasks computing each model's report.
func (m *Monitor) guardrailTasks(cfg *configs.Config) []Task {
	var tasks []Task
	for _, mod := range guardrailModels(cfg) {
		name := mod.Name
		tasks = append(tasks, Task{Name: guardrailTaskPrefix + name, Schedule: mod.Guardrails.Cron, Run: func(ctx context.Context, at time.Time) {
			m.RunGuardrails(ctx, name, at)
		}})
	}
	return tasks
}

// RunGuardrails computes model's guardrail report over the period before
// at, keeps it as the model's latest and returns it. A missing labels
// table makes it decide on block rates alone (and say so); a failed query
// is kept as the status's error.
func (m *Monitor) RunGuardrails(ctx context.Context, model string, at time.Time) GuardrailStatus {
	cfg := m.Config()
	var mod *configs.Model
	for _, x := range guardrailModels(cfg) {
		if x.Name == model {
			mod = x
		}
	}
	st := GuardrailStatus{Model: model, At: at.UTC()}
	if mod == nil {
		st.Error = fmt.Sprintf("model %s has no scheduled guardrails (models[].guardrails with a shadow)", model)
		return st
	}
	g := mod.Guardrails
	st.Schedule, st.Period = g.Schedule, configs.FormatDuration(g.Period.D())
	rctx, cancel := context.WithTimeout(ctx, cfg.Global.RunTimeout.D())
	defer cancel()
	o := detectors.GuardrailOptions{Model: mod, Limits: g, From: at.Add(-g.Period.D()), To: at, At: at}
	r, err := detectors.RunGuardrails(rctx, m.db, o)
	if detectors.LabelsMissing(err, mod) {
		o.NoLabels = true
		r, err = detectors.RunGuardrails(rctx, m.db, o)
	}
	if err != nil {
		st.Error = err.Error()
		m.log.Warn("guardrails failed", zap.String("model", model), zap.Error(err))
	} else {
		st.Report = r
		m.log.Info("guardrails", zap.String("model", model), zap.String("verdict", r.Verdict), zap.Strings("failed", r.Failed), zap.Strings("missing", r.Missing))
	}
	m.guards.mu.Lock()
	if m.guards.latest == nil {
		m.guards.latest = map[string]GuardrailStatus{}
	}
	m.guards.latest[model] = st
	m.guards.mu.Unlock()
	return st
}

// RunAllGuardrails computes every scheduled model's report at at: the
// daemon does it once at start so that the page need not wait for the
// first fire time.
func (m *Monitor) RunAllGuardrails(ctx context.Context, at time.Time) {
	for _, mod := range guardrailModels(m.Config()) {
		if ctx.Err() != nil {
			return
		}
		m.RunGuardrails(ctx, mod.Name, at)
	}
}

// Guardrails returns the latest report of each model with scheduled
// guardrails (a status without report or error: not computed yet).
func (m *Monitor) Guardrails() []GuardrailStatus {
	cfg := m.Config()
	m.guards.mu.Lock()
	defer m.guards.mu.Unlock()
	var out []GuardrailStatus
	for _, mod := range guardrailModels(cfg) {
		st, ok := m.guards.latest[mod.Name]
		if !ok {
			st = GuardrailStatus{Model: mod.Name}
		}
		st.Schedule, st.Period = mod.Guardrails.Schedule, configs.FormatDuration(mod.Guardrails.Period.D())
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out
}
