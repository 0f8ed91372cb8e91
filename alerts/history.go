package alerts

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mlwatch/mlwatch/store"
)

// StoredAlert reads one alert's last stored state, for the page of an
// alert the manager no longer holds (resolved a while ago: the link in
// its Slack thread must not die). A resolved alert is kept for the
// evaluations' retention (global.evaluations_retention); false past it or
// when unknown.
func (m *Manager) StoredAlert(ctx context.Context, fingerprint string) (View, bool, error) {
	m.mu.Lock()
	db, tables, retention, now := m.db, m.tables, m.cfg.Global.EvaluationsRetention.D(), m.now()
	m.mu.Unlock()
	if db == nil {
		return View{}, false, nil
	}
	res, err := db.Query(store.Priority(ctx), "SELECT data FROM "+tables.Alerts().Quoted()+" FINAL WHERE fingerprint = ?", fingerprint)
	if err != nil {
		return View{}, false, fmt.Errorf("stored alert %s: %w", fingerprint, err)
	}
	if len(res.Rows) == 0 {
		return View{}, false, nil
	}
	var rec alertRecord
	if err := json.Unmarshal([]byte(store.Str(res.Rows[0][0])), &rec); err != nil {
		return View{}, false, fmt.Errorf("stored alert %s: %w", fingerprint, err)
	}
	a := &Alert{
		Fingerprint: rec.Fingerprint, Labels: rec.Labels, Finding: rec.Finding.finding(),
		Owner: rec.Owner, Severity: rec.Severity, RunbookURL: rec.RunbookURL, State: parseState(rec.State),
		ActiveAt: rec.ActiveAt, FiredAt: rec.FiredAt, ResolvedAt: rec.ResolvedAt, LastEvalAt: rec.LastEvalAt,
		CausedBy: rec.CausedBy, SilencedBy: rec.SilencedBy,
	}
	if a.State == StateInactive || (retention > 0 && !a.ResolvedAt.IsZero() && now.Sub(a.ResolvedAt) > retention) {
		return View{}, false, nil
	}
	return a.view(nil), true, nil
}
