package monitor

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
)

// BacktestOptions describe a replay of history.
type BacktestOptions struct {
	Config *configs.Config
	// Store runs the detectors' queries; Record, when set, receives the
	// evaluation rows (source "backtest") for the status page's charts.
	Store  store.Store
	Record store.Store
	From   time.Time
	To     time.Time
	// Step evaluates every detector every Step; 0 follows each detector's
	// own schedule.
	Step time.Duration
	// Progress, when set, is told how far the replay got.
	Progress func(at time.Time, done, total int)
	Logger   *zap.Logger
	// Incremental, when set, is the daemon's incremental evaluation: the
	// replay takes the same path (see monitor.Options).
	Incremental *detectors.Incremental
}

// DetectorSummary is one detector's share of a backtest: the alert-fatigue
// estimate before a rule goes live.
type DetectorSummary struct {
	Detector string  `json:"detector"`
	Runs     int     `json:"runs"`
	Failed   int     `json:"failed"`
	Alerts   int     `json:"alerts"` // distinct alerts that fired
	Pages    int     `json:"pages"`  // of which severity page and not caused by an infra alert
	PerDay   float64 `json:"alerts_per_day"`
	PagesDay float64 `json:"pages_per_day"`
}

// BacktestReport is what a replay would have sent.
type BacktestReport struct {
	From          time.Time              `json:"from"`
	To            time.Time              `json:"to"`
	Evaluations   int                    `json:"evaluations"`
	Notifications []alerts.Notification  `json:"notifications"`
	Detectors     []DetectorSummary      `json:"detectors"`
	Fired         map[string]alerts.View `json:"-"` // every alert that fired, by fingerprint
	// Manager and Monitor hold the state at the end of the replay, for a
	// status page over it (the demo).
	Manager *alerts.Manager `json:"-"`
	Monitor *Monitor        `json:"-"`
}

// Backtest replays the detectors over (From, To] as the daemon would have
// run them, with the live alert lifecycle (for, keep_firing_for, grouping,
// inhibition, repeats) on a simulated clock, and captures every
// notification instead of sending it. It touches none of the daemon's
// alert state.
func Backtest(ctx context.Context, opt BacktestOptions) (*BacktestReport, error) {
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if !opt.To.After(opt.From) {
		return nil, fmt.Errorf("backtest: --to must be after --from")
	}
	cfg := opt.Config
	var (
		mu      sync.Mutex
		clock   = opt.From
		report  = &BacktestReport{From: opt.From, To: opt.To, Fired: map[string]alerts.View{}}
		capture = alerts.NotifierFunc(func(_ context.Context, n *alerts.Notification) (string, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			report.Notifications = append(report.Notifications, *n)
			return fmt.Sprintf("backtest-%d", len(report.Notifications)), false, nil
		})
	)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	notifiers := map[string]alerts.Notifier{}
	for _, r := range cfg.Receivers {
		notifiers[r.Name] = capture
	}
	mgr, err := alerts.New(alerts.Options{Config: cfg, Logger: opt.Logger, Now: now, Notifiers: notifiers,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		return nil, err
	}
	// Onsets: an alert active at the replay's first runs is dated from the
	// log like the daemon's at start-up (notifications' "onset").
	mon, err := New(Options{Config: cfg, Store: opt.Store, Record: opt.Record, Alerts: mgr, Onsets: mgr, Logger: opt.Logger, Source: SourceBacktest, Incremental: opt.Incremental})
	if err != nil {
		return nil, err
	}

	// The timeline: every (time, detector) the daemon would have run.
	type tick struct {
		at   time.Time
		name string
	}
	var ticks []tick
	for _, d := range cfg.Detectors {
		if d.Disabled {
			continue
		}
		if opt.Step > 0 {
			for t := opt.From.Add(opt.Step); !t.After(opt.To); t = t.Add(opt.Step) {
				ticks = append(ticks, tick{t, d.Name})
			}
			continue
		}
		for t := d.Cron.Next(opt.From); !t.After(opt.To); t = d.Cron.Next(t) {
			ticks = append(ticks, tick{t, d.Name})
		}
	}
	sort.SliceStable(ticks, func(i, j int) bool { return ticks[i].at.Before(ticks[j].at) })
	if len(ticks) > 2_000_000 {
		return nil, fmt.Errorf("backtest: %d runs; use a larger --step", len(ticks))
	}

	summaries := map[string]*DetectorSummary{}
	for _, d := range cfg.Detectors {
		summaries[d.Name] = &DetectorSummary{Detector: d.Name}
	}
	settle := cfg.Global.GroupWait.D()
	firedBy := map[string]string{} // fingerprint → detector
	flush := func(at time.Time) error {
		mu.Lock()
		clock = at.Add(settle)
		mu.Unlock()
		if _, err := mgr.Process(ctx, at.Add(settle)); err != nil {
			return err
		}
		if _, err := mgr.Deliver(ctx); err != nil {
			return err
		}
		for _, v := range mgr.Alerts() {
			if v.State == "firing" {
				if _, ok := report.Fired[v.Fingerprint]; !ok {
					report.Fired[v.Fingerprint] = v
					firedBy[v.Fingerprint] = v.Detector
				}
			}
		}
		return nil
	}
	for i := 0; i < len(ticks); {
		at := ticks[i].at
		mu.Lock()
		clock = at
		mu.Unlock()
		for ; i < len(ticks) && ticks[i].at.Equal(at); i++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			s := summaries[ticks[i].name]
			s.Runs++
			report.Evaluations++
			if _, err := mon.Run(ctx, ticks[i].name, at); err != nil {
				s.Failed++
			}
		}
		if err := flush(at); err != nil {
			return nil, fmt.Errorf("backtest at %s: %w", at.Format(time.RFC3339), err)
		}
		if opt.Progress != nil {
			opt.Progress(at, i, len(ticks))
		}
	}
	days := opt.To.Sub(opt.From).Hours() / 24
	for fp, v := range report.Fired {
		s := summaries[firedBy[fp]]
		if s == nil {
			s = &DetectorSummary{Detector: firedBy[fp]}
			summaries[firedBy[fp]] = s
		}
		s.Alerts++
		if v.Severity == "page" && v.CausedBy == "" {
			s.Pages++
		}
	}
	for _, s := range summaries {
		if days > 0 {
			s.PerDay = float64(s.Alerts) / days
			s.PagesDay = float64(s.Pages) / days
		}
		report.Detectors = append(report.Detectors, *s)
	}
	sort.Slice(report.Detectors, func(i, j int) bool { return report.Detectors[i].Detector < report.Detectors[j].Detector })
	report.Manager, report.Monitor = mgr, mon
	return report, nil
}
