package monitor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/slackapp"
	"github.com/mlwatch/mlwatch/store"
)

// DaemonOptions configure RunDaemon.
type DaemonOptions struct {
	ConfigPath string
	Env        configs.Env
	// ListenAddress overrides server.listen_address (--web.listen-address).
	ListenAddress string
	Logger        *zap.Logger
	// Open connects to ClickHouse for a config; the daemon owns the store.
	Open func(ctx context.Context, cfg *configs.Config, hooks ...store.Hook) (*store.DB, error)
	// Listening, when set, is told the address the HTTP server bound.
	Listening func(addr string)
	// PipelineInterval is how often the alert pipeline runs between
	// detector runs (group waits expire, retries come due). Default 5s.
	PipelineInterval time.Duration
	// Peer makes the daemon one replica of an HA group (alerts.Peer).
	Peer *alerts.Peer
}

// daemon is `mlwatch run`: scheduler, alert pipeline loop, HTTP server,
// reload on SIGHUP and POST /-/reload.
type daemon struct {
	opt     DaemonOptions
	log     *zap.Logger
	db      *store.DB
	metrics *Metrics
	mgr     *alerts.Manager
	mon     *Monitor
	triage  *alerts.TriageLog
	quality qualityCache
	slack   *slackapp.App
	ready   atomic.Bool
	token   atomic.Value // string
	kick    chan struct{}

	reloadMu sync.Mutex
	sched    *Scheduler
}

