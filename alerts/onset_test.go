package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
)

// An alert dated from the log shows its onset as "since" (view, Slack
// line) for the incident it was found for; a new incident of the same
// alert needs dating again and does not inherit the old onset.
func TestOnsetDatesTheIncident(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	clock := newClock()
	m := newManager(t, cfg, clock, &recorder{}, false)
	mustObserve(t, m, "fraud-block-rate", t0, finding("fraud-block-rate", detectors.ClassModelBehavior, "fraud", "country=FR", 0.3, 0.01, 1e-9))
	vs := m.Alerts()
	if len(vs) != 1 {
		t.Fatalf("alerts %+v", vs)
	}
	fp := vs[0].Fingerprint
	activeAt, ok := m.NeedsOnset(fp)
	if !ok || !activeAt.Equal(t0) {
		t.Fatalf("NeedsOnset = %s, %v; want %s, true", activeAt, ok, t0)
	}
	if _, ok := m.NeedsOnset("nope"); ok {
		t.Error("an unknown alert needs no onset")
	}
	onset := t0.Add(-3 * time.Hour)
	m.SetOnset(fp, t0.Add(time.Minute), onset) // another incident's: ignored
	if v, _ := m.Alert(fp); v.Onset != nil {
		t.Errorf("onset of another incident applied: %s", v.Onset)
	}
	m.SetOnset(fp, activeAt, onset)
	v, _ := m.Alert(fp)
	if v.Onset == nil || !v.Onset.Equal(onset) || !v.Since().Equal(onset) || !v.ActiveAt.Equal(t0) {
		t.Fatalf("view onset %v since %s active %s; want onset %s, ActiveAt kept", v.Onset, v.Since(), v.ActiveAt, onset)
	}
	if _, ok := m.NeedsOnset(fp); ok {
		t.Error("a dated alert needs no onset again")
	}
	line := (&Slack{}).alertLine(v, t0.Add(5*time.Minute))
	if !strings.Contains(line, "since Mar 2 07:00 UTC") {
		t.Errorf("Slack line %q does not say since the onset", line)
	}

	// Resolved, then firing again: a new incident, dated anew.
	mustObserve(t, m, "fraud-block-rate", t0.Add(10*time.Minute))
	mustObserve(t, m, "fraud-block-rate", t0.Add(30*time.Minute), finding("fraud-block-rate", detectors.ClassModelBehavior, "fraud", "country=FR", 0.3, 0.01, 1e-9))
	v, _ = m.Alert(fp)
	if v.Onset != nil || !v.Since().Equal(v.ActiveAt) {
		t.Errorf("new incident kept the old onset: %v (active %s)", v.Onset, v.ActiveAt)
	}
	if at, ok := m.NeedsOnset(fp); !ok || !at.Equal(v.ActiveAt) {
		t.Errorf("new incident: NeedsOnset = %s, %v", at, ok)
	}
	// An onset no earlier than ActiveAt says nothing new.
	m.SetOnset(fp, v.ActiveAt, v.ActiveAt.Add(time.Minute))
	if v, _ = m.Alert(fp); v.Onset != nil {
		t.Errorf("onset after ActiveAt shown: %s", v.Onset)
	}
}
