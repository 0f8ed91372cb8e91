// Package alerts turns detector findings into few, correct notifications:
// the alert lifecycle (pending, firing, resolved, with for and
// keep_firing_for), fingerprints and dedup, routing by failure class to the
// owning team, root-cause inhibition, grouping, silences, and a durable
// outbox delivered by notifiers (Slack, webhook, Alertmanager). State,
// silences and the outbox live in ClickHouse so a restart loses nothing.
package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// State is where an alert is in its lifecycle, as in Prometheus: a finding
// makes it pending, holding for `for` makes it firing, staying clear for
// keep_firing_for resolves it.
type State int

// States of an alert. Inactive alerts are not kept.
const (
	StateInactive State = iota
	StatePending
	StateFiring
	StateResolved
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	case StateResolved:
		return "resolved"
	}
	return "inactive"
}

// parseState reads State.String's output; anything else is inactive.
func parseState(s string) State {
	switch s {
	case "pending":
		return StatePending
	case "firing":
		return StateFiring
	case "resolved":
		return StateResolved
	}
	return StateInactive
}

// Alert is one alerting condition: one (detector, model, class, slice,
// feature), plain data with its lifecycle timestamps and what was sent
// about it to each receiver.
type Alert struct {
	Fingerprint string
	// Labels are what routes and silences match: detector, kind, class,
	// owner, severity, model, feature, metric, slice, each slice column and
	// the detector's configured labels.
	Labels   map[string]string
	Finding  detectors.Finding
	Owner    detectors.Owner
	Severity configs.Severity
	// RunbookURL comes from the detector's config, else the model's.
	RunbookURL string

	State           State
	ActiveAt        time.Time
	FiredAt         time.Time
	ResolvedAt      time.Time
	LastEvalAt      time.Time
	KeepFiringSince time.Time

	// CausedBy is the fingerprint of the root alert that explains this
	// one: an infra cause, or a product alert whose move this one is
	// (consolidate.go).
	CausedBy string
	// moves says what else a root moved ("also moves divergence in 9
	// country slices"); the view appends it to the summary.
	moves string
	// rollout is the version change the alert was first seen with, kept
	// while it stays active since rolloutAt (consolidate.go).
	rollout   *detectors.Rollout
	rolloutAt time.Time
	// folded: the alert repeats its root's move from another detector of
	// the same metric, or is a slice of the root's own detector that
	// moved with it (ownMove); it is shown inside the root's view
	// (consolidate.go).
	folded, ownMove bool
	// foldInto is the alert whose view carries a folded one: its root, or
	// the alert of its incident it repeats (a sibling of the same slice).
	foldInto string
	// SilencedBy lists the IDs of the active silences that match.
	SilencedBy []string
	// ack is who acknowledged the current incident (triage.go).
	ack *Ack
	// onset is when the incident that became active at onsetActive began
	// according to the prediction log (onset.go).
	onset, onsetActive time.Time
	onsetChecked       bool
	// Sent records, per receiver, the thread the alert was notified in.
	Sent map[string]*Sent
	// source is the run that keeps the alert's lifecycle: the name
	// Observe was given (a detector, or a detector's failures). Only that
	// source's runs clear it (observe.go).
	source string
}

// Sent is what one receiver was told about one alert: the group (and its
// first message, whose thread takes later messages) and when.
type Sent struct {
	Group    string    `json:"group"`
	Root     string    `json:"root"` // outbox ID of the group's first message
	At       time.Time `json:"at"`   // last firing or repeat notification
	Resolved bool      `json:"resolved"`
}

