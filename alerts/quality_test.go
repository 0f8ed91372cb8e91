package alerts

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestQuality: per detector and class, each incident counts once (however
// many receivers were told), caused alerts do not page, the first ack
// gives the time to ack, the latest verdict counts, and a detector whose
// alerts are mostly judged false positives is flagged with the backtest
// command.
func TestQuality(t *testing.T) {
	fired := func(min int) *time.Time { x := t0.Add(time.Duration(min) * time.Minute); return &x }
	view := func(fp, det, class, sev, change string, min int) View {
		return View{Fingerprint: fp, Detector: det, Class: class, Severity: sev, Change: change, ActiveAt: t0.Add(time.Duration(min) * time.Minute), FiredAt: fired(min)}
	}
	notes := []Notification{
		{Receiver: "p", Alerts: []View{view("a", "noisy", "model_behavior", "page", ChangeNew, 0), view("b", "noisy", "model_behavior", "page", ChangeNew, 0)}},
		{Receiver: "fallback", Alerts: []View{view("a", "noisy", "model_behavior", "page", ChangeNew, 0)}}, // same incident elsewhere
		{Receiver: "p", Alerts: []View{view("a", "noisy", "model_behavior", "page", ChangeFiring, 0)}},     // a repeat
		{Receiver: "p", Alerts: []View{view("c", "noisy", "model_behavior", "page", ChangeNew, 60), view("d", "noisy", "model_behavior", "page", ChangeNew, 60)}},
		{Receiver: "i", Alerts: []View{view("e", "nulls", "feature_pipeline", "page", ChangeNew, 0), view("f", "noisy", "population_shift", "page", ChangeCaused, 0)}},
	}
	inc := IncidentsFrom(notes)
	if len(inc) != 6 {
		t.Fatalf("incidents: %+v", inc)
	}
	act := func(fp, kind string, activeMin, afterMin int) Action {
		return Action{Fingerprint: fp, Action: kind, AlertActiveAt: t0.Add(time.Duration(activeMin) * time.Minute), At: t0.Add(time.Duration(activeMin+afterMin) * time.Minute)}
	}
	actions := []Action{
		act("a", ActionAck, 0, 4), act("a", ActionAck, 0, 2), act("b", ActionAck, 0, 10), act("c", ActionAck, 60, 30),
		act("a", ActionFalsePositive, 0, 5), act("b", ActionFalsePositive, 0, 5), act("c", ActionFalsePositive, 60, 5),
		act("d", ActionFalsePositive, 60, 1), act("d", ActionExpected, 60, 9), // changed their mind
		act("e", ActionAck, 99, 1), // another incident of e: not this one
	}
	rows := Quality(inc, actions, QualityOptions{From: t0.Add(-7 * 24 * time.Hour), To: t0, ConfigPath: "mlwatch.yaml"})
	if len(rows) != 3 {
		t.Fatalf("rows: %+v", rows)
	}
	noisy, shift, nulls := rows[0], rows[1], rows[2]
	if noisy.Detector != "noisy" || noisy.Class != "model_behavior" || noisy.Alerts != 4 || noisy.Pages != 4 || noisy.Acked != 3 ||
		float64(noisy.AckMedian) != 600 || math.Abs(float64(noisy.AckP90)-1560) > 1e-9 || noisy.FalsePositive != 3 || noisy.Expected != 1 ||
		float64(noisy.FPShare) != 0.75 || float64(noisy.PagesPerWeek) != 4 {
		t.Errorf("noisy: %+v", noisy)
	}
	if !strings.Contains(noisy.Flag, "mlwatch backtest --config mlwatch.yaml --from ") {
		t.Errorf("noisy not flagged: %q", noisy.Flag)
	}
	if nulls.Detector != "nulls" || nulls.Alerts != 1 || nulls.Acked != 0 || !math.IsNaN(float64(nulls.AckMedian)) || nulls.Flag != "" {
		t.Errorf("nulls: %+v", nulls)
	}
	if shift.Class != "population_shift" || shift.Alerts != 1 || shift.Pages != 0 {
		t.Errorf("caused alert: %+v", shift)
	}
}
