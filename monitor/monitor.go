// Package monitor runs detectors on their schedules and feeds their
// findings to the alert pipeline: the daemon (`mlwatch run`), one-shot
// evaluation (`mlwatch eval`) and backtests share it. It also serves the
// HTTP API, metrics and the status page.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
)

// KindMonitor is the kind of the findings the monitor raises itself.
const KindMonitor = alerts.KindMonitor

// Source values of evaluation rows.
const (
	SourceRun      = "run"
	SourceBacktest = "backtest"
)

// Observer is what the monitor needs from the alert pipeline for each run.
// A successful run is observed with its findings; a failing one, past
// the failure threshold, with its monitoring_failure only.
type Observer interface {
	Observe(ctx context.Context, name string, at time.Time, findings []detectors.Finding, unchecked ...detectors.Unchecked) error
	ObserveFailure(ctx context.Context, name string, at time.Time, f detectors.Finding) error
}

// Options configure a Monitor.
type Options struct {
	Config *configs.Config
	// Store runs the detectors' queries; Record, when set, also receives
	// evaluation and run rows (nil: nothing is written).
	Store  store.Store
	Record store.Store
	Alerts Observer
	// Metrics may be nil (eval, backtest).
	Metrics *Metrics
	Logger  *zap.Logger
	// Source tags evaluation rows: SourceRun or SourceBacktest.
	Source string
	// HistorySize is how many runs per detector the history keeps.
	HistorySize int
	// Onsets, when set, dates the incidents of alerts a run keeps active
	// from the prediction log (the daemon; onset.go).
	Onsets OnsetKeeper
	// Incremental, when set, evaluates the detectors it covers from
	// partial aggregates of closed time buckets (detectors.Incremental:
	// the same findings, each row read once); nil: the config says which
	// detectors are (global.incremental, detectors.IncrementalFor).
	Incremental *detectors.Incremental
}

// Monitor runs detectors and hands their findings to the alert pipeline.
// Safe for concurrent runs; SetConfig swaps detectors atomically.
type Monitor struct {
	db      store.Store
	record  store.Store
	alerts  Observer
	metrics *Metrics
	history *History
	log     *zap.Logger
	source  string
	vstate  *versionState
	onsets  OnsetKeeper
	charts  seriesCache
	inc     *detectors.Incremental

	guards guardrailState

	mu     sync.RWMutex
	cfg    *configs.Config
	tables store.Tables
	dets   map[string]*detectors.Detector
	cinc   *detectors.Incremental // the config's (when inc is nil)
	// initiator: the models whose detectors pair on the initiator
	// (PairOnInitiator).
	initiator map[string]bool
}

// New builds a monitor for a validated config.
func New(opt Options) (*Monitor, error) {
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.Source == "" {
		opt.Source = SourceRun
	}
	if opt.HistorySize == 0 {
		opt.HistorySize = 20
	}
	m := &Monitor{db: opt.Store, record: opt.Record, alerts: opt.Alerts, metrics: opt.Metrics,
		history: NewHistory(opt.HistorySize), log: opt.Logger, source: opt.Source, vstate: newVersionState(), onsets: opt.Onsets, inc: opt.Incremental}
	if err := m.SetConfig(opt.Config); err != nil {
		return nil, err
	}
	return m, nil
}

// SetConfig builds the detectors of cfg and swaps them in; on error the
// previous detectors keep running.
func (m *Monitor) SetConfig(cfg *configs.Config) error {
	dets := map[string]*detectors.Detector{}
	var errs []error
	for i := range cfg.Detectors {
		d := &cfg.Detectors[i]
		if d.Disabled {
			continue
		}
		det, err := detectors.New(cfg, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dets[d.Name] = det
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var cinc *detectors.Incremental
	if m.inc == nil {
		var err error
		if cinc, err = detectors.IncrementalFor(m.db, cfg); err != nil {
			return err
		}
	}
	m.mu.Lock()
	for _, det := range dets {
		det.PairOnInitiator(m.initiator[det.Config().Model])
	}
	m.cfg, m.dets, m.cinc = cfg, dets, cinc
	m.tables = store.Tables{Database: cfg.State.Database, Prefix: cfg.State.TablePrefix}
	m.mu.Unlock()
	return nil
}

// PairOnInitiator makes the detectors of the given models evaluate
// through their Distributed table in one query instead of on each shard
// of their cluster (models[].cluster), the others on the shards again:
// the models whose pairs are split across shards (SplitPairWarnings). It
// holds for the detectors SetConfig builds later too.
func (m *Monitor) PairOnInitiator(models map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initiator = models
	for _, det := range m.dets {
		det.PairOnInitiator(models[det.Config().Model])
	}
}

// Config returns the config in use.
func (m *Monitor) Config() *configs.Config {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cfg
}

// Names lists the enabled detectors, sorted.
func (m *Monitor) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.dets))
}

