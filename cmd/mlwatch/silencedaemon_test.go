package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const embeddedDaemonConfig = `
clickhouse:
  embedded_path: %PATH%
server:
  listen_address: %ADDR%
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: product, infra: product}
detectors:
  - name: block
    kind: block_rate
    model: fraud
    schedule: "@every 1h"
receivers:
  - name: product
    slack: {channel: C0PRODUCT, token_env: SILENCE_TEST_SLACK_TOKEN}
`

// TestSilenceCLIWhileDaemonRuns (issue 14 part 6): with `mlwatch run` on
// the embedded engine holding its data path, `mlwatch silence add`,
// `list` and `expire` work through the daemon's API, its address and
// token taken from the config; going to the data path directly fails
// while the daemon runs (the engine's lock), and once it stopped the
// same commands read the table the daemon wrote.
func TestSilenceCLIWhileDaemonRuns(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mlwatch.yaml")
	write := func(addr string) {
		text := strings.NewReplacer("%PATH%", filepath.Join(dir, "chdb"), "%ADDR%", addr).Replace(embeddedDaemonConfig)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.1:1")
	env := []string{"MLWATCH_API_TOKEN=silence-cli-token", "MLWATCH_CLICKHOUSE_ADDR="}
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	d := startDaemon(t, cfg, env)
	write(d.addr) // the CLI finds the daemon where the config says it listens

	silence := func(env []string, args ...string) (string, int) {
		return runMlwatch(t, env, append([]string{"silence", args[0], "--config", cfg}, args[1:]...)...)
	}
	out, code := silence(env, "add", "--comment", "FR promo", "--author", "ana", "--duration", "2h", "country=FR")
	if code != 0 {
		t.Fatalf("silence add: exit %d\n%s", code, out)
	}
	first := lastLine(out)
	out, code = silence(env, "add", "--comment", "deploy", "--author", "bob", "model=fraud", "class=~model_.*")
	if code != 0 {
		t.Fatalf("silence add: exit %d\n%s", code, out)
	}
	second := lastLine(out)

	// list through the daemon: both, as text and as JSON.
	out, code = silence(env, "list")
	if code != 0 || !strings.Contains(out, first) || !strings.Contains(out, second) || !strings.Contains(out, `class=~"model_.*"`) || strings.Count(out, "active") != 2 {
		t.Fatalf("silence list: exit %d\n%s", code, out)
	}
	out, code = silence(env, "list", "--format", "json")
	if code != 0 || len(jsonStates(t, out)) != 2 || jsonStates(t, out)[first] != "active" {
		t.Fatalf("silence list --format json: exit %d\n%s", code, out)
	}

	// expire needs the token (from the config's api_token_env).
	out, code = silence([]string{"MLWATCH_API_TOKEN=", "MLWATCH_CLICKHOUSE_ADDR="}, "expire", first)
	if code != 1 || !strings.Contains(out, first) || !strings.Contains(strings.ToLower(out), "token") {
		t.Fatalf("expire without the token: exit %d, want 1 naming the silence and the token\n%s", code, out)
	}
	out, code = silence(env, "expire", first, "no-such-silence")
	if code != 1 || !strings.Contains(out, "expired "+first) || !strings.Contains(out, "no-such-silence") {
		t.Fatalf("expire: exit %d, want 1 (one unknown ID) after expiring %s\n%s", code, first, out)
	}
	out, _ = silence(env, "list")
	if strings.Contains(out, first) || !strings.Contains(out, second) {
		t.Fatalf("list after expire:\n%s", out)
	}
	out, _ = silence(env, "list", "--all", "--format", "json")
	if st := jsonStates(t, out); st[first] != "expired" || st[second] != "active" {
		t.Fatalf("list --all after expire: %v\n%s", st, out)
	}
	var daemonView struct{ Data []json.RawMessage }
	if err := json.Unmarshal(d.get("/api/v1/silences"), &daemonView); err != nil || len(daemonView.Data) != 2 {
		t.Fatalf("the daemon's own list: %v %d", err, len(daemonView.Data))
	}

	// Without a daemon at the address, the CLI goes to the data path,
	// which the running daemon holds: that is why it must go through it.
	out, code = silence(env, "list", "--url", "http://127.0.0.1:1")
	if code == 0 {
		t.Fatalf("list on the data path while the daemon holds it: exit 0\n%s", out)
	}
	t.Logf("direct access while the daemon runs: %s", lastLine(out))

	// Once the daemon stopped, the table it wrote is read directly.
	d.stop()
	out, code = silence(env, "list", "--all", "--format", "json")
	if st := jsonStates(t, out); code != 0 || st[first] != "expired" || st[second] != "active" {
		t.Fatalf("direct list after the daemon stopped: exit %d %v\n%s", code, st, out)
	}
	out, code = silence(env, "expire", second)
	if code != 0 || !strings.Contains(out, "expired "+second) {
		t.Fatalf("direct expire: exit %d\n%s", code, out)
	}
	time.Sleep(time.Second) // expired means ends_at <= now
	out, _ = silence(env, "list")
	if strings.Contains(out, second) {
		t.Fatalf("directly expired silence still listed:\n%s", out)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// jsonStates reads `silence list --format json`: ID → state.
func jsonStates(t *testing.T, out string) map[string]string {
	t.Helper()
	st := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r struct{ ID, State string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		st[r.ID] = r.State
	}
	return st
}
