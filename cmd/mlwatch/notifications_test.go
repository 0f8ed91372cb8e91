package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/store/storetest"
)

const deadConfig = `
clickhouse: {addr: %ADDR%, database: %DB%}
global: {group_wait: 1s, fallback_receiver: hook}
models:
  - name: fraud
    table: predictions
    owners: {product: product, infra: infra}
detectors:
  - name: fresh
    kind: freshness
    model: fraud
    schedule: "@every 2s"
    freshness: {max_lag: 15m}
receivers:
  - name: product
    slack: {channel: C0PRODUCT, token_file: %TOKEN%}
  - name: infra
    slack: {channel: C0INFRA, token_file: %TOKEN%}
  - name: hook
    webhook: {url: "%HOOK%", timeout: 4m}
`

// TestNotificationsDeadRetryReloadAndShutdown runs the daemon with a
// rejected Slack token: the page is dead, not gone (listed by `mlwatch
// notifications list`, counted in /metrics, a banner on the status page),
// its copy goes to the fallback receiver (a webhook that hangs: it holds
// only itself), `notifications retry` re-sends it (token required), a
// SIGHUP after the token file is fixed delivers it, and SIGTERM does not
// wait for the hanging webhook.
func TestNotificationsDeadRetryReloadAndShutdown(t *testing.T) {
	e := storetest.ServerEngine(t)
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	var hookCalls atomic.Int32
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookCalls.Add(1)
		select { // hang, within the receiver's 4m timeout
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hook.Close()
	defer close(release)

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "slack-token")
	if err := os.WriteFile(tokenFile, []byte("xoxb-revoked\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mlwatch.yaml")
	text := strings.NewReplacer("%ADDR%", storetest.ServerAddr(), "%DB%", e.Database, "%TOKEN%", tokenFile, "%HOOK%", hook.URL).Replace(deadConfig)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"MLWATCH_SLACK_API_URL=" + slack.URL(), "MLWATCH_API_TOKEN=e2e"}
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	d := startDaemon(t, cfg, env)
	url := "http://" + d.addr

	var dead []alerts.NotificationStatus
	list := func(state string) []alerts.NotificationStatus {
		out, code := runMlwatch(t, env, "notifications", "list", "--config", cfg, "--url", url, "--state", state, "--format", "json")
		if code != 0 {
			t.Fatalf("notifications list: exit %d\n%s", code, out)
		}
		var ns []alerts.NotificationStatus
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var n alerts.NotificationStatus
			if err := json.Unmarshal([]byte(line), &n); err != nil {
				t.Fatalf("list line %q: %v", line, err)
			}
			ns = append(ns, n)
		}
		return ns
	}
	d.waitFor("the infra page to be dead", 60*time.Second, func() bool {
		dead = list("dead")
		return len(dead) > 0
	})
	if dead[0].Receiver != "infra" || !strings.Contains(dead[0].LastError, "Slack token rejected (invalid_auth): check the token file "+tokenFile) {
		t.Fatalf("dead: %+v", dead)
	}
	id := dead[0].ID
	d.waitFor("the fallback copy to reach the (hanging) webhook", 30*time.Second, func() bool { return hookCalls.Load() > 0 })
	metrics := string(d.get("/metrics"))
	for _, want := range []string{`mlwatch_notifications_dead{receiver="infra"} 1`, `mlwatch_notifications_dead{receiver="hook"} 0`,
		`mlwatch_notifications_total{outcome="dead",receiver="infra"} 1`, `mlwatch_notifications_total{outcome="fallback",receiver="infra"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if page := string(d.get("/")); !strings.Contains(page, `id="dead-notifications"`) || !strings.Contains(page, id) {
		t.Error("status page shows no banner for the dead page")
	}
	text, code := runMlwatch(t, env, "notifications", "list", "--config", cfg, "--url", url, "--state", "dead")
	if code != 0 || !strings.Contains(text, id) || !strings.Contains(text, "Slack token rejected") {
		t.Errorf("text list: exit %d\n%s", code, text)
	}

	// Retry needs the API token; with it, the page is sent again (and,
	// the token still wrong, dies again).
	if out, code := runMlwatch(t, []string{"MLWATCH_API_TOKEN="}, "notifications", "retry", "--config", cfg, "--url", url, id); code != 1 || !strings.Contains(out, "a bearer token is required") {
		t.Errorf("retry without a token: exit %d\n%s", code, out)
	}
	if out, code := runMlwatch(t, env, "notifications", "retry", "--config", cfg, "--url", url, id); code != 0 || !strings.Contains(out, id+": pending") {
		t.Fatalf("retry: exit %d\n%s", code, out)
	}
	d.waitFor("the retried page to die again", 30*time.Second, func() bool {
		return strings.Contains(string(d.get("/metrics")), `mlwatch_notifications_total{outcome="dead",receiver="infra"} 2`)
	})

	// The token file is fixed; SIGHUP changes the receiver, which retries
	// its dead notifications.
	if err := os.WriteFile(tokenFile, []byte("xoxb-e2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor("the page in the infra channel", 30*time.Second, func() bool {
		for _, c := range slack.Calls("chat.postMessage") {
			if c.Channel == "C0INFRA" && strings.Contains(c.Blocks, "pipeline_outage") {
				return true
			}
		}
		return false
	})
	if dead := list("dead"); len(dead) != 0 {
		t.Errorf("still dead after the fix: %+v", dead)
	}
	if !strings.Contains(string(d.get("/metrics")), `mlwatch_notifications_dead{receiver="infra"} 0`) {
		t.Error("dead gauge not back to 0")
	}
	if out, code := runMlwatch(t, env, "notifications", "retry", "--config", cfg, "--url", url, id); code != 1 || !strings.Contains(out, "already delivered") {
		t.Errorf("retry of a delivered page: exit %d\n%s", code, out)
	}

	// SIGTERM while the webhook hangs: the shutdown does not wait for it.
	start := time.Now()
	d.stop()
	took := time.Since(start)
	if took > 25*time.Second {
		t.Errorf("shutdown took %s with a hanging webhook, want well under the 30s limit", took)
	}
	t.Logf("shutdown with a hanging webhook took %s", took.Round(100*time.Millisecond))
}