// RunDaemon runs the daemon until ctx ends, then stops scheduling, lets
// in-flight runs finish, flushes the outbox and returns.
func RunDaemon(ctx context.Context, opt DaemonOptions) error {
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.PipelineInterval <= 0 {
		opt.PipelineInterval = 5 * time.Second
	}
	log := opt.Logger
	cfg, err := configs.Load(opt.ConfigPath, opt.Env)
	if err != nil {
		return err
	}
	d := &daemon{opt: opt, log: log, metrics: NewMetrics(), kick: make(chan struct{}, 1)}
	d.db, err = opt.Open(ctx, cfg, d.metrics.QueryHook)
	if err != nil {
		return err
	}
	defer d.db.Close()
	// Columns first: a config naming a missing table or column changes
	// nothing, not even mlwatch's own tables.
	if err := CheckColumns(ctx, d.db, cfg); err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	initiator := d.warnModelRows(ctx, cfg)
	tables := store.Tables{Database: cfg.State.Database, Prefix: cfg.State.TablePrefix}
	if err := store.Apply(ctx, d.db, tables.Database, TableDefs(tables)); err != nil {
		return fmt.Errorf("create mlwatch tables: %w", err)
	}
	d.mgr, err = alerts.New(alerts.Options{Config: cfg, Store: d.db, Logger: log, OnDelivery: d.metrics.Notification, Peer: opt.Peer})
	if err != nil {
		return err
	}
	if err := d.mgr.Restore(ctx); err != nil {
		return fmt.Errorf("restore alert state: %w", err)
	}
	d.triage = alerts.NewTriageLog(d.db, tables)
	// Always built: a reload may set slack.interactivity or its secrets
	// (each transport starts and stops with its secret; slackapp).
	d.slack = slackapp.New(slackapp.Options{Config: cfg, Alerts: d.mgr, Silences: d.mgr, Log: d.triage, Logger: log})
	if err := d.slack.Restore(ctx); err != nil {
		return fmt.Errorf("restore triage: %w", err)
	}
	d.mon, err = New(Options{Config: cfg, Store: d.db, Record: d.db, Alerts: d.mgr, Onsets: d.mgr, Metrics: d.metrics, Logger: log})
	if err != nil {
		return err
	}
	d.mon.PairOnInitiator(initiator)
	d.metrics.WatchDead(d.mgr.DeadByReceiver)
	d.metrics.WatchQuality(d.quality.get)
	d.token.Store(cfg.Server.APIToken)
	d.metrics.reloadOK.Set(1)
	d.metrics.reloadOKTimestamp.SetToCurrentTime()

	addr := cfg.Server.ListenAddress
	if opt.ListenAddress != "" {
		addr = opt.ListenAddress
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srvOpt := ServerOptions{
		Alerts: d.mgr, Silencer: d.mgr, Outbox: d.mgr, Detectors: d.mon.Statuses, Series: d.mon.Series, LogSeries: d.mon.LogSeries, VersionChanges: d.mon.VersionChanges, Models: d.mon.Models, Guardrails: d.mon.Guardrails, Reload: d.reload,
		Ready: d.ready.Load, Metrics: d.metrics, Token: func() string { return d.token.Load().(string) }, Logger: log,
		Triage: d.triage.List, Quality: d.quality.get, StoredAlert: d.mgr.StoredAlert,
	}
	// The endpoint answers 404 while no signing secret is set.
	srvOpt.SlackInteractions = d.slack
	srv := &http.Server{Handler: Handler(srvOpt), ReadHeaderTimeout: 10 * time.Second}
	if cfg.Server.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("server tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", zap.Error(err))
		}
	}()
	log.Info("listening", zap.String("address", ln.Addr().String()))
	if opt.Listening != nil {
		opt.Listening(ln.Addr().String())
	}

	pipeCtx, stopPipe := context.WithCancel(context.Background())
	pipeDone, dispatchDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(pipeDone); d.pipeline(pipeCtx) }()
	// Each receiver delivers in its own goroutine: a hanging webhook
	// holds its own notifications, not the Slack pages.
	go func() { defer close(dispatchDone); d.mgr.Dispatch(pipeCtx, opt.PipelineInterval) }()
	slackDone, qualityDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(slackDone); d.runSlack(pipeCtx) }()
	go func() { defer close(qualityDone); d.runQuality(pipeCtx, tables, cfg.Path) }()

	d.sched = d.newScheduler()
	d.sched.Start(d.mon.Tasks(d.after))
	// The page shows a guardrail report from the start, not from the
	// first fire time of guardrails.schedule.
	guardsDone := make(chan struct{})
	go func() { defer close(guardsDone); d.mon.RunAllGuardrails(ctx, time.Now()) }()
	d.ready.Store(true)
	log.Info("mlwatch started", zap.String("config", cfg.Path), zap.String("engine", d.db.Engine()), zap.Int("detectors", len(d.mon.Names())))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			if err := d.reload(); err != nil {
				log.Error("reload failed; the previous config keeps running", zap.Error(err))
			}
		}
	}

	log.Info("shutting down: finishing in-flight runs")
	d.ready.Store(false)
	stopCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	d.reloadMu.Lock()
	d.sched.Stop(stopCtx)
	d.reloadMu.Unlock()
	select { // the start-up guardrail report ends with ctx
	case <-guardsDone:
	case <-stopCtx.Done():
	}
	// Sends in flight end now (a hanging receiver is not waited for);
	// what they did not deliver stays in the outbox for the next start.
	stopPipe()
	<-pipeDone
	<-dispatchDone
	<-slackDone
	<-qualityDone
	flushCtx, cancelFlush := context.WithTimeout(stopCtx, shutdownFlush)
	d.flush(flushCtx)
	cancelFlush()
	_ = srv.Shutdown(stopCtx)
	log.Info("mlwatch stopped")
	return nil
}

// ShutdownTimeout bounds a shutdown: in-flight detector runs, the last
// delivery (at most shutdownFlush of it) and the HTTP server's requests
// share it. What is not delivered by then waits in the outbox.
const ShutdownTimeout = 30 * time.Second

const shutdownFlush = 10 * time.Second

func (d *daemon) newScheduler() *Scheduler {
	return NewScheduler(SchedulerOptions{Logger: d.log, Missed: d.mon.Missed})
}

