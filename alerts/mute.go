package alerts

import (
	"sort"
	"strings"
	"time"
)

// The mute step: what holds back an alert's own notifications, as
// Alertmanager's inhibit/ and silence/ do. Each stage is a Muter; plan
// calls them, in a fixed order (silences, then inhibition), for every
// alert it considers (mutes.of). Manager.mute builds the stages at one
// time and records their outcome on the alerts (SilencedBy, CausedBy) for
// the API and the stored state; plan never reads those records.

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

// mutes is the mute step as plan applies it, one stage after the other:
// an alert the silence stage mutes says nothing; one the inhibition stage
// mutes speaks only in its root's threads.
type mutes struct {
	silence Muter
	inhibit Muter
}

// muting is the stage of the mute step that holds an alert back.
type muting int

const (
	notMuted muting = iota
	mutedBySilence
	mutedByInhibition
)

// of runs the stages over a in order and returns the first that mutes it.
func (s mutes) of(a *Alert) muting {
	switch {
	case s.silence != nil && s.silence.Mutes(a):
		return mutedBySilence
	case s.inhibit != nil && s.inhibit.Mutes(a):
		return mutedByInhibition
	}
	return notMuted
}

// Interface checks.
var (
	_ Muter = (*silencer)(nil)
	_ Muter = inhibitor{}
)

// mute prepares the mute step at now: inhibition decides each active
// alert's root (CausedBy, consolidate.go), and each alert records the
// active silences that select it (SilencedBy, for the API and the stored
// state). It returns the stages plan calls. The caller holds m.mu.
func (m *Manager) mute(now time.Time) mutes {
	sil := newSilencer(m.silences, now)
	for fp, a := range m.alerts {
		ids := sil.mutedBy(a)
		if strings.Join(ids, ",") != strings.Join(a.SilencedBy, ",") {
			a.SilencedBy = ids
			m.dirty[fp] = true
		}
	}
	m.inhibit()
	return mutes{silence: sil, inhibit: inhibitor{}}
}
