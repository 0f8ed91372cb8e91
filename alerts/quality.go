package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Incident is one time an alert fired and was notified: what alert
// fatigue is counted in.
type Incident struct {
	Fingerprint string    `json:"fingerprint"`
	Detector    string    `json:"detector"`
	Class       string    `json:"class"`
	Severity    string    `json:"severity"`
	ActiveAt    time.Time `json:"active_at"`
	FiredAt     time.Time `json:"fired_at"`
	// Paged: severity page and not explained by another alert (a caused
	// alert goes to its cause's thread, it does not page).
	Paged bool `json:"paged"`
}

// IncidentsFrom lists the incidents notifications announced (an alert's
// first notification of an incident, new or caused), once each however
// many receivers were told.
func IncidentsFrom(notes []Notification) []Incident {
	seen := map[string]int{}
	var out []Incident
	for _, n := range notes {
		for _, v := range n.Alerts {
			if v.Change != ChangeNew && v.Change != ChangeCaused {
				continue
			}
			key := v.Fingerprint + "@" + v.ActiveAt.UTC().Truncate(time.Second).Format(time.RFC3339)
			paged := v.Severity == string(configs.SeverityPage) && v.Change == ChangeNew && v.CausedBy == ""
			if i, ok := seen[key]; ok {
				out[i].Paged = out[i].Paged || paged
				continue
			}
			fired := v.ActiveAt
			if v.FiredAt != nil {
				fired = *v.FiredAt
			}
			seen[key] = len(out)
			out = append(out, Incident{Fingerprint: v.Fingerprint, Detector: v.Detector, Class: v.Class, Severity: v.Severity,
				ActiveAt: v.ActiveAt, FiredAt: fired, Paged: paged})
		}
	}
	return out
}

// LoadIncidents reads the incidents notified since `since` from the
// outbox in ClickHouse.
func LoadIncidents(ctx context.Context, db store.Store, t store.Tables, since time.Time) ([]Incident, error) {
	q := "SELECT payload FROM " + t.Outbox().Quoted() + " FINAL WHERE created_at >= ? AND kind != 'resolved' ORDER BY seq"
	res, err := db.Query(store.Priority(ctx), q, dt(since))
	if err != nil {
		return nil, fmt.Errorf("read notified incidents: %w", err)
	}
	notes := make([]Notification, 0, len(res.Rows))
	for _, r := range res.Rows {
		var n Notification
		if err := json.Unmarshal([]byte(store.Str(r[0])), &n); err != nil {
			continue // a payload of another version: not counted
		}
		notes = append(notes, n)
	}
	return IncidentsFrom(notes), nil
}

// HighFalsePositiveShare flags a detector whose alerts are judged false
// positives this often (with at least MinJudged of them judged).
const (
	HighFalsePositiveShare = 0.5
	MinJudged              = 3
)

// QualityRow is alert quality for one detector and class: how often it
// alerted and paged, how fast people acknowledged, and how they judged it.
type QualityRow struct {
	Detector string `json:"detector"`
	Class    string `json:"class"`
	Alerts   int    `json:"alerts"`
	Pages    int    `json:"pages"`
	Acked    int    `json:"acked"`
	// AckedShare is Acked / Alerts; NaN (JSON null) without alerts.
	AckedShare Number `json:"acked_share"`
	// AckMedian and AckP90 are the time from firing to the first ack, in
	// seconds (NaN when nothing was acked).
	AckMedian     Number `json:"time_to_ack_median_seconds"`
	AckP90        Number `json:"time_to_ack_p90_seconds"`
	FalsePositive int    `json:"false_positive"`
	Expected      int    `json:"expected"`
	FPShare       Number `json:"false_positive_share"`
	ExpectedShare Number `json:"expected_share"`
	PagesPerWeek  Number `json:"pages_per_week"`
	// Flag, when set, says the detector's false-positive share is high
	// and how to see its threshold's trade-off.
	Flag string `json:"flag,omitempty"`
}

// QualityOptions bound a quality report.
type QualityOptions struct {
	From, To time.Time
	// ConfigPath names the config in the backtest command of a flag.
	ConfigPath string
}

// Quality computes alert quality per detector and class from the
// incidents and the triage actions on them: each incident counts its
// first ack and its latest feedback (false positive or expected).
func Quality(incidents []Incident, actions []Action, opt QualityOptions) []QualityRow {
	type key struct{ fp, active string }
	k := func(fp string, at time.Time) key { return key{fp, at.UTC().Truncate(time.Second).Format(time.RFC3339)} }
	firstAck := map[key]time.Time{}
	feedback := map[key]Action{}
	for _, a := range actions {
		kk := k(a.Fingerprint, a.AlertActiveAt)
		switch a.Action {
		case ActionAck:
			if t, ok := firstAck[kk]; !ok || a.At.Before(t) {
				firstAck[kk] = a.At
			}
		case ActionFalsePositive, ActionExpected:
			if f, ok := feedback[kk]; !ok || !a.At.Before(f.At) {
				feedback[kk] = a
			}
		}
	}
	type agg struct {
		row  QualityRow
		acks []float64
	}
	rows := map[[2]string]*agg{}
	for _, in := range incidents {
		if !opt.From.IsZero() && in.FiredAt.Before(opt.From) {
			continue
		}
		rk := [2]string{in.Detector, in.Class}
		g := rows[rk]
		if g == nil {
			g = &agg{row: QualityRow{Detector: in.Detector, Class: in.Class}}
			rows[rk] = g
		}
		g.row.Alerts++
		if in.Paged {
			g.row.Pages++
		}
		kk := k(in.Fingerprint, in.ActiveAt)
		if t, ok := firstAck[kk]; ok {
			g.row.Acked++
			d := t.Sub(in.FiredAt).Seconds()
			if d < 0 {
				d = 0
			}
			g.acks = append(g.acks, d)
		}
		switch feedback[kk].Action {
		case ActionFalsePositive:
			g.row.FalsePositive++
		case ActionExpected:
			g.row.Expected++
		}
	}
	weeks := opt.To.Sub(opt.From).Hours() / (24 * 7)
	out := make([]QualityRow, 0, len(rows))
	for _, g := range rows {
		r := g.row
		n := float64(r.Alerts)
		r.AckedShare = Number(float64(r.Acked) / n)
		r.FPShare = Number(float64(r.FalsePositive) / n)
		r.ExpectedShare = Number(float64(r.Expected) / n)
		r.AckMedian, r.AckP90 = Number(quantile(g.acks, 0.5)), Number(quantile(g.acks, 0.9))
		r.PagesPerWeek = Number(math.NaN())
		if weeks > 0 {
			r.PagesPerWeek = Number(float64(r.Pages) / weeks)
		}
		if r.FalsePositive >= MinJudged && float64(r.FPShare) >= HighFalsePositiveShare {
			cfg := opt.ConfigPath
			if cfg == "" {
				cfg = "CONFIG"
			}
			r.Flag = fmt.Sprintf("high false-positive share (%.0f%%): see its threshold's trade-off with `mlwatch backtest --config %s --from %s --to %s`, then raise min_abs_change/min_rel_change or lower fdr for %s",
				100*float64(r.FPShare), cfg, opt.From.UTC().Format(time.RFC3339), opt.To.UTC().Format(time.RFC3339), r.Detector)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Detector != out[j].Detector {
			return out[i].Detector < out[j].Detector
		}
		return out[i].Class < out[j].Class
	})
	return out
}

// quantile is the q-quantile of xs by linear interpolation (NaN when empty).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}
