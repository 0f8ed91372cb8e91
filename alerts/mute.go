package alerts

import (
	"sort"
	"strings"
	"time"
)

// The mute step: what holds back an alert's own notifications, as
// Alertmanager's inhibit/ and silence/ do. Each stage is a Muter; mute
// applies them in one pass over the alerts, in a fixed order (silences,
// then inhibition), and records the outcome on the alert (SilencedBy,
// CausedBy), where plan, the API and the stored state read it.

// Muter is one stage of the mute step.
type Muter interface {
	// Mutes reports whether the alert's own notifications are held back.
	Mutes(a *Alert) bool
}

// silencer mutes the alerts an active silence selects at one time.
type silencer struct{ active []Silence }

func newSilencer(all []Silence, now time.Time) *silencer {
	s := &silencer{}
	for _, x := range all {
		if x.State(now) == SilenceActive {
			s.active = append(s.active, x)
		}
	}
	return s
}

// Mutes reports whether an active silence selects the alert's labels.
func (s *silencer) Mutes(a *Alert) bool { return len(s.mutedBy(a)) > 0 }

// mutedBy lists the IDs of the active silences that select the alert,
// sorted.
func (s *silencer) mutedBy(a *Alert) []string {
	var ids []string
	for _, x := range s.active {
		if x.Matches(a.Labels) {
			ids = append(ids, x.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// inhibitor mutes an alert another active alert explains (its root, see
// consolidate.go): it is notified in its root's thread, not on its own.
type inhibitor struct{}

// Mutes reports whether the alert has a root.
func (inhibitor) Mutes(a *Alert) bool { return a.CausedBy != "" }

// Interface checks.
var (
	_ Muter = (*silencer)(nil)
	_ Muter = inhibitor{}
)

// mute runs the mute step at now over every alert: the active silences
// set each alert's SilencedBy, then inhibition decides each active
// alert's root (CausedBy). The caller holds m.mu.
func (m *Manager) mute(now time.Time) {
	sil := newSilencer(m.silences, now)
	for fp, a := range m.alerts {
		ids := sil.mutedBy(a)
		if strings.Join(ids, ",") != strings.Join(a.SilencedBy, ",") {
			a.SilencedBy = ids
			m.dirty[fp] = true
		}
	}
	m.inhibit()
}
