package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/store/storetest"
)

const daemonConfig = `
clickhouse:
  addr: %ADDR%
  database: %DB%
  query_timeout: 20s
global:
  group_wait: 1s
  failure_threshold: 3
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: product, infra: infra}
detectors:
  - name: block
    kind: block_rate
    model: fraud
    schedule: "@every 2s"
    window: 1h
    baseline: {mode: previous}
%BOUNDS%
receivers:
  - name: product
    slack: {channel: C0PRODUCT, token_env: E2E_SLACK_TOKEN}
  - name: infra
    slack: {channel: C0INFRA, token_env: E2E_SLACK_TOKEN}
`

func writeConfig(t *testing.T, path, addr, db, bounds string) {
	t.Helper()
	text := strings.NewReplacer("%ADDR%", addr, "%DB%", db, "%BOUNDS%", bounds).Replace(daemonConfig)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonEndToEnd runs the real binary against the test server: an
// incident is found and reaches the API and Slack, SIGHUP applies a new
// threshold, SIGTERM stops cleanly, and a restart sends nothing twice.
func TestDaemonEndToEnd(t *testing.T) {
	e := storetest.ServerEngine(t)
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	writeConfig(t, cfg, storetest.ServerAddr(), e.Database, "    block_rate: {score_psi: false}")
	env := []string{"E2E_SLACK_TOKEN=xoxb-e2e", "MLWATCH_SLACK_API_URL=" + slack.URL(), "MLWATCH_API_TOKEN=e2e"}

	now := time.Now().UTC().Truncate(time.Minute)
	from := now.Add(-3 * time.Hour)
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	mlwatchCmd(t, env, "generate", "--config", cfg, "--from", from.Format(time.RFC3339), "--to", now.Add(2*time.Minute).Format(time.RFC3339),
		"--rate", "400", "--seed", "5", "--incident", "slice_block:+2h:+3h5m:FR")

	d := startDaemon(t, cfg, env)
	isFR := func(v alerts.View) bool {
		return v.Class == "model_behavior" && v.Slice["country"] == "FR" && v.Metric == "block_rate"
	}
	d.waitFor("the FR alert at /api/v1/alerts", 60*time.Second, func() bool { return firing(d.alerts(), isFR) != nil })
	fr := firing(d.alerts(), isFR)
	if fr.Owner != "product" || fr.Receiver != "product" || fr.Severity != "page" {
		t.Errorf("FR alert routed wrong: owner %s receiver %s severity %s", fr.Owner, fr.Receiver, fr.Severity)
	}
	d.waitFor("the FR alert in Slack", 30*time.Second, func() bool {
		for _, c := range slack.Calls("chat.postMessage") {
			if c.Channel == "C0PRODUCT" && strings.Contains(c.Text+c.Blocks, "FR") {
				return true
			}
		}
		return false
	})

	// Reload with a new absolute bound: the model must never block more
	// than 0.1% of all traffic, which the FR incident breaks.
	before := len(slack.Calls(""))
	writeConfig(t, cfg, storetest.ServerAddr(), e.Database, "    block_rate: {score_psi: false, max_rate: 0.001}")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	isBound := func(v alerts.View) bool { return v.Metric == "block_rate_bound" && len(v.Slice) == 0 }
	d.waitFor("the new bound to fire after SIGHUP", 60*time.Second, func() bool { return firing(d.alerts(), isBound) != nil })
	if firing(d.alerts(), isFR) == nil {
		t.Error("FR must keep firing after the reload")
	}
	if m := string(d.get("/metrics")); !strings.Contains(m, "mlwatch_config_last_reload_successful 1") {
		t.Errorf("reload metric not 1:\n%s", grepLines(m, "reload"))
	}
	d.waitFor("the bound alert in Slack", 30*time.Second, func() bool { return len(slack.Calls("")) > before })
	d.stop()
	sent := len(slack.Calls("chat.postMessage"))
	updates := len(slack.Calls("chat.update"))

	// Restart: state comes back from ClickHouse; nothing already sent is sent again.
	d2 := startDaemon(t, cfg, env)
	d2.waitFor("three runs after the restart", 60*time.Second, func() bool {
		return strings.Count(string(d2.get("/api/v1/detectors")), `"detector":"block"`) >= 3
	})
	time.Sleep(3 * time.Second) // one more pipeline flush after the runs
	if firing(d2.alerts(), isFR) == nil {
		t.Error("the FR alert should still fire after the restart")
	}
	if n := len(slack.Calls("chat.postMessage")); n != sent {
		for _, c := range slack.Calls("chat.postMessage") {
			t.Logf("post %s thread=%q: %.120s", c.Channel, c.ThreadTS, c.Text)
		}
		t.Errorf("restart re-sent: %d messages before, %d after", sent, n)
	}
	if n := len(slack.Calls("chat.update")); n != updates {
		t.Errorf("restart re-edited: %d updates before, %d after", updates, n)
	}
	d2.stop()
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
