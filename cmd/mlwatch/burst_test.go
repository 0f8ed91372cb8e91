package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/store"
)

// burst is the shape of "many detectors firing on one fire time": every
// detector is due at the same instant, every one finds the FR incident,
// and the pool has fewer connections than there are runs.
type burst struct {
	detectors int
	schedule  string // the same for all, so all fire together
	timeout   string // each run's deadline: room to queue for a connection
	conns     int    // clickhouse.max_open_conns
	waves     int    // fire times to wait for
	wait      time.Duration
}

// runBurst checks the outcome of a burst: no run fails (runs queue for
// pooled connections within their deadline), no state write is dropped
// (every detector's alert is stored as firing in ClickHouse), and alert
// states go out in batched INSERTs, far fewer than runs.
func runBurst(t *testing.T, b burst) {
	ch := startClickHouse(t, chOptions{})
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	var extra strings.Builder
	for i := 1; i < b.detectors; i++ {
		fmt.Fprintf(&extra, "  - {name: d%03d, kind: block_rate, model: fraud, schedule: %q, timeout: %s, window: 1h, baseline: {mode: previous}, top_k: 30, block_rate: {score_psi: false}}\n",
			i, b.schedule, b.timeout)
	}
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	faultConfig{Addr: ch.addr, Database: "default", Schedule: b.schedule, Timeout: b.timeout}.write(t, cfg)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(text), "receivers:\n", extra.String()+"receivers:\n", 1)
	s = strings.Replace(s, "  query_timeout: 20s\n", fmt.Sprintf("  query_timeout: %s\n  max_open_conns: %d\n", b.timeout, b.conns), 1)
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	env := slackEnv(slack.URL())
	seedIncident(t, cfg, env, "FR")

	d := startDaemon(t, cfg, env)
	start := time.Now()
	names := make([]string, b.detectors)
	names[0] = "block"
	for i := 1; i < b.detectors; i++ {
		names[i] = fmt.Sprintf("d%03d", i)
	}
	var metrics string
	d.waitFor(fmt.Sprintf("%d fire times of %d detectors", b.waves, b.detectors), b.wait, func() bool {
		metrics = string(d.get("/metrics"))
		for _, n := range names {
			lbl := `detector="` + n + `"`
			if metric(metrics, "mlwatch_detector_runs_total", lbl)+metric(metrics, "mlwatch_detector_missed_runs_total", lbl) < float64(b.waves) {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	// The detectors are twins (one metric of one model): one FR alert
	// fires and the others are folded into it (alerts/consolidate.go), each
	// still an alert state of its own.
	d.waitFor("every detector's FR alert firing", time.Minute, func() bool {
		n := 0
		for _, v := range d.alerts() {
			for _, w := range append([]alerts.View{v}, v.Folded...) {
				if isSlice("FR")(w) && w.State == "firing" {
					n++
				}
			}
		}
		return n == b.detectors
	})
	metrics = string(d.get("/metrics"))
	d.stop()

	runs := metric(metrics, "mlwatch_detector_runs_total")
	failed := metric(metrics, "mlwatch_detector_runs_total", `result="failure"`)
	missed := metric(metrics, "mlwatch_detector_missed_runs_total")
	if failed != 0 {
		t.Errorf("%.0f of %.0f runs failed; runs must queue for a connection within their deadline", failed, runs)
	}
	for _, bad := range []string{"store alert states", "cannot record detector run", "cannot record evaluations", "alert pipeline", "waiting for a free connection"} {
		n := 0
		for _, line := range strings.Split(d.logs.String(), "\n") {
			// A read cut short by the shutdown (context canceled) is not
			// a dropped write.
			if strings.Contains(line, bad) && !strings.Contains(line, "context canceled") {
				n++
			}
		}
		if n > 0 {
			t.Errorf("%d log lines say %q: a write was dropped or a run waited out its deadline", n, bad)
		}
	}
	// Every alert state reached ClickHouse (a restart would find them).
	stored := store.Int(ch.query("SELECT count() FROM mlwatch_alerts FINAL WHERE state = 'firing' AND class = 'model_behavior'")[0][0])
	if stored != int64(b.detectors) {
		t.Errorf("%d firing alert states stored, want %d (one per detector)", stored, b.detectors)
	}
	ch.exec("SYSTEM FLUSH LOGS")
	inserts := store.Int(ch.query("SELECT count() FROM system.query_log WHERE type = 2 AND query LIKE 'INSERT INTO%mlwatch_alerts%'")[0][0])
	if inserts >= int64(runs) {
		t.Errorf("%d INSERTs of alert states for %.0f runs: not batched", inserts, runs)
	}
	t.Logf("%d detectors on %q, %d connections: %.0f runs in %s (%.0f failed), %.0f fire times missed and counted; %d alert states stored firing; %d INSERTs of alert states",
		b.detectors, b.schedule, b.conns, runs, elapsed.Round(time.Second), failed, missed, stored, inserts)
}

// TestBurstOfDetectors is the make-test size of the burst (make soak runs
// 500 detectors): 40 detectors due at once on 3 connections.
func TestBurstOfDetectors(t *testing.T) {
	t.Parallel()
	runBurst(t, burst{detectors: 40, schedule: "@every 20s", timeout: "3m", conns: 3, waves: 2, wait: 6 * time.Minute})
}
