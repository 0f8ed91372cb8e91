package alerts

import (
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// The observe step: one source's run changes the lifecycle of the alerts
// it keeps, as a Prometheus alerting rule keeps its own active alerts.
// Each alert remembers its source (Alert.source); a run activates the
// alerts of its findings and clears the ones of its own it did not find.
// Three named steps: pick (one finding per alert), activate, clear.

// failureSource is the source of a detector's monitoring_failure alert,
// apart from the detector's own; the alert state stores it by this name.
func failureSource(detector string) string { return "monitor/" + detector }

// retired reports whether source name (a detector, or a detector's
// failure source) belongs to a detector a reload removed or disabled
// (Manager.removed); the caller holds m.mu.
func (m *Manager) retired(name string) bool {
	return m.removed[strings.TrimPrefix(name, failureSource(""))]
}

// candidate is the finding an alert keeps from one run, with the owner
// and severity it is routed by.
type candidate struct {
	f        detectors.Finding
	owner    detectors.Owner
	severity configs.Severity
}

// observe is Observe's change to the alerts in memory.
func (m *Manager) observe(name string, at time.Time, findings []detectors.Finding, unchecked []detectors.Unchecked) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.retired(name) {
		// A run that started before a reload removed its detector and
		// ended after it: its findings would bring back the alerts the
		// reload resolved, and nothing would ever clear them again.
		m.log.Info("run of a removed detector ignored", zap.String("source", name))
		return
	}
	dcfg := m.detectors[name]
	var forDur, keepFor time.Duration
	if dcfg != nil {
		forDur, keepFor = dcfg.For.D(), dcfg.KeepFiringFor.D()
	}
	if m.oneShot {
		forDur = 0
	}
	best := m.pick(name, findings)
	for fp, c := range best {
		m.activate(name, fp, c, at, forDur)
	}
	m.clear(name, at, keepFor, best, unchecked)
	m.publish()
}

// pick chooses, per fingerprint, the finding its alert keeps (the
// preferred one when a run reports several), with the severity it has:
// the detector's configured severity over the finding's, except for the
// monitor's report that the detector keeps failing.
func (m *Manager) pick(name string, findings []detectors.Finding) map[string]*candidate {
	dcfg := m.detectors[name]
	best := map[string]*candidate{}
	for _, f := range findings {
		if f.Detector == "" {
			f.Detector = name
		}
		fcfg := dcfg
		if f.Detector != name {
			fcfg = m.detectors[f.Detector]
		}
		ci := detectors.Classes[f.Class]
		sev := f.Severity
		if fcfg != nil && fcfg.Severity != "" && f.Kind != KindMonitor {
			sev = fcfg.Severity
		}
		if sev == "" {
			sev = ci.Severity
		}
		fp := Fingerprint(f.Detector, f.Model, string(f.Class), f.Slice, f.Feature)
		if b := best[fp]; b != nil && !preferred(m.alerts[fp], &f, &b.f, sev, b.severity) {
			continue
		}
		best[fp] = &candidate{f: f, owner: ci.Owner, severity: sev}
	}
	return best
}

// activate makes or keeps the alert of a found candidate active: an
// inactive or resolved alert starts pending, a pending one fires once it
// has been active for forDur. Only lifecycle changes mark the alert
// dirty; fresh figures of an alert whose state holds stay in memory (a
// restart shows the last stored ones until the next run).
func (m *Manager) activate(name, fp string, c *candidate, at time.Time, forDur time.Duration) {
	a := m.alerts[fp]
	if a == nil {
		a = &Alert{Fingerprint: fp, Sent: map[string]*Sent{}}
		m.alerts[fp] = a
	}
	before := [4]time.Time{a.ActiveAt, a.FiredAt, a.KeepFiringSince, a.ResolvedAt}
	beforeState, beforeSev := a.State, a.Severity
	if a.State == StateInactive || a.State == StateResolved {
		a.State = StatePending
		a.ActiveAt = at
		a.FiredAt, a.ResolvedAt = time.Time{}, time.Time{}
		a.CausedBy = ""
		for r, s := range a.Sent {
			if s.Resolved {
				delete(a.Sent, r)
			}
		}
	}
	fcfg := m.detectors[c.f.Detector]
	var extra map[string]string
	a.RunbookURL = ""
	if fcfg != nil {
		extra = fcfg.Labels
		a.RunbookURL = fcfg.RunbookURL
	}
	if mc := m.models[c.f.Model]; a.RunbookURL == "" && mc != nil {
		a.RunbookURL = mc.RunbookURL
	}
	a.Finding = c.f
	a.Owner, a.Severity = c.owner, c.severity
	a.Labels = buildLabels(c.f, c.owner, c.severity, extra)
	a.LastEvalAt = at
	a.KeepFiringSince = time.Time{}
	if a.State == StatePending && at.Sub(a.ActiveAt) >= forDur {
		a.State = StateFiring
		a.FiredAt = at
	}
	if a.source != name || a.State != beforeState || a.Severity != beforeSev ||
		before != [4]time.Time{a.ActiveAt, a.FiredAt, a.KeepFiringSince, a.ResolvedAt} {
		m.dirty[fp] = true
	}
	a.source = name
}

// clear handles the active alerts of source name its run did not find:
// a pending one goes inactive, a firing one resolves (after
// keep_firing_for). Not observed is not recovered: an alert whose slice
// and feature are among the unchecked holds, unless it was already seen
// clear (keep_firing_for running) or the hold ran out (UncheckedHold).
func (m *Manager) clear(name string, at time.Time, keepFor time.Duration, found map[string]*candidate, unchecked []detectors.Unchecked) {
	hold := make(map[string]bool, len(unchecked))
	for _, u := range unchecked {
		hold[u.Key()] = true
	}
	for fp, a := range m.alerts {
		if a.source != name || found[fp] != nil {
			continue
		}
		if hold[detectors.Unchecked{Slice: a.Finding.Slice, Feature: a.Finding.Feature}.Key()] &&
			a.KeepFiringSince.IsZero() && at.Sub(a.LastEvalAt) < UncheckedHold {
			continue
		}
		switch a.State {
		case StatePending:
			a.State = StateInactive
			a.LastEvalAt = at
			m.dirty[fp] = true
		case StateFiring:
			a.LastEvalAt = at
			if keepFor > 0 {
				if a.KeepFiringSince.IsZero() {
					a.KeepFiringSince = at
					m.dirty[fp] = true
				}
				if at.Sub(a.KeepFiringSince) < keepFor {
					continue
				}
			}
			m.dirty[fp] = true
			a.State = StateResolved
			a.ResolvedAt = at
		}
	}
}
