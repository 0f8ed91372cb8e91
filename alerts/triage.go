package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mlwatch/mlwatch/store"
)

// Triage actions: what people do about an alert from Slack (or the API).
const (
	ActionAck           = "ack"
	ActionSilence       = "silence"
	ActionFalsePositive = "false_positive"
	ActionExpected      = "expected"
)

// Action is one triage action on one alert, as stored in the triage table
// and listed by the API: who did what, when, through which transport, and
// for which incident of the alert (its active_at).
type Action struct {
	At            time.Time `json:"at"`
	ID            string    `json:"id"`
	Action        string    `json:"action"`
	Fingerprint   string    `json:"fingerprint"`
	AlertActiveAt time.Time `json:"alert_active_at"`
	Detector      string    `json:"detector"`
	Model         string    `json:"model"`
	Class         string    `json:"class"`
	Severity      string    `json:"severity"`
	UserID        string    `json:"user_id"`
	UserName      string    `json:"user_name"`
	Transport     string    `json:"transport"`
	Receiver      string    `json:"receiver"`
	SilenceID     string    `json:"silence_id,omitempty"`
	SilenceFor    string    `json:"silence_for,omitempty"`
	Reason        string    `json:"reason,omitempty"`
}

// Ack is who acknowledged an alert's current incident and when; it stops
// the alert's repeat reminders until the alert resolves.
type Ack struct {
	UserID   string    `json:"user_id"`
	UserName string    `json:"user_name"`
	At       time.Time `json:"at"`
	// ActiveAt is the incident acknowledged: an alert that resolves and
	// fires again starts a new one, which reminds again.
	ActiveAt time.Time `json:"-"`
}

// TriageLog stores triage actions in ClickHouse, one row each.
type TriageLog struct {
	db    store.Store
	table store.Table
}

// NewTriageLog opens the triage table of a set of tables.
func NewTriageLog(db store.Store, t store.Tables) *TriageLog {
	return &TriageLog{db: db, table: t.Triage()}
}

var triageColumns = triageTable.ColumnNames()

// Record stores one action; its ID is made when empty.
func (l *TriageLog) Record(ctx context.Context, a Action) (Action, error) {
	if a.ID == "" {
		a.ID = newID()
	}
	row := []any{dt(a.At), a.ID, a.Action, a.Fingerprint, dt(a.AlertActiveAt), a.Detector, a.Model, a.Class, a.Severity,
		a.UserID, a.UserName, a.Transport, a.Receiver, a.SilenceID, a.SilenceFor, a.Reason}
	if err := l.db.Insert(ctx, l.table, triageColumns, [][]any{row}); err != nil {
		return a, fmt.Errorf("triage %s %s: write: %w", a.Action, a.Fingerprint, err)
	}
	return a, nil
}

// List returns the actions since `since` (all when zero), newest first;
// a non-empty fingerprint selects one alert's.
func (l *TriageLog) List(ctx context.Context, since time.Time, fingerprint string) ([]Action, error) {
	q := "SELECT at, id, action, fingerprint, alert_active_at, detector, model, class, severity, user_id, user_name, transport, receiver, silence_id, silence_for, reason FROM " +
		l.table.Quoted() + " WHERE at >= ?"
	args := []any{dt(since)}
	if fingerprint != "" {
		q += " AND fingerprint = ?"
		args = append(args, fingerprint)
	}
	q += " ORDER BY at DESC, id"
	res, err := l.db.Query(store.Priority(ctx), q, args...)
	if err != nil {
		return nil, fmt.Errorf("list triage actions: %w", err)
	}
	out := make([]Action, 0, len(res.Rows))
	for _, r := range res.Rows {
		out = append(out, Action{
			At: store.Time(r[0]), ID: store.Str(r[1]), Action: store.Str(r[2]), Fingerprint: store.Str(r[3]),
			AlertActiveAt: undt(store.Time(r[4])), Detector: store.Str(r[5]), Model: store.Str(r[6]), Class: store.Str(r[7]),
			Severity: store.Str(r[8]), UserID: store.Str(r[9]), UserName: store.Str(r[10]), Transport: store.Str(r[11]),
			Receiver: store.Str(r[12]), SilenceID: store.Str(r[13]), SilenceFor: store.Str(r[14]), Reason: store.Str(r[15]),
		})
	}
	return out, nil
}

// ErrAlertNotActive is returned when acknowledging an alert that is not
// pending or firing (resolved, or unknown to this daemon).
var ErrAlertNotActive = errors.New("alert is not active")

// Ack acknowledges the current incident of an alert: its repeat
// reminders stop and its view shows who acknowledged it, until it
// resolves. It returns the alert as it now reads.
func (m *Manager) Ack(fingerprint string, ack Ack) (View, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.alerts[fingerprint]
	if a == nil || (a.State != StateFiring && a.State != StatePending) {
		return View{}, fmt.Errorf("ack %s: %w", fingerprint, ErrAlertNotActive)
	}
	ack.ActiveAt = a.ActiveAt
	a.ack = &ack
	m.publish()
	for _, v := range m.pub.Load().views {
		if v.Fingerprint == fingerprint {
			return v, nil
		}
	}
	return a.view(m.receiversOf(a)), nil
}

// RestoreAcks applies stored ack actions (after Restore): each holds for
// its alert while the alert is still in the incident it acknowledged.
func (m *Manager) RestoreAcks(actions []Action) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, ac := range actions {
		if ac.Action != ActionAck {
			continue
		}
		a := m.alerts[ac.Fingerprint]
		if a == nil || !sameSecond(a.ActiveAt, ac.AlertActiveAt) || (a.ack != nil && !a.ack.At.Before(ac.At)) {
			continue
		}
		a.ack = &Ack{UserID: ac.UserID, UserName: ac.UserName, At: ac.At, ActiveAt: a.ActiveAt}
		n++
	}
	m.publish()
	return n
}

// acked reports whether the alert's current incident is acknowledged.
func (a *Alert) acked() bool {
	return a.ack != nil && (a.State == StateFiring || a.State == StatePending) && sameSecond(a.ack.ActiveAt, a.ActiveAt)
}

// ackView is the ack a view shows (nil when none holds).
func (a *Alert) ackView() *Ack {
	if !a.acked() {
		return nil
	}
	ack := *a.ack
	return &ack
}

func sameSecond(a, b time.Time) bool { return a.Truncate(time.Second).Equal(b.Truncate(time.Second)) }