// Fingerprint identifies an alert across evaluations and restarts: the
// same detector, model, class, slice and feature is the same alert.
func Fingerprint(detector, model, class string, slice map[string]string, feature string) string {
	h := sha256.New()
	for _, s := range []string{detector, model, class, detectors.SliceKey(slice), feature} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// reservedLabels are set by mlwatch; slice columns and configured labels
// with these names do not override them.
var reservedLabels = map[string]bool{
	"alertname": true, "detector": true, "kind": true, "class": true, "owner": true, "severity": true,
	"model": true, "feature": true, "metric": true, "slice": true,
}

// SliceLabel renders a slice as "col=value,col2=value2" in column order
// ("" for the aggregate), the human form used as the slice label.
func SliceLabel(slice map[string]string) string { return detectors.JoinSlice(slice, ",") }

// buildLabels assembles an alert's labels from its finding.
func buildLabels(f detectors.Finding, owner detectors.Owner, severity configs.Severity, extra map[string]string) map[string]string {
	l := map[string]string{}
	for k, v := range extra {
		if !reservedLabels[k] {
			l[k] = v
		}
	}
	for k, v := range f.Slice {
		if !reservedLabels[k] {
			l[k] = v
		}
	}
	set := func(k, v string) {
		if v != "" {
			l[k] = v
		}
	}
	set("detector", f.Detector)
	set("kind", f.Kind)
	set("class", string(f.Class))
	set("owner", string(owner))
	set("severity", string(severity))
	set("model", f.Model)
	set("feature", f.Feature)
	set("metric", f.Metric)
	set("slice", SliceLabel(f.Slice))
	return l
}

// CompleteLabels fills owner and severity from the class when a label set
// (e.g. from `mlwatch routes test`) names a class but not them.
func CompleteLabels(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels)+2)
	for k, v := range labels {
		out[k] = v
	}
	if ci, ok := detectors.Classes[detectors.Class(out["class"])]; ok {
		if out["owner"] == "" {
			out["owner"] = string(ci.Owner)
		}
		if out["severity"] == "" {
			out["severity"] = string(ci.Severity)
		}
	}
	return out
}

var severityRank = map[configs.Severity]int{configs.SeverityPage: 3, configs.SeverityTicket: 2, configs.SeverityInfo: 1}

// preferred says whether finding a rather than b speaks for alert al (nil
// when new) when both share its fingerprint (a slice's block rate and its
// score distribution): the more severe, then the metric the alert already
// shows, so that its thread and its resolution tell one story, then the
// worse.
func preferred(al *Alert, a, b *detectors.Finding, sevA, sevB configs.Severity) bool {
	if ra, rb := severityRank[sevA], severityRank[sevB]; ra != rb {
		return ra > rb
	}
	if al != nil && (al.State == StatePending || al.State == StateFiring) {
		if ma, mb := a.Metric == al.Finding.Metric, b.Metric == al.Finding.Metric; ma != mb {
			return ma
		}
	}
	return worse(a, b, sevA, sevB)
}

// worse orders findings worst first: severity, then the smaller p-value,
// then the larger relative effect.
func worse(a, b *detectors.Finding, sevA, sevB configs.Severity) bool {
	if ra, rb := severityRank[sevA], severityRank[sevB]; ra != rb {
		return ra > rb
	}
	pa, pb := a.PValue, b.PValue
	switch {
	case !math.IsNaN(pa) && math.IsNaN(pb):
		return true
	case math.IsNaN(pa) && !math.IsNaN(pb):
		return false
	case !math.IsNaN(pa) && pa != pb:
		return pa < pb
	}
	return relEffect(a) > relEffect(b)
}

func relEffect(f *detectors.Finding) float64 {
	d := math.Abs(f.Value - f.Baseline)
	if f.Baseline != 0 && !math.IsNaN(f.Baseline) {
		d /= math.Abs(f.Baseline)
	}
	if math.IsNaN(d) {
		return 0
	}
	return d
}

// Number is a float that encodes NaN and infinities as JSON null, so a
// missing p-value prints as null instead of failing the encoder.
type Number float64

// numberDigits is how many significant digits a Number keeps in JSON.
// ClickHouse sums floats in parallel threads, in no fixed order, so the
// same rows can give figures that differ in the 16th digit from one run
// to the next; ten digits are more than any reader uses and keep the
// output of an evaluation the same bytes every time.
const numberDigits = 10

// MarshalJSON writes null for NaN and infinities and rounds the others
// to numberDigits significant digits.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	f, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'g', numberDigits, 64), 64)
	return json.Marshal(f)
}

