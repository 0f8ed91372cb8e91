package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/store"
)

// faultConfig is the daemon config of the fault tests: one model, a
// block_rate detector on a fast schedule, product and infra in Slack.
type faultConfig struct {
	Addr     string
	Database string
	// Table is the model's prediction table (default predictions).
	Table string
	// Schedule of the detector (default @every 2s).
	Schedule string
	// Timeout is the detector's run deadline (default 20s).
	Timeout string
	// Threshold is global.failure_threshold (default 3).
	Threshold int
	// GroupBy is global.group_by (default [model, class]).
	GroupBy string
	// Extra is appended to the config as is (more detectors, receivers).
	Extra string
}

func (c faultConfig) write(t *testing.T, path string) {
	t.Helper()
	if c.Table == "" {
		c.Table = "predictions"
	}
	if c.Schedule == "" {
		c.Schedule = "@every 2s"
	}
	if c.Timeout == "" {
		c.Timeout = "20s"
	}
	if c.Threshold == 0 {
		c.Threshold = 3
	}
	if c.GroupBy == "" {
		c.GroupBy = "[model, class]"
	}
	text := fmt.Sprintf(`clickhouse:
  addr: %s
  database: %s
  query_timeout: 20s
global:
  group_wait: 1s
  failure_threshold: %d
  group_by: %s
models:
  - name: fraud
    table: %s
    slices: [country]
    owners: {product: product, infra: infra}
detectors:
  - name: block
    kind: block_rate
    model: fraud
    schedule: %q
    timeout: %s
    window: 1h
    baseline: {mode: previous}
    block_rate:
      score_psi: false
receivers:
  - name: product
    slack: {channel: C0PRODUCT, token_env: E2E_SLACK_TOKEN}
  - name: infra
    slack: {channel: C0INFRA, token_env: E2E_SLACK_TOKEN}
%s`, c.Addr, c.Database, c.Threshold, c.GroupBy, c.Table, c.Schedule, c.Timeout, c.Extra)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// seedIncident writes three hours of traffic ending two minutes from now
// with a production-only block incident in each listed country over the
// last hour.
func seedIncident(t *testing.T, cfg string, env []string, countries ...string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Minute)
	from := now.Add(-3 * time.Hour)
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	args := []string{"generate", "--config", cfg, "--from", from.Format(time.RFC3339), "--to", now.Add(2 * time.Minute).Format(time.RFC3339),
		"--rate", "400", "--seed", "5"}
	for _, c := range countries {
		args = append(args, "--incident", "slice_block:+2h:+3h5m:"+c)
	}
	mlwatchCmd(t, env, args...)
}