// History returns the run history.
func (m *Monitor) History() *History { return m.history }

func (m *Monitor) detector(name string) (*detectors.Detector, *configs.Config) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.dets[name], m.cfg
}

// clean drops old partials (detectors.Incremental.Clean), except in a
// backtest.
func (m *Monitor) clean(ctx context.Context, inc *detectors.Incremental) (int, error) {
	if m.source == SourceBacktest {
		return 0, nil
	}
	return inc.Clean(ctx)
}

// incremental is the incremental evaluation of detector dc, nil when its
// queries read the rows.
func (m *Monitor) incremental(dc *configs.Detector) *detectors.Incremental {
	if m.inc != nil {
		return m.inc
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cinc == nil || !m.cfg.IncrementalOn(dc) {
		return nil
	}
	return m.cinc
}

// Run evaluates one detector at `at` (its scheduled time), records what
// happened and feeds the alert pipeline. A failed run resolves nothing; a
// streak of failures at the configured threshold raises monitoring_failure,
// and the next successful run resolves it.
func (m *Monitor) Run(ctx context.Context, name string, at time.Time) (*detectors.Result, error) {
	det, cfg := m.detector(name)
	if det == nil {
		return nil, fmt.Errorf("monitor: no detector %q", name)
	}
	dc := det.Config()
	rctx, cancel := context.WithTimeout(ctx, dc.Timeout.D())
	defer cancel()
	started := time.Now()
	var res *detectors.Result
	var err error
	if inc := m.incremental(dc); inc != nil {
		res, err = inc.Evaluate(rctx, det, at)
		// A backtest's old buckets are what it reads: it drops nothing.
		if n, cerr := m.clean(ctx, inc); cerr != nil {
			m.log.Warn("cannot drop old partials", zap.Error(cerr))
		} else if n > 0 {
			m.log.Info("dropped old partials", zap.Int("partitions", n))
		}
	} else {
		res, err = det.Evaluate(rctx, m.db, at)
	}
	run := Run{Detector: name, At: at, Started: started, Duration: time.Since(started)}
	if res != nil {
		run.Queries = []string{res.Query}
		run.RowsRead, run.BytesRead = res.Stats.RowsRead, res.Stats.BytesRead
		run.Findings, run.Skipped = len(res.Findings), res.Skipped
	}
	waiting := det.LabelsMissing(err) && !m.history.Succeeded(name)
	switch {
	case waiting:
		// Labels that never arrived are a start-up warning, not a
		// monitoring failure: the detector waits for its table. One that
		// was read before and is gone fails like any other query.
		run.Warning = err.Error()
	case err != nil:
		run.Error = err.Error()
	}
	fails := m.history.Add(run)
	if waiting {
		m.observeMetrics(run, fails)
		m.writeRun(ctx, run)
		m.log.Warn("labels table missing: the performance detector waits for it", zap.String("detector", name), zap.Error(err))
		if res == nil {
			res = &detectors.Result{}
		}
		res.Findings = nil
		return res, nil
	}
	m.observeMetrics(run, fails)
	m.writeRun(ctx, run)
	if err != nil {
		m.log.Warn("detector failed", zap.String("detector", name), zap.Time("at", at), zap.Int("failures_in_a_row", fails), zap.Error(err))
		if m.alerts != nil && fails >= cfg.Global.FailureThreshold {
			f := failureFinding(dc, fails, err, at)
			if oerr := m.alerts.ObserveFailure(ctx, name, at, f); oerr != nil {
				m.log.Warn("alert pipeline rejected a monitoring failure", zap.String("detector", name), zap.Error(oerr))
			}
		}
		return res, err
	}
	m.log.Debug("detector ran", zap.String("detector", name), zap.Time("at", at), zap.Duration("duration", run.Duration),
		zap.Int("findings", len(res.Findings)), zap.Int("skipped", res.Skipped), zap.Uint64("rows_read", run.RowsRead))
	m.markRollouts(rctx, cfg, res)
	m.writeEvaluations(ctx, res)
	if m.alerts != nil {
		if err := m.alerts.Observe(ctx, name, at, res.Findings, res.Unchecked...); err != nil {
			return res, fmt.Errorf("detector %s: alert pipeline: %w", name, err)
		}
		m.markOnsets(ctx, det, res)
	}
	return res, nil
}

// failureFinding is the monitoring_failure a failing detector raises.
func failureFinding(dc *configs.Detector, fails int, err error, at time.Time) detectors.Finding {
	info := detectors.Classes[detectors.ClassMonitoringFailure]
	nan := math.NaN()
	return detectors.Finding{
		Detector: dc.Name, Kind: KindMonitor, Severity: info.Severity, Model: dc.Model,
		Evaluation: detectors.Evaluation{
			Metric: "consecutive_failures", Slice: map[string]string{}, Class: detectors.ClassMonitoringFailure,
			Value: float64(fails), Baseline: 0, BaselineLow: nan, BaselineHigh: nan, ShadowValue: nan, PValue: nan, Firing: true,
		},
		Effect: float64(fails), ShadowBaseline: nan,
		Summary: fmt.Sprintf("detector %s failed %d runs in a row; last error: %v", dc.Name, fails, err),
		At:      at, WindowStart: at.Add(-dc.Window.D()), WindowEnd: at,
	}
}

func (m *Monitor) observeMetrics(r Run, fails int) {
	if m.metrics == nil {
		return
	}
	result := "success"
	if r.Error != "" {
		result = "failure"
	}
	m.metrics.runs.WithLabelValues(r.Detector, result).Inc()
	m.metrics.runDuration.WithLabelValues(r.Detector).Observe(r.Duration.Seconds())
	m.metrics.rowsRead.WithLabelValues(r.Detector).Add(float64(r.RowsRead))
	m.metrics.consecutiveFails.WithLabelValues(r.Detector).Set(float64(fails))
	m.metrics.lastRun.WithLabelValues(r.Detector).Set(float64(r.At.Unix()))
	if r.Error == "" {
		m.metrics.findings.WithLabelValues(r.Detector).Set(float64(r.Findings))
		m.metrics.skipped.WithLabelValues(r.Detector).Set(float64(r.Skipped))
	}
}

// Missed records a fire time skipped because the previous run was going.
func (m *Monitor) Missed(name string) {
	m.history.Missed(name)
	if m.metrics != nil {
		m.metrics.missed.WithLabelValues(name).Inc()
	}
}

// recordTimeout bounds writing a run's records: a frozen ClickHouse must
// not hold a failed run (and the next fire times) for query_timeout.
const recordTimeout = 5 * time.Second

// RunsTable is the runs table (store.Tables.Runs), one row per detector
// run: query text, duration, rows read, error.
var RunsTable = store.TableDef{
	Columns: [][2]string{
		{"at", "DateTime"},
		{"started", "DateTime"},
		{"detector", "String"},
		{"duration_ms", "Float64"},
		{"rows_read", "UInt64"},
		{"bytes_read", "UInt64"},
		{"findings", "UInt32"},
		{"skipped", "UInt32"},
		{"query", "String"},
		{"error", "String"},
	},
	Engine: "MergeTree PARTITION BY toYYYYMMDD(at) ORDER BY (detector, at)",
}

// runColumns are the runs table's columns, in the order writeRun uses.
var runColumns = RunsTable.ColumnNames()

// TableDefs are all of mlwatch's own tables, named under t, for
// store.Apply.
func TableDefs(t store.Tables) []store.TableDef {
	defs := append([]store.TableDef{EvaluationsDef(t), RunsTable.Named(t.Runs())}, alerts.TableDefs(t)...)
	return append(defs, detectors.IncrementalTables(t.Partials())...)
}

// EvaluationsDef is the evaluations table named under t.
func EvaluationsDef(t store.Tables) store.TableDef {
	return detectors.EvaluationsTable.Named(t.Evaluations())
}

func (m *Monitor) writeRun(ctx context.Context, r Run) {
	if m.record == nil {
		return
	}
	m.mu.RLock()
	t := m.tables.Runs()
	m.mu.RUnlock()
	q := ""
	if len(r.Queries) > 0 {
		q = r.Queries[0]
	}
	row := []any{r.At, r.Started, r.Detector, float64(r.Duration.Microseconds()) / 1000, r.RowsRead, r.BytesRead,
		uint32(r.Findings), uint32(r.Skipped), q, r.Error}
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	if err := m.record.Insert(ctx, t, runColumns, [][]any{row}); err != nil {
		m.log.Warn("cannot record detector run", zap.String("detector", r.Detector), zap.Error(err))
	}
}

func (m *Monitor) writeEvaluations(ctx context.Context, res *detectors.Result) {
	if m.record == nil || len(res.Evaluations) == 0 {
		return
	}
	m.mu.RLock()
	t := m.tables.Evaluations()
	m.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	if err := m.record.Insert(ctx, t, detectors.EvaluationColumns, res.EvaluationRows(m.source)); err != nil {
		m.log.Warn("cannot record evaluations", zap.String("detector", res.Detector), zap.Error(err))
	}
}

// Statuses returns every enabled detector's health, for the API and page.
func (m *Monitor) Statuses() []DetectorStatus {
	m.mu.RLock()
	cfg := m.cfg
	m.mu.RUnlock()
	var out []DetectorStatus
	for _, d := range cfg.Detectors {
		if d.Disabled {
			continue
		}
		runs, fails, missed := m.history.Status(d.Name)
		out = append(out, DetectorStatus{Name: d.Name, Kind: d.Kind, Model: d.Model, Schedule: d.Schedule,
			ConsecutiveFailures: fails, Missed: missed, Runs: runs})
	}
	return out
}

// Tasks returns a scheduler task per enabled detector.
func (m *Monitor) Tasks(after func(name string, at time.Time)) []Task {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var tasks []Task
	for _, d := range m.cfg.Detectors {
		if d.Disabled || m.dets[d.Name] == nil {
			continue
		}
		name := d.Name
		tasks = append(tasks, Task{Name: name, Schedule: d.Cron, Run: func(ctx context.Context, at time.Time) {
			_, _ = m.Run(ctx, name, at)
			if after != nil {
				after(name, at)
			}
		}})
	}
	return append(tasks, m.guardrailTasks(m.cfg)...)
}

// Series reads the points of an alert's chart from the evaluations table:
// the last two days of the alert's metric, slice and feature.
func (m *Monitor) Series(ctx context.Context, v alerts.View) ([]Point, error) {
	if m.record == nil {
		return nil, nil
	}
	m.mu.RLock()
	t := m.tables.Evaluations()
	m.mu.RUnlock()
	end := v.At
	if end.IsZero() {
		end = time.Now()
	}
	res, err := m.record.Query(ctx, "SELECT at, value, baseline, baseline_low, baseline_high, shadow_value, firing FROM "+t.Quoted()+
		" WHERE detector = ? AND metric = ? AND slice = ? AND feature = ? AND at >= ? AND at <= ? ORDER BY at LIMIT 5000",
		v.Detector, v.Metric, detectors.SliceKey(v.Slice), v.Feature, end.Add(-48*time.Hour), end.Add(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("chart of %s: %w", v.Fingerprint, err)
	}
	pts := make([]Point, 0, len(res.Rows))
	for _, r := range res.Rows {
		pts = append(pts, Point{At: store.Time(r[0]), Value: store.Float(r[1]), Baseline: store.Float(r[2]),
			Low: store.Float(r[3]), High: store.Float(r[4]), Shadow: store.Float(r[5]), Firing: store.Int(r[6]) == 1})
	}
	return pts, nil
}