// UnmarshalJSON reads null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// View is an alert as the CLI, the HTTP API and notifications show it; its
// JSON is the `eval --format json` contract (README.md; checked field by
// field by TestEvalJSONContract in cmd/mlwatch/eval_test.go).
type View struct {
	Fingerprint string            `json:"fingerprint"`
	State       string            `json:"state"`
	Detector    string            `json:"detector"`
	Kind        string            `json:"kind"`
	Class       string            `json:"class"`
	Owner       string            `json:"owner"`
	Severity    string            `json:"severity"`
	Receiver    string            `json:"receiver"`
	Receivers   []string          `json:"receivers"`
	Model       string            `json:"model"`
	Slice       map[string]string `json:"slice"`
	Feature     string            `json:"feature"`
	Metric      string            `json:"metric"`
	Value       Number            `json:"value"`
	Baseline    Number            `json:"baseline"`
	PValue      Number            `json:"p_value"`
	Effect      Number            `json:"effect"`
	NCurrent    uint64            `json:"n_current"`
	NBaseline   uint64            `json:"n_baseline"`
	ShadowValue Number            `json:"shadow_value"`
	ShadowBase  Number            `json:"shadow_baseline"`
	Summary     string            `json:"summary"`
	CausedBy    string            `json:"caused_by"`
	Silenced    bool              `json:"silenced"`
	SilencedBy  []string          `json:"silenced_by"`
	Labels      map[string]string `json:"labels"`
	RunbookURL  string            `json:"runbook_url,omitempty"`
	WindowStart time.Time         `json:"window_start"`
	At          time.Time         `json:"at"`
	ActiveAt    time.Time         `json:"active_at"`
	// Onset is when the incident began according to the prediction log,
	// when that is earlier than ActiveAt (a daemon started during it).
	Onset      *time.Time `json:"onset,omitempty"`
	FiredAt    *time.Time `json:"fired_at,omitempty"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Folded are the alerts folded into this root, not alerts of their
	// own (consolidate.go): twins (the same metric's move seen by another
	// detector of the model) and the slices of its own detector that
	// moved with a broad root.
	Folded []View `json:"folded,omitempty"`
	// Change is what a notification says about the alert: new, firing
	// (still), caused (a child shown under its cause) or resolved. Empty
	// outside notifications.
	Change string `json:"change,omitempty"`
	// Carried marks an alert a notification lists because it belongs to
	// the thread's incident, not because it changed (Slack counts these
	// instead of repeating them).
	Carried bool `json:"carried,omitempty"`
	// Ack is who acknowledged the alert's current incident, if anyone.
	Ack *Ack `json:"ack,omitempty"`
}

// summaryWith appends a root's note on the other alerts it explains.
func summaryWith(summary, moves string) string {
	if moves == "" {
		return summary
	}
	if summary == "" {
		return moves
	}
	if strings.Contains(summary, "also moves ") {
		return summary + "; and " + strings.TrimPrefix(moves, "also moves ")
	}
	return summary + "; " + moves
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// view renders an alert; receivers are where its notifications go.
func (a *Alert) view(receivers []string) View {
	f := a.Finding
	slice := f.Slice
	if slice == nil {
		slice = map[string]string{}
	}
	labels := make(map[string]string, len(a.Labels))
	for k, v := range a.Labels {
		labels[k] = v
	}
	if receivers == nil {
		receivers = []string{}
	}
	silenced := append([]string{}, a.SilencedBy...)
	return View{
		Fingerprint: a.Fingerprint,
		State:       a.State.String(),
		Detector:    f.Detector,
		Kind:        f.Kind,
		Class:       string(f.Class),
		Owner:       string(a.Owner),
		Severity:    string(a.Severity),
		Receiver:    strings.Join(receivers, ","),
		Receivers:   receivers,
		Model:       f.Model,
		Slice:       slice,
		Feature:     f.Feature,
		Metric:      f.Metric,
		Value:       Number(f.Value),
		Baseline:    Number(f.Baseline),
		PValue:      Number(f.PValue),
		Effect:      Number(f.Effect),
		NCurrent:    f.NCurrent,
		NBaseline:   f.NBaseline,
		ShadowValue: Number(f.ShadowValue),
		ShadowBase:  Number(f.ShadowBaseline),
		Summary:     summaryWith(f.Summary, a.moves),
		CausedBy:    a.CausedBy,
		Silenced:    len(a.SilencedBy) > 0,
		SilencedBy:  silenced,
		Labels:      labels,
		RunbookURL:  a.RunbookURL,
		WindowStart: f.WindowStart,
		At:          f.At,
		ActiveAt:    a.ActiveAt,
		Onset:       timePtr(a.onsetFor()),
		FiredAt:     timePtr(a.FiredAt),
		ResolvedAt:  timePtr(a.ResolvedAt),
		Ack:         a.ackView(),
	}
}
