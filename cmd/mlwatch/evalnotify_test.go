package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// evalConfig watches TABLE with DETECTORS; an empty prediction table makes
// the freshness detector page infra ("no prediction rows").
const evalConfig = `
clickhouse: {addr: %ADDR%, database: %DB%}
models:
  - name: fraud
    table: %TABLE%
    slices: [country]
    owners: {product: product, infra: infra}
detectors:
%DETECTORS%
receivers:
  - name: product
    slack: {channel: C0PRODUCT, token_env: E2E_SLACK_TOKEN}
  - name: infra
    slack: {channel: C0INFRA, token_env: E2E_SLACK_TOKEN}
`

const (
	freshDetector = `  - name: fresh
    kind: freshness
    model: fraud
    freshness: {max_lag: 15m}
`
	blockDetector = `  - name: block
    kind: block_rate
    model: fraud
    window: 1h
    baseline: {mode: previous}
`
)

func writeEvalConfig(t *testing.T, db, table, dets string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eval.yaml")
	text := strings.NewReplacer("%ADDR%", storetest.ServerAddr(), "%DB%", db, "%TABLE%", table, "%DETECTORS%", dets).Replace(evalConfig)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEvalNotifyWaitsAndFails: `eval --notify`, a cron job's one-shot
// run, waits out a short Retry-After and exits 0 once the page is
// delivered; it exits 1 naming what was not delivered when Slack refuses
// for good, and when Slack stays down past --notify-timeout.
func TestEvalNotifyWaitsAndFails(t *testing.T) {
	e := storetest.ServerEngine(t)
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	env := []string{"E2E_SLACK_TOKEN=xoxb-e2e", "MLWATCH_SLACK_API_URL=" + slack.URL()}
	cfg := writeEvalConfig(t, e.Database, "predictions", freshDetector)
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	at := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)

	// 429 with Retry-After: 1 → waited out, delivered, exit 0.
	slack.Fail(http.StatusTooManyRequests, "1")
	out, code := runMlwatch(t, env, "eval", "--config", cfg, "--at", at, "--notify")
	posts := slack.Calls("chat.postMessage")
	if code != 0 || len(posts) != 1 || posts[0].Channel != "C0INFRA" || !strings.Contains(out, "1 notifications sent") {
		t.Fatalf("after a 429 with Retry-After 1: exit %d, posts %+v\n%s", code, posts, out)
	}
	failed := slack.Calls("chat.postMessage (failed)")
	if len(failed) != 1 || posts[0].At.Sub(failed[0].At) < time.Second {
		t.Fatalf("the retry did not wait for Retry-After: %+v then %+v", failed, posts)
	}
	t.Logf("429 with Retry-After 1: delivered %s after the 429", posts[0].At.Sub(failed[0].At).Round(time.Millisecond))

	// A revoked token → dead: exit 1, naming the page, the cause and the fix.
	slack.FailWith("token_revoked")
	out, code = runMlwatch(t, env, "eval", "--config", cfg, "--at", at, "--notify")
	if code != 1 || !strings.Contains(out, "not delivered (dead): firing notification") || !strings.Contains(out, "to infra") ||
		!strings.Contains(out, "pipeline_outage fraud") || !strings.Contains(out, "Slack token rejected (token_revoked): check E2E_SLACK_TOKEN") {
		t.Fatalf("revoked token: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "xoxb-e2e") {
		t.Fatal("token printed")
	}

	// Slack down (503) for longer than --notify-timeout → exit 1, pending.
	slack.Down(http.StatusServiceUnavailable, "")
	before := len(slack.Calls("chat.postMessage (failed)"))
	start := time.Now()
	out, code = runMlwatch(t, env, "eval", "--config", cfg, "--at", at, "--notify", "--notify-timeout", "3s")
	if code != 1 || !strings.Contains(out, "not delivered (pending)") || !strings.Contains(out, "HTTP 503") {
		t.Fatalf("Slack down: exit %d\n%s", code, out)
	}
	if tries := len(slack.Calls("chat.postMessage (failed)")) - before; tries < 2 {
		t.Errorf("%d tries, want the 503 retried with backoff", tries)
	}
	t.Logf("gave up after %s with --notify-timeout 3s", time.Since(start).Round(100*time.Millisecond))
	slack.Up()
}

// TestEvalDetectorFailures: when every detector fails (a shard down: here
// a column whose every read throws), eval says so and exits 1 instead of
// printing "0 alerts"; when some fail, it prints the alerts of the others,
// names the failed ones on stderr and exits 1 too.
func TestEvalDetectorFailures(t *testing.T) {
	e := storetest.ServerEngine(t)
	ctx := context.Background()
	if err := e.DB.Exec(ctx, "CREATE TABLE "+e.Database+`.broken (ts DateTime, request_id String, model String, model_version String,
		role String, score Float32, decision UInt8 ALIAS toUInt8(throwIf(score >= 0)), country String,
		feature_names Array(String), feature_values Array(Nullable(Float64))) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (model, role, ts)`); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := e.DB.Exec(ctx, "INSERT INTO "+e.Database+".broken (ts, request_id, model, model_version, role, score, country) SELECT ?, 'r1', 'fraud', 'v1', 'production', 0.5, 'FR'",
		now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	at := now.Format(time.RFC3339)

	all := writeEvalConfig(t, e.Database, "broken", blockDetector)
	out, code := runMlwatch(t, nil, "eval", "--config", all, "--at", at)
	if code != 1 || !strings.Contains(out, "every detector failed (block)") || !strings.Contains(out, "detector block failed") || strings.Contains(out, "0 alerts") {
		t.Fatalf("every detector failed: exit %d\n%s", code, out)
	}

	some := writeEvalConfig(t, e.Database, "broken", blockDetector+freshDetector)
	out, code = runMlwatch(t, nil, "eval", "--config", some, "--at", at)
	if code != 1 || !strings.Contains(out, "1 of 2 detectors failed: block") || !strings.Contains(out, "alerts at") {
		t.Fatalf("one of two detectors failed: exit %d\n%s", code, out)
	}
}
