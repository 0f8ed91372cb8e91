package monitor

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mlwatch/mlwatch/store"
)

// Metrics are the daemon's Prometheus metrics, on a registry of their own
// (no package globals), so tests and reloads never collide.
type Metrics struct {
	Registry *prometheus.Registry

	runs              *prometheus.CounterVec
	runDuration       *prometheus.HistogramVec
	rowsRead          *prometheus.CounterVec
	missed            *prometheus.CounterVec
	consecutiveFails  *prometheus.GaugeVec
	lastRun           *prometheus.GaugeVec
	findings          *prometheus.GaugeVec
	skipped           *prometheus.GaugeVec
	queries           *prometheus.CounterVec
	queryDuration     *prometheus.HistogramVec
	reloadOK          prometheus.Gauge
	reloadOKTimestamp prometheus.Gauge
	notifications     *prometheus.CounterVec
	dead              *deadCollector
}

// NewMetrics registers every metric, plus the Go and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlwatch_detector_runs_total", Help: "Detector runs by outcome (success or failure).",
		}, []string{"detector", "result"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlwatch_detector_run_duration_seconds", Help: "Wall time of one detector run, query included.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"detector"}),
		rowsRead:         detectorCounter("mlwatch_detector_rows_read_total", "Rows ClickHouse read for a detector's queries."),
		missed:           detectorCounter("mlwatch_detector_missed_runs_total", "Scheduled runs skipped because the previous run was still going."),
		consecutiveFails: detectorGauge("mlwatch_detector_consecutive_failures", "Failed runs in a row; monitoring_failure fires at the configured threshold."),
		lastRun:          detectorGauge("mlwatch_detector_last_run_timestamp_seconds", "Evaluation time of the detector's last finished run."),
		findings:         detectorGauge("mlwatch_detector_findings", "Findings of the detector's last successful run."),
		skipped:          detectorGauge("mlwatch_detector_skipped_hypotheses", "Slices or features skipped (too few samples) in the last successful run."),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlwatch_clickhouse_queries_total", Help: "ClickHouse queries by engine, operation and outcome.",
		}, []string{"engine", "op", "result"}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlwatch_clickhouse_query_duration_seconds", Help: "ClickHouse query latency.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"engine", "op"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mlwatch_config_last_reload_successful", Help: "Whether the last configuration reload succeeded (1) or not (0).",
		}),
		reloadOKTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mlwatch_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful configuration reload.",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlwatch_notifications_total", Help: "Notification delivery attempts by receiver and outcome: sent, retry, dead (refused for good), fallback (a dead one handed to the fallback receiver).",
		}, []string{"receiver", "outcome"}),
		dead: &deadCollector{desc: prometheus.NewDesc("mlwatch_notifications_dead",
			"Notifications their receiver refused for good and that were not re-sent since (GET /api/v1/notifications?state=dead).", []string{"receiver"}, nil)},
	}
	r.MustRegister(m.notifications, m.dead)
	r.MustRegister(m.runs, m.runDuration, m.rowsRead, m.missed, m.consecutiveFails, m.lastRun, m.findings, m.skipped,
		m.queries, m.queryDuration, m.reloadOK, m.reloadOKTimestamp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// detectorCounter and detectorGauge make the metrics labelled by detector
// alone.
func detectorCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"detector"})
}

func detectorGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"detector"})
}

// QueryHook counts and times every ClickHouse query; wire it into the store.
func (m *Metrics) QueryHook(ev store.QueryEvent) {
	result := "success"
	if ev.Err != nil {
		result = "failure"
	}
	m.queries.WithLabelValues(ev.Engine, ev.Op, result).Inc()
	m.queryDuration.WithLabelValues(ev.Engine, ev.Op).Observe(ev.Stats.Duration.Seconds())
}

// Notification counts one delivery attempt's outcome; pass it as
// alerts.Options.OnDelivery.
func (m *Metrics) Notification(receiver, outcome string) {
	m.notifications.WithLabelValues(receiver, outcome).Inc()
}

// WatchDead makes mlwatch_notifications_dead read the dead notifications
// per receiver at each scrape.
func (m *Metrics) WatchDead(count func() map[string]int) { m.dead.count.Store(&count) }

// deadCollector reports the dead notifications per receiver as they are
// at scrape time, every configured receiver included (0 when none).
type deadCollector struct {
	desc  *prometheus.Desc
	count atomic.Pointer[func() map[string]int]
}

func (c *deadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *deadCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.count.Load()
	if f == nil {
		return
	}
	for r, n := range (*f)() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), r)
	}
}