// metric returns the sum of a Prometheus metric's samples whose label
// text contains every one of labels (e.g. `detector="block"`).
func metric(text, name string, labels ...string) float64 {
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func (p *proc) metric(name string, labels ...string) float64 {
	return metric(string(p.get("/metrics")), name, labels...)
}

// outboxEntry is one notification as the outbox table holds it.
type outboxEntry struct {
	ID, Receiver, Kind, Thread, Status, Ref, LastError string
	Seq                                                uint64
	Attempts                                           int64
	SentAt                                             time.Time
	N                                                  alerts.Notification
}

// readOutbox returns the outbox of database db, oldest (seq) first.
func readOutbox(t *testing.T, db *store.DB, database string) []outboxEntry {
	t.Helper()
	tbl := store.Tables{Database: database, Prefix: "mlwatch_"}.Outbox()
	res, err := db.Query(t.Context(), "SELECT id, receiver, kind, thread, status, ref, last_error, seq, attempts, sent_at, payload FROM "+tbl.Quoted()+" FINAL ORDER BY seq")
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	var out []outboxEntry
	for _, r := range res.Rows {
		e := outboxEntry{ID: store.Str(r[0]), Receiver: store.Str(r[1]), Kind: store.Str(r[2]), Thread: store.Str(r[3]), Status: store.Str(r[4]),
			Ref: store.Str(r[5]), LastError: store.Str(r[6]), Seq: uint64(store.Int(r[7])), Attempts: store.Int(r[8]), SentAt: store.Time(r[9])}
		if err := json.Unmarshal([]byte(store.Str(r[10])), &e.N); err != nil {
			t.Fatalf("outbox payload of %s: %v", e.ID, err)
		}
		out = append(out, e)
	}
	return out
}

func countStatus(es []outboxEntry, status string) int {
	n := 0
	for _, e := range es {
		if e.Status == status {
			n++
		}
	}
	return n
}

// slackEnv is the environment of a daemon that talks to a local Slack.
func slackEnv(apiURL string) []string {
	return []string{"E2E_SLACK_TOKEN=xoxb-e2e", "MLWATCH_SLACK_API_URL=" + apiURL, "MLWATCH_API_TOKEN=e2e"}
}

func isMonitoringFailure(v alerts.View) bool { return v.Class == "monitoring_failure" }

func isSlice(country string) func(alerts.View) bool {
	return func(v alerts.View) bool {
		return v.Class == "model_behavior" && v.Slice["country"] == country && v.Metric == "block_rate"
	}
}

func postsTo(s *fakeslack.Server, channel string) []fakeslack.Call {
	var out []fakeslack.Call
	for _, c := range s.Calls("chat.postMessage") {
		if c.Channel == channel {
			out = append(out, c)
		}
	}
	return out
}

// TestFaultClickHouseOutage kills a private ClickHouse under a running
// daemon and starts it again: the daemon keeps running, counts the failed
// runs, raises monitoring_failure at the threshold and pages infra in
// Slack although ClickHouse (where the outbox lives) is down, resolves it
// after recovery, stores what it sent meanwhile, and sends nothing twice.
func TestFaultClickHouseOutage(t *testing.T) {
	t.Parallel()
	ch := startClickHouse(t, chOptions{})
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	faultConfig{Addr: ch.addr, Database: "default"}.write(t, cfg)
	env := slackEnv(slack.URL())
	seedIncident(t, cfg, env, "FR")

	d := startDaemon(t, cfg, env)
	d.waitFor("the FR alert in Slack", 90*time.Second, func() bool {
		for _, c := range postsTo(slack, "C0PRODUCT") {
			if strings.Contains(c.Blocks, "country=FR") {
				return true
			}
		}
		return false
	})
	productPosts := len(postsTo(slack, "C0PRODUCT"))

	// ClickHouse crashes mid-run.
	ch.stop(syscall.SIGKILL)
	down := time.Now()
	d.waitFor("monitoring_failure to fire", 60*time.Second, func() bool { return firing(d.alerts(), isMonitoringFailure) != nil })
	if fails := d.metric("mlwatch_detector_consecutive_failures", `detector="block"`); fails < 3 {
		t.Errorf("consecutive failures %v when monitoring_failure fired, want >= 3 (the threshold)", fails)
	}
	mf := firing(d.alerts(), isMonitoringFailure)
	if mf.Owner != "infra" || mf.Receiver != "infra" {
		t.Errorf("monitoring_failure routed to owner %s receiver %s, want infra", mf.Owner, mf.Receiver)
	}
	d.waitFor("the monitoring_failure page in Slack while ClickHouse is down", 30*time.Second, func() bool {
		for _, c := range postsTo(slack, "C0INFRA") {
			if strings.Contains(c.Text, "monitoring_failure") {
				return true
			}
		}
		return false
	})
	t.Logf("monitoring_failure paged %s after ClickHouse went down", time.Since(down).Round(100*time.Millisecond))
	if firing(d.alerts(), isSlice("FR")) == nil {
		t.Error("a failed run must not resolve the FR alert")
	}
	failedRuns := d.metric("mlwatch_detector_runs_total", `detector="block"`, `result="failure"`)

	ch.start()
	up := time.Now()
	d.waitFor("monitoring_failure to resolve after recovery", 60*time.Second, func() bool {
		return firing(d.alerts(), isMonitoringFailure) == nil && d.metric("mlwatch_detector_consecutive_failures", `detector="block"`) == 0
	})
	d.waitFor("the resolution in Slack", 30*time.Second, func() bool { return len(slack.Calls("chat.update")) > 0 })
	t.Logf("recovered %s after ClickHouse came back; %v failed runs counted", time.Since(up).Round(100*time.Millisecond), failedRuns)
	d.waitFor("the outbox to be stored with nothing pending", 30*time.Second, func() bool {
		es := readOutbox(t, ch.store(), "default")
		return len(es) > 0 && countStatus(es, "pending") == 0 && countStatus(es, "sent") == len(es)
	})
	d.waitFor("two more successful runs", 30*time.Second, func() bool {
		return d.metric("mlwatch_detector_runs_total", `detector="block"`, `result="success"`) >= 2
	})
	if firing(d.alerts(), isSlice("FR")) == nil {
		t.Error("the FR alert should still fire after recovery")
	}
	if n := len(postsTo(slack, "C0PRODUCT")); n != productPosts {
		t.Errorf("product channel: %d posts before the outage, %d after: an alert already sent was sent again", productPosts, n)
	}
	// Every outbox entry was sent exactly once: one post per entry, one
	// more post and one edit per resolution.
	es := readOutbox(t, ch.store(), "default")
	wantPosts, wantUpdates := 0, 0
	for _, e := range es {
		wantPosts++
		if e.Kind == alerts.KindResolved {
			wantUpdates++
		}
	}
	if got := len(slack.Calls("chat.postMessage")); got != wantPosts {
		t.Errorf("%d posts for %d outbox entries", got, wantPosts)
	}
	if got := len(slack.Calls("chat.update")); got != wantUpdates {
		t.Errorf("%d edits for %d resolutions", got, wantUpdates)
	}
	d.stop()
}

// TestFaultSlowQuery makes the prediction table a view that sleeps on
// every row: each run passes its deadline, is stopped by ClickHouse
// (max_execution_time) as well as by the daemon's context, is counted and
// raises monitoring_failure; once the table is fast again the next run
// succeeds and the failure resolves.
func TestFaultSlowQuery(t *testing.T) {
	t.Parallel()
	ch := startClickHouse(t, chOptions{})
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	env := slackEnv(slack.URL())
	faultConfig{Addr: ch.addr, Database: "default", Timeout: "3s", Threshold: 2}.write(t, cfg)
	now := time.Now().UTC().Truncate(time.Minute)
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	mlwatchCmd(t, env, "generate", "--config", cfg, "--from", now.Add(-2*time.Hour).Format(time.RFC3339), "--to", now.Format(time.RFC3339), "--rate", "100")
	ch.exec("RENAME TABLE predictions TO predictions_data")
	ch.exec("CREATE VIEW predictions_fast AS SELECT * FROM predictions_data")
	// 1 ms a row in blocks of 100: the runs read ~20k rows, ~20 s.
	ch.exec("CREATE VIEW predictions AS SELECT * FROM predictions_data WHERE sleepEachRow(0.001) = 0 SETTINGS max_block_size = 100")

	d := startDaemon(t, cfg, env)
	var longest float64
	d.waitFor("two runs past the deadline", 60*time.Second, func() bool {
		for _, r := range ch.query("SELECT elapsed FROM system.processes WHERE query_id LIKE 'mlwatch-%'") {
			longest = max(longest, store.Float(r[0]))
		}
		return d.metric("mlwatch_detector_runs_total", `detector="block"`, `result="failure"`) >= 2
	})
	if longest > 4 {
		t.Errorf("a detector query ran %.1fs on the server; the run deadline is 3s", longest)
	}
	var st struct {
		Data []struct {
			Runs []struct {
				Error      string
				DurationMS float64 `json:"duration_ms"`
			}
		}
	}
	if err := json.Unmarshal(d.get("/api/v1/detectors"), &st); err != nil || len(st.Data) != 1 || len(st.Data[0].Runs) == 0 {
		t.Fatalf("/api/v1/detectors: %v %+v", err, st)
	}
	last := st.Data[0].Runs[0]
	if !strings.Contains(last.Error, "timed out") || !strings.Contains(last.Error, "Code: 159") {
		t.Errorf("last run's error %q does not say the server stopped it for timing out", last.Error)
	}
	if last.DurationMS > 3500 {
		t.Errorf("the run took %.0f ms; its deadline is 3s", last.DurationMS)
	}
	d.waitFor("monitoring_failure to fire", 30*time.Second, func() bool { return firing(d.alerts(), isMonitoringFailure) != nil })

	// The server stopped the queries itself (code 159), not just the client
	// (query_log type 4: exception while processing).
	ch.exec("SYSTEM FLUSH LOGS")
	rows := ch.query(`SELECT countIf(type = 4 AND exception LIKE '%Timeout exceeded%'), max(query_duration_ms)
		FROM system.query_log WHERE query_id LIKE 'mlwatch-%' AND type != 1 AND query LIKE '%predictions%'`)
	stopped, maxMS := store.Int(rows[0][0]), store.Float(rows[0][1])
	if stopped < 2 {
		t.Errorf("the server stopped %d detector queries for exceeding max_execution_time, want >= 2", stopped)
	}
	if maxMS > 4000 {
		t.Errorf("a detector query ran %.0f ms on the server; the run deadline is 3s", maxMS)
	}
	t.Logf("server stopped %d queries (longest %.0f ms); longest seen in system.processes %.1fs", stopped, maxMS, longest)

	ch.exec("RENAME TABLE predictions TO predictions_slow, predictions_fast TO predictions")
	d.waitFor("a successful run and monitoring_failure resolved", 60*time.Second, func() bool {
		return d.metric("mlwatch_detector_runs_total", `detector="block"`, `result="success"`) >= 1 &&
			d.metric("mlwatch_detector_consecutive_failures", `detector="block"`) == 0 &&
			firing(d.alerts(), isMonitoringFailure) == nil
	})
	missed := d.metric("mlwatch_detector_missed_runs_total", `detector="block"`)
	t.Logf("runs: %v failed, %v succeeded, %v fire times missed while a slow run was going",
		d.metric("mlwatch_detector_runs_total", `detector="block"`, `result="failure"`),
		d.metric("mlwatch_detector_runs_total", `detector="block"`, `result="success"`), missed)
	if missed < 1 {
		t.Error("a 3s run on a 2s schedule must count missed fire times")
	}
	d.stop()
}
