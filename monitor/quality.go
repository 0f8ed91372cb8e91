package monitor

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/store"
)

// QualityWindow is the span the daemon's alert-quality figures cover
// (status page, /metrics, /api/v1/quality).
const QualityWindow = 30 * 24 * time.Hour

// ComputeQuality reads the incidents notified in [from, to) and the triage
// actions on them from mlwatch's tables, and computes alert quality per
// detector and class.
func ComputeQuality(ctx context.Context, db store.Store, t store.Tables, configPath string, from, to time.Time) ([]alerts.QualityRow, error) {
	incidents, err := alerts.LoadIncidents(ctx, db, t, from)
	if err != nil {
		return nil, err
	}
	// An ack or a verdict can come a while after the incident started.
	actions, err := alerts.NewTriageLog(db, t).List(ctx, from, "")
	if err != nil {
		return nil, err
	}
	return alerts.Quality(incidents, actions, alerts.QualityOptions{From: from, To: to, ConfigPath: configPath}), nil
}

// qualityCache keeps the last computed quality for the page, the API and
// the metrics; it is refreshed by the daemon, never on a request.
type qualityCache struct {
	mu   sync.Mutex
	rows []alerts.QualityRow
	at   time.Time
}

func (c *qualityCache) set(rows []alerts.QualityRow, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows, c.at = rows, at
}

func (c *qualityCache) get() []alerts.QualityRow {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]alerts.QualityRow(nil), c.rows...)
}

// WatchQuality makes /metrics report alert quality as get returns it at
// scrape time.
func (m *Metrics) WatchQuality(get func() []alerts.QualityRow) {
	m.Registry.MustRegister(&qualityCollector{get: get})
}

var (
	qualityLabels = []string{"detector", "class"}
	qualityDescs  = map[string]*prometheus.Desc{
		"alerts":   prometheus.NewDesc("mlwatch_alert_quality_alerts", "Alert incidents notified in the last 30 days.", qualityLabels, nil),
		"pages":    prometheus.NewDesc("mlwatch_alert_quality_pages", "Pages (severity page, not caused by another alert) in the last 30 days.", qualityLabels, nil),
		"acked":    prometheus.NewDesc("mlwatch_alert_quality_acked_ratio", "Share of the incidents acknowledged from Slack.", qualityLabels, nil),
		"ack_p50":  prometheus.NewDesc("mlwatch_alert_quality_time_to_ack_median_seconds", "Median time from firing to the first ack.", qualityLabels, nil),
		"ack_p90":  prometheus.NewDesc("mlwatch_alert_quality_time_to_ack_p90_seconds", "90th percentile of the time from firing to the first ack.", qualityLabels, nil),
		"fp":       prometheus.NewDesc("mlwatch_alert_quality_false_positive_ratio", "Share of the incidents judged false positives.", qualityLabels, nil),
		"expected": prometheus.NewDesc("mlwatch_alert_quality_expected_ratio", "Share of the incidents judged expected.", qualityLabels, nil),
		"pages_wk": prometheus.NewDesc("mlwatch_alert_quality_pages_per_week", "Pages per week over the last 30 days.", qualityLabels, nil),
	}
)

type qualityCollector struct{ get func() []alerts.QualityRow }

func (c *qualityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range qualityDescs {
		ch <- d
	}
}

func (c *qualityCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.get() {
		emit := func(name string, v float64) {
			if !math.IsNaN(v) {
				ch <- prometheus.MustNewConstMetric(qualityDescs[name], prometheus.GaugeValue, v, r.Detector, r.Class)
			}
		}
		emit("alerts", float64(r.Alerts))
		emit("pages", float64(r.Pages))
		emit("acked", float64(r.AckedShare))
		emit("ack_p50", float64(r.AckMedian))
		emit("ack_p90", float64(r.AckP90))
		emit("fp", float64(r.FPShare))
		emit("expected", float64(r.ExpectedShare))
		emit("pages_wk", float64(r.PagesPerWeek))
	}
}

// quality is GET /api/v1/quality: alert quality of the last 30 days.
func (s *server) quality(w http.ResponseWriter, _ *http.Request) {
	out := []alerts.QualityRow{}
	if s.opt.Quality != nil {
		out = append(out, s.opt.Quality()...)
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
}
