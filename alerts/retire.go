package alerts

import (
	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
)

// noteRemoved records which detectors of the old config the new one
// removed or disabled (Manager.removed), and forgets the ones it has
// again; the caller holds m.mu.
func (m *Manager) noteRemoved(old *configs.Config) {
	if m.removed == nil {
		m.removed = map[string]bool{}
	}
	for _, d := range old.Detectors {
		if now := m.detectors[d.Name]; now == nil || now.Disabled {
			m.removed[d.Name] = true
		}
	}
	for name, d := range m.detectors {
		if !d.Disabled {
			delete(m.removed, name)
		}
	}
}

// RemovedReason starts the summary of an alert resolved because its
// detector left the config.
const RemovedReason = "detector removed from config"

// retireRemoved resolves the active alerts of detectors that the config no
// longer has (or has disabled): nothing would ever evaluate them again, so
// they would fire, and repeat, forever, and come back after every restart.
// A firing one resolves with a notification whose summary says why; a
// pending one goes inactive. The caller holds m.mu; the next write stores
// the change, so a restart does not bring them back.
func (m *Manager) retireRemoved() int {
	now := m.now()
	n := 0
	for fp, a := range m.alerts {
		if a.State != StateFiring && a.State != StatePending {
			continue
		}
		if d := m.detectors[a.Finding.Detector]; d != nil && !d.Disabled {
			continue
		}
		if a.State == StatePending {
			a.State = StateInactive
		} else {
			a.State = StateResolved
			a.ResolvedAt = now
			a.Finding.Summary = RemovedReason + " (" + a.Finding.Detector + "); was: " + a.Finding.Summary
		}
		a.LastEvalAt = now
		m.dirty[fp] = true
		n++
		m.log.Info("alert resolved: "+RemovedReason, zap.String("detector", a.Finding.Detector), zap.String("fingerprint", fp))
	}
	if n > 0 {
		m.publish()
	}
	return n
}
