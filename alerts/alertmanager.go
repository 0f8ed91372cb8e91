package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
)

// Alertmanager posts alerts to an Alertmanager's /api/v2/alerts, so teams
// keep their PagerDuty and OpsGenie routes. Each alert carries the labels
// class, owner, severity, model, slice, feature (and the rest of its
// labels, alertname = the detector) and annotations with the figures.
type Alertmanager struct {
	name   string
	url    string
	client *http.Client
}

// NewAlertmanager builds an Alertmanager notifier; hc nil means a client
// with the receiver's timeout.
func NewAlertmanager(name string, cfg configs.AlertmanagerReceiver, hc *http.Client) *Alertmanager {
	if hc == nil {
		hc = &http.Client{Timeout: cfg.HTTPTimeout()}
	}
	return &Alertmanager{name: name, url: strings.TrimSuffix(cfg.URL, "/") + "/api/v2/alerts", client: hc}
}

// amAlert is the postableAlert of Alertmanager's API v2.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitempty"`
	EndsAt       time.Time         `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Notify implements Notifier.
func (am *Alertmanager) Notify(ctx context.Context, n *Notification) (string, bool, error) {
	body, err := json.Marshal(amAlerts(n))
	if err != nil {
		return "", false, fmt.Errorf("alertmanager %s: encode: %w", am.name, err)
	}
	return postJSON(ctx, am.client, am.url, "", body, "alertmanager "+am.name)
}

// amAlerts converts a notification. Firing alerts end two repeat intervals
// after the notification unless re-sent, so a vanished mlwatch does not
// leave alerts firing forever; resolved ones end at their resolution.
func amAlerts(n *Notification) []amAlert {
	out := make([]amAlert, 0, len(n.Alerts))
	keep := 2 * n.RepeatInterval
	if keep <= 0 {
		keep = 8 * time.Hour
	}
	for _, a := range n.Alerts {
		labels := map[string]string{}
		for k, v := range a.Labels {
			if v != "" {
				labels[k] = v
			}
		}
		labels["alertname"] = a.Detector
		for k, v := range map[string]string{"class": a.Class, "owner": a.Owner, "severity": a.Severity, "model": a.Model, "slice": SliceLabel(a.Slice), "feature": a.Feature} {
			if v != "" {
				labels[k] = v
			}
		}
		ann := map[string]string{
			"summary": a.Summary,
			"metric":  a.Metric,
			"value":   fmtNum(float64(a.Value)),
		}
		ann["baseline"] = fmtNum(float64(a.Baseline))
		ann["p_value"] = fmtNum(float64(a.PValue))
		if a.RunbookURL != "" {
			ann["runbook_url"] = a.RunbookURL
		}
		if a.CausedBy != "" {
			ann["caused_by"] = a.CausedBy
		}
		x := amAlert{Labels: labels, Annotations: ann, StartsAt: a.ActiveAt}
		if a.FiredAt != nil {
			x.StartsAt = *a.FiredAt
		}
		if a.Change == ChangeResolved && a.ResolvedAt != nil {
			x.EndsAt = *a.ResolvedAt
		} else {
			x.EndsAt = n.CreatedAt.Add(keep)
		}
		if n.ExternalURL != "" {
			x.GeneratorURL = strings.TrimSuffix(n.ExternalURL, "/") + "/alerts/" + a.Fingerprint
		}
		out = append(out, x)
	}
	return out
}
