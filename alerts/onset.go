package alerts

import "time"

// An alert's onset is when its incident began according to the
// prediction log, which can be long before the alert became active in
// this process: a daemon started in the middle of an incident activates
// its alerts at its first run. The monitor reads the onset from the log
// (detectors.Onset) the first time an alert is active in this process and
// sets it here; views, the status page and Slack's "since" show it.
// It is kept in memory only, for the ActiveAt it was found for: a new
// incident of the same alert is dated again, and a restart dates it anew
// from the log.

// onsetFor is the onset found for the alert's current incident, zero when
// none was found (or none is earlier than ActiveAt).
func (a *Alert) onsetFor() time.Time {
	if a.onset.IsZero() || !sameSecond(a.onsetActive, a.ActiveAt) || !a.onset.Before(a.ActiveAt) {
		return time.Time{}
	}
	return a.onset
}

// NeedsOnset reports whether an active (pending or firing) alert has not
// been dated from the log for its current incident, and when it became
// active.
func (m *Manager) NeedsOnset(fingerprint string) (activeAt time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.alerts[fingerprint]
	if a == nil || (a.State != StatePending && a.State != StateFiring) {
		return time.Time{}, false
	}
	if a.onsetChecked && sameSecond(a.onsetActive, a.ActiveAt) {
		return time.Time{}, false
	}
	return a.ActiveAt, true
}

// SetOnset records the onset found for the incident that became active
// at activeAt (zero onset: the log shows none earlier). It is ignored when
// the alert has started another incident since.
func (m *Manager) SetOnset(fingerprint string, activeAt, onset time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.alerts[fingerprint]
	if a == nil || !sameSecond(a.ActiveAt, activeAt) {
		return
	}
	a.onset, a.onsetActive, a.onsetChecked = onset, activeAt, true
	m.publish()
}

// Since is when the alert's incident began: its onset in the log when one
// was found, else when it became active (the page's and Slack's "since").
func (v View) Since() time.Time { return v.since() }