// after wakes the pipeline once a detector run has fed it.
func (d *daemon) after(string, time.Time) {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// pipeline runs the alert pipeline after each detector run and on a tick,
// so group waits expire and retries go out between runs.
func (d *daemon) pipeline(ctx context.Context) {
	t := time.NewTicker(d.opt.PipelineInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
		// Process wakes the delivery goroutines (Dispatch).
		if _, err := d.mgr.Process(ctx, time.Now()); err != nil && ctx.Err() == nil {
			d.log.Warn("alert processing failed", zap.Error(err))
		}
	}
}

// flush processes alerts into the outbox and delivers what is due (the
// last delivery at shutdown).
func (d *daemon) flush(ctx context.Context) {
	if _, err := d.mgr.Process(ctx, time.Now()); err != nil {
		d.log.Warn("alert processing failed", zap.Error(err))
	}
	if _, err := d.mgr.Deliver(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("delivery failed", zap.Error(err))
	}
}

// reload reads the config again and swaps it in with alert state carried
// over; any problem keeps the old config running.
func (d *daemon) reload() (err error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	defer func() {
		if err != nil {
			d.metrics.reloadOK.Set(0)
			return
		}
		d.metrics.reloadOK.Set(1)
		d.metrics.reloadOKTimestamp.SetToCurrentTime()
	}()
	cfg, err := configs.Load(d.opt.ConfigPath, d.opt.Env)
	if err != nil {
		return err
	}
	old := d.mon.Config()
	if cfg.ClickHouse.Addr != old.ClickHouse.Addr || cfg.ClickHouse.Database != old.ClickHouse.Database || cfg.State != old.State {
		d.log.Warn("connection and state settings change only on restart", zap.String("config", cfg.Path))
		cfg.ClickHouse, cfg.State = old.ClickHouse, old.State
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CheckColumns(ctx, d.db, cfg); err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	d.mon.PairOnInitiator(d.warnModelRows(ctx, cfg))
	// The old schedule stops, and its runs in flight finish, before the
	// new config is swapped in: a run of a removed detector that ended
	// after the swap would bring back the alerts the swap resolved. The
	// schedule of whichever config is in force starts again below.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer stopCancel()
	d.sched.Stop(stopCtx)
	defer func() {
		d.sched = d.newScheduler()
		d.sched.Start(d.mon.Tasks(d.after))
	}()
	if err := d.mon.SetConfig(cfg); err != nil {
		return err
	}
	if err := d.mgr.Reload(cfg); err != nil {
		_ = d.mon.SetConfig(old)
		return err
	}
	d.token.Store(cfg.Server.APIToken)
	if d.slack != nil {
		d.slack.SetConfig(cfg)
	}
	d.log.Info("config reloaded", zap.String("config", cfg.Path), zap.Int("detectors", len(d.mon.Names())))
	return nil
}

// warnModelRows logs each model whose selector matches no recent row,
// each labels table that is missing, unreadable or empty, and each model
// whose shadow pairs are split across shards; it returns the models on a
// cluster that must pair on the initiator (SplitPairWarnings).
func (d *daemon) warnModelRows(ctx context.Context, cfg *configs.Config) map[string]bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, w := range ModelRowWarnings(ctx, d.db, cfg, time.Now()) {
		d.log.Warn("model selects no rows", zap.String("config", cfg.Path), zap.String("warning", w))
	}
	for _, w := range LabelWarnings(ctx, d.db, cfg) {
		d.log.Warn("labels unavailable", zap.String("config", cfg.Path), zap.String("warning", w))
	}
	warnings, initiator := SplitPairWarnings(ctx, d.db, cfg, time.Now())
	for _, w := range warnings {
		d.log.Warn("shadow pairs split across shards", zap.String("config", cfg.Path), zap.String("warning", w))
	}
	return initiator
}

// runSlack runs the Slack app's Socket Mode connection and the sweep that
// ends silences "until resolved", until ctx ends.
func (d *daemon) runSlack(ctx context.Context) {
	if d.slack == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.slack.RunSocketMode(ctx); err != nil {
			d.log.Error("slack socket mode stopped", zap.Error(err))
		}
	}()
	t := time.NewTicker(d.opt.PipelineInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-t.C:
			d.slack.Sweep(ctx)
		}
	}
}

// qualityEvery is how often the daemon recomputes alert quality.
const qualityEvery = 5 * time.Minute

// runQuality recomputes alert quality (status page, /metrics, API) now
// and every qualityEvery until ctx ends.
func (d *daemon) runQuality(ctx context.Context, t store.Tables, configPath string) {
	tick := time.NewTicker(qualityEvery)
	defer tick.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		now := time.Now().UTC()
		rows, err := ComputeQuality(qctx, d.db, t, configPath, now.Add(-QualityWindow), now)
		cancel()
		if err != nil && ctx.Err() == nil {
			d.log.Warn("alert quality not computed", zap.Error(err))
		} else if err == nil {
			d.quality.set(rows, now)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
