package monitor

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// countingStore counts queries.
type countingStore struct {
	store.Store
	n atomic.Int64
}

func (c *countingStore) Query(ctx context.Context, q string, args ...any) (*store.Result, error) {
	c.n.Add(1)
	return c.Store.Query(ctx, q, args...)
}

// keeper is an OnsetKeeper that dates every alert once.
type keeper struct {
	mu       sync.Mutex
	activeAt time.Time
	onsets   map[string]time.Time
}

func (k *keeper) NeedsOnset(fp string) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, done := k.onsets[fp]
	return k.activeAt, !done
}

func (k *keeper) SetOnset(fp string, _, onset time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.onsets[fp] = onset
}

// nopObserver accepts every run.
type nopObserver struct{}

func (nopObserver) Observe(context.Context, string, time.Time, []detectors.Finding, ...detectors.Unchecked) error {
	return nil
}
func (nopObserver) ObserveFailure(context.Context, string, time.Time, detectors.Finding) error {
	return nil
}

// A run that fires dates its new alerts from the log (the FR incident
// began at 10:30; the daemon's first run is at 11:00), the chart series
// is read once a minute however often the page asks, and a metric
// without a series says so, on both engines.
func TestOnsetsAndCachedLogSeries(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 18, 8, 0, 0, 0, time.UTC)
	at := start.Add(3 * time.Hour)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			yaml := strings.Replace(strings.ReplaceAll(rolloutYAML, "%DB%", e.Database), "    slices: []\n", "    slices: [country]\n    schedule: \"*/5 * * * *\"\n    min_samples: 100\n", 1)
			cfg, err := configs.Parse("onset.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
				t.Fatal(err)
			}
			in, _ := traffic.ParseIncident("slice_block:+2h30m:+4h:FR", start)
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: start, To: at, Rate: 200, Seed: 4, Incidents: []traffic.Incident{in}}); err != nil {
				t.Fatal(err)
			}
			db := &countingStore{Store: e.DB}
			k := &keeper{activeAt: at, onsets: map[string]time.Time{}}
			mon, err := New(Options{Config: cfg, Store: db, Alerts: nopObserver{}, Onsets: k})
			if err != nil {
				t.Fatal(err)
			}
			res, err := mon.Run(ctx, "rate", at)
			if err != nil {
				t.Fatal(err)
			}
			var fr *detectors.Finding
			for i, f := range res.Findings {
				if f.Metric == detectors.MetricBlockRate && f.Slice["country"] == "FR" {
					fr = &res.Findings[i]
				}
			}
			if fr == nil {
				t.Fatalf("no FR finding: %+v", res.Findings)
			}
			fp := alerts.Fingerprint(fr.Detector, fr.Model, string(fr.Class), fr.Slice, fr.Feature)
			on := k.onsets[fp]
			began := start.Add(150 * time.Minute)
			if on.Before(began) || on.After(began.Add(20*time.Minute)) {
				t.Errorf("FR onset %s, want within 20 min after the incident began at %s", on, began)
			}
			if len(k.onsets) != len(res.Findings) {
				t.Errorf("%d findings, %d dated", len(res.Findings), len(k.onsets))
			}

			v := alerts.View{Detector: "rate", Metric: detectors.MetricBlockRate, Slice: map[string]string{"country": "FR"}, State: "firing"}
			before := db.n.Load()
			var pts []Point
			for i := 0; i < 3; i++ {
				if pts, err = mon.LogSeries(ctx, v, 3*time.Hour, at.Add(30*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			if n := db.n.Load() - before; n > 1 {
				t.Errorf("three chart requests in a minute ran %d queries, want at most 1 (the run's own series is cached too)", n)
			}
			if len(pts) != 36 || !pts[len(pts)-1].Firing || pts[0].Firing {
				t.Errorf("%d points (want 36, every 5 min over 3 h), first firing %v, last firing %v", len(pts), pts[0].Firing, pts[len(pts)-1].Firing)
			}
			if _, err := mon.LogSeries(ctx, alerts.View{Detector: "rate", Metric: detectors.MetricRateBound, State: "firing"}, time.Hour, at); !isNoSeries(err) {
				t.Errorf("block_rate_bound: %v, want ErrNoSeries", err)
			}

			// A backtest that starts inside the incident dates the FR
			// alert from the log too (its notifications' "onset").
			rep, err := Backtest(ctx, BacktestOptions{Config: cfg, Store: e.DB, From: at.Add(-10 * time.Minute), To: at})
			if err != nil {
				t.Fatal(err)
			}
			bt, ok := rep.Fired[fp]
			if !ok || bt.Onset == nil || bt.Onset.Before(began) || bt.Onset.After(began.Add(20*time.Minute)) {
				t.Errorf("backtest from %s: FR alert fired %v with onset %v, want one within 20 min after %s", at.Add(-10*time.Minute), ok, bt.Onset, began)
			}
			dated := false
			for _, n := range rep.Notifications {
				for _, v := range n.Alerts {
					dated = dated || v.Fingerprint == fp && v.Onset != nil
				}
			}
			if !dated {
				t.Error("no backtest notification carries the FR alert's onset")
			}
		})
	}
}
