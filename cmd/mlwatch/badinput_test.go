package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// badConfig is the config of the start-up and reload cases: one model on
// the canonical table, a block_rate detector every second, optional
// extras (detectors' YAML, appended under detectors:).
func badConfig(addr, database, table, slices, extra string) string {
	return fmt.Sprintf(`clickhouse: {addr: %q, database: %s, query_timeout: 10s}
global: {group_wait: 1s}
models:
  - name: fraud
    table: %s
    slices: [%s]
    owners: {product: team, infra: team}
detectors:
  - {name: block, kind: block_rate, model: fraud, schedule: "@every 1s", baseline: {mode: previous}}
%s
receivers:
  - {name: team, webhook: {url: "http://127.0.0.1:9/hook"}}
`, addr, database, table, slices, extra)
}

// runToExit starts `mlwatch run` and waits for it to exit by itself.
func runToExit(t *testing.T, cfg string, env []string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(t), "run", "--config", cfg, "--web.listen-address", freeAddr(t))
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("mlwatch run kept running with a bad config:\n%s", out.String())
	}
	return 0, ""
}

// mlwatchTables lists mlwatch's own tables in a database.
func mlwatchTables(t *testing.T, db *store.DB, database string) []string {
	t.Helper()
	res, err := db.Query(context.Background(), "SELECT name FROM system.tables WHERE database = ? AND name LIKE 'mlwatch\\_%' ORDER BY name", database)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res.Rows {
		out = append(out, store.Str(r[0]))
	}
	return out
}

// TestBadStartup: `mlwatch run` with a config that cannot work exits 1
// with a message naming what to fix, and creates nothing (not even its own
// tables).
func TestBadStartup(t *testing.T) {
	t.Parallel()
	e := storetest.ServerEngine(t)
	if err := store.Apply(context.Background(), e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
		t.Fatal(err)
	}
	// Tables of wrong column types: epoch seconds in ts, text in decision.
	for name, swap := range map[string][2]string{"epoch_ts": {"ts", "UInt32"}, "text_decision": {"decision", "String"}} {
		def := store.PredictionsDef(name)
		for i, c := range def.Columns {
			if c[0] == swap[0] {
				def.Columns[i][1] = swap[1]
			}
		}
		def.Engine = "MergeTree ORDER BY tuple()"
		if err := store.Apply(context.Background(), e.DB, e.Database, []store.TableDef{def}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	srv := storetest.ServerAddr()
	db := e.Database
	cases := []struct {
		name, config string
		env          []string
		args         []string
		want         string
	}{
		{name: "unknown table", config: badConfig(srv, db, "predictionz", "country", ""),
			want: fmt.Sprintf("model fraud: table %s.predictionz does not exist (mlwatch schema apply --predictions creates the canonical one)", db)},
		{name: "unknown slice column", config: badConfig(srv, db, "predictions", "countyr", ""),
			want: fmt.Sprintf(`model fraud: slices names column "countyr", which table %s.predictions does not have`, db)},
		{name: "unknown column in a detector's slices", config: badConfig(srv, db, "predictions", "country",
			`  - {name: block2, kind: block_rate, model: fraud, slices: [merchant]}`),
			want: fmt.Sprintf(`model fraud: detector block2 slices names column "merchant", which table %s.predictions does not have`, db)},
		{name: "unknown column in an expectation", config: badConfig(srv, db, "predictions", "country",
			`  - {name: golden, kind: expectation, model: fraud, expectation: {match: [{column: reqest_id, op: prefix, value: canary-}], min_rate: 0.9}}`),
			want: fmt.Sprintf(`model fraud: detector golden expectation.match names column "reqest_id", which table %s.predictions does not have`, db)},
		{name: "ts of epoch seconds (UInt32)", config: badConfig(srv, db, "epoch_ts", "country", ""),
			want: fmt.Sprintf(`model fraud: columns.ts names column \"ts\" of table %s.epoch_ts, which is UInt32; want DateTime or DateTime64`, db)},
		{name: "decision of type String", config: badConfig(srv, db, "text_decision", "country", ""),
			want: fmt.Sprintf(`model fraud: columns.decision names column \"decision\" of table %s.text_decision, which is String; want an integer type (UInt8, Int32, ...) or Bool, Nullable allowed`, db)},
		{name: "unknown database", config: badConfig(srv, "nodb_"+db, "predictions", "country", ""),
			want: "database nodb_" + db + " does not exist"},
		{name: "clickhouse unreachable", config: badConfig("127.0.0.1:1", db, "predictions", "country", ""),
			want: "clickhouse 127.0.0.1:1: clickhouse unavailable: dial tcp 127.0.0.1:1: connect: connection refused"},
		{name: "invalid yaml", config: "models:\n  - name: fraud\n    table: x\n     owners: {}\n",
			want: "mlwatch.yaml:4: mapping values are not allowed in this context"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"), "mlwatch.yaml")
			if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := runToExit(t, cfg, tc.env)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			if ts := mlwatchTables(t, e.DB, e.Database); len(ts) != 0 {
				t.Errorf("a config that cannot run created tables %v", ts)
			}
		})
	}
	t.Run("eval on epoch seconds", func(t *testing.T) {
		// Rows an hour old: read as a DateTime, ts would be "106751d old".
		if err := e.DB.Exec(context.Background(), "INSERT INTO "+store.MustIdent(db)+".epoch_ts (ts, model, role, score, decision) SELECT toUInt32(now()) - 3600 + number, 'fraud', 'production', 0.5, 0 FROM numbers(100)"); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "epoch.yaml")
		if err := os.WriteFile(cfg, []byte(badConfig(srv, db, "epoch_ts", "country", "  - {name: fresh, kind: freshness, model: fraud}")), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code := run([]string{"eval", "--config", cfg}, &out, &errOut)
		want := fmt.Sprintf(`model fraud: columns.ts names column "ts" of table %s.epoch_ts, which is UInt32; want DateTime or DateTime64`, db)
		if code != 1 || !strings.Contains(errOut.String(), want) || strings.Contains(out.String()+errOut.String(), "106751d") {
			t.Errorf("eval exit %d, want 1 naming %s; stdout:\n%s\nstderr:\n%s", code, want, out.String(), errOut.String())
		}
	})
	t.Run("listen address in use", func(t *testing.T) {
		cfg := filepath.Join(dir, "busy.yaml")
		if err := os.WriteFile(cfg, []byte(badConfig(srv, db, "predictions", "country", "")), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary(t), "run", "--config", cfg, "--web.listen-address", busy.Addr().String())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want 1:\n%s", err, out)
		}
		if want := "listen on " + busy.Addr().String() + ": listen tcp " + busy.Addr().String() + ": bind: address already in use"; !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	})
	t.Run("ten megabyte config", func(t *testing.T) {
		cfg := filepath.Join(dir, "huge.yaml")
		big := badConfig(srv, db, "predictions", "country", "") + strings.Repeat("# padding padding padding padding padding padding padding\n", 10<<20/58)
		if err := os.WriteFile(cfg, []byte(big), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := runToExit(t, cfg, nil)
		if want := cfg + ": config is larger than 4 MiB; refusing to parse it"; code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, want 1 and %q:\n%.2000s", code, want, out)
		}
	})
}

// TestBadReload: a reload (POST /-/reload or SIGHUP) with a config that
// cannot work is refused with the reason, and the running config keeps
// running unchanged; API calls with bad input are refused with 4xx and
// change nothing.
func TestBadReload(t *testing.T) {
	t.Parallel()
	e := storetest.ServerEngine(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mlwatch.yaml")
	good := badConfig(storetest.ServerAddr(), e.Database, "predictions", "country", "")
	if err := os.WriteFile(cfg, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"MLWATCH_API_TOKEN=tok"}
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	d := startDaemon(t, cfg, env)
	runs := func() int { return strings.Count(string(d.get("/api/v1/detectors")), `"at":`) }
	d.waitFor("the first runs", 30*time.Second, func() bool { return runs() >= 2 })

	call := func(method, path, body, token string) (int, string) {
		req, err := http.NewRequest(method, "http://"+d.addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	detectorsNow := func() string {
		var st struct {
			Data []struct{ Name, Schedule string }
		}
		if err := json.Unmarshal(d.get("/api/v1/detectors"), &st); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(st.Data)
	}
	before := detectorsNow()

	db := e.Database
	for _, tc := range []struct{ name, config, want string }{
		{"unknown column", badConfig(storetest.ServerAddr(), db, "predictions", "countyr", ""),
			fmt.Sprintf(`model fraud: slices names column \"countyr\", which table %s.predictions does not have`, db)},
		{"unknown table", badConfig(storetest.ServerAddr(), db, "predictionz", "country", ""),
			fmt.Sprintf("model fraud: table %s.predictionz does not exist", db)},
		{"unknown column in an expectation", badConfig(storetest.ServerAddr(), db, "predictions", "country",
			`  - {name: golden, kind: expectation, model: fraud, expectation: {match: [{column: reqest_id, value: x}], min_rate: 0.9}}`),
			`detector golden expectation.match names column \"reqest_id\"`},
		{"invalid yaml", "models:\n  - name: fraud\n    table: x\n     owners: {}\n", cfg + ":4: mapping values are not allowed in this context"},
		{"unknown key", strings.Replace(good, "global:", "globl:", 1), cfg + `:2: globl: unknown key \"globl\"`},
		{"unknown receiver", strings.Replace(good, "{product: team,", "{product: teams,", 1), cfg + `:7: models[0].owners.product: unknown receiver \"teams\"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			code, body := call("POST", "/-/reload", "", "tok")
			if code != http.StatusInternalServerError || !strings.Contains(body, tc.want) {
				t.Errorf("reload answered %d %s, want 500 naming %s", code, body, tc.want)
			}
			if v := d.metric("mlwatch_config_last_reload_successful"); v != 0 {
				t.Errorf("mlwatch_config_last_reload_successful %v after a failed reload", v)
			}
			if now := detectorsNow(); now != before {
				t.Errorf("detectors changed by a failed reload:\n%s\n%s", before, now)
			}
			n := runs()
			d.waitFor("the previous config to keep running", 20*time.Second, func() bool { return runs() > n })
		})
	}
	t.Run("SIGHUP with an unknown column", func(t *testing.T) {
		if err := os.WriteFile(cfg, []byte(badConfig(storetest.ServerAddr(), db, "predictions", "merchant", "")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`"msg":"reload failed; the previous config keeps running","error":"%s: model fraud: slices names column \"merchant\", which table %s.predictions does not have"`, cfg, db)
		d.waitFor("the reload failure in the log", 20*time.Second, func() bool { return strings.Contains(d.logs.String(), want) })
		if now := detectorsNow(); now != before {
			t.Errorf("detectors changed by a failed reload:\n%s\n%s", before, now)
		}
	})

	// Bad API input: refused, nothing stored.
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"silence with a bad regex", "POST", "/api/v1/silences", `{"matchers":["class=~("],"duration":"1h","created_by":"a","comment":"b"}`, 400,
			`silence: matcher class=~\"(\": error parsing regexp: missing closing ): `},
		{"silence with an unknown field", "POST", "/api/v1/silences", `{"matchers":["class=x"],"duration":"1h","created_by":"a","comment":"b","ttl":"1h"}`, 400,
			`silence: json: unknown field \"ttl\"`},
		{"silence ending before it starts", "POST", "/api/v1/silences", `{"matchers":["class=x"],"duration":"-1h","created_by":"a","comment":"b"}`, 400,
			`silence: duration: invalid duration \"-1h\": must not be negative`},
		{"silence without a reason", "POST", "/api/v1/silences", `{"matchers":["class=x"],"duration":"1h"}`, 400,
			`silence: created_by and comment are required`},
		{"silence body over 1 MiB", "POST", "/api/v1/silences", `{"matchers":["` + strings.Repeat("a", 2<<20) + `"]}`, 413,
			`silence: request body larger than 1048576 bytes (1 MiB)`},
		{"silence with trailing garbage", "POST", "/api/v1/silences", `{"matchers":["class=x"],"duration":"1h","created_by":"a","comment":"b"} rm -rf`, 400,
			`silence: unexpected data after the JSON object`},
		{"two silences in one body", "POST", "/api/v1/silences", `{"matchers":["class=x"],"duration":"1h","created_by":"a","comment":"b"}{"matchers":["class=y"]}`, 400,
			`silence: unexpected data after the JSON object`},
		{"silence with an 850 KB regex", "POST", "/api/v1/silences", `{"matchers":["class=~` + strings.Repeat("(a|b)*", 850<<10/6) + `"],"duration":"1h","created_by":"a","comment":"b"}`, 400,
			`bytes, at most 1024 are allowed`},
		{"silence with 33 matchers", "POST", "/api/v1/silences", `{"matchers":["a=1"` + strings.Repeat(`,"a=1"`, 32) + `],"duration":"1h","created_by":"a","comment":"b"}`, 400,
			`silence: 33 matchers: at most 32 are allowed`},
		{"expire an unknown silence", "DELETE", "/api/v1/silences/nope", "", 404, `silence not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(tc.method, tc.path, tc.body, "tok")
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s answered %d %.300s, want %d naming %s", tc.method, tc.path, code, body, tc.code, tc.want)
			}
			if s := string(d.get("/api/v1/silences")); s != "{\"status\":\"success\",\"data\":[]}\n" {
				t.Errorf("silences after a refused call: %s", s)
			}
		})
	}

	// A model_value matching nothing is a warning, not a refusal.
	t.Run("reload with a model_value typo", func(t *testing.T) {
		typo := strings.Replace(good, "    table: predictions\n", "    table: predictions\n    model_value: frud\n", 1)
		if typo == good {
			t.Fatal("typo not written")
		}
		if err := os.WriteFile(cfg, []byte(typo), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, body := call("POST", "/-/reload", "", "tok"); code != 200 {
			t.Fatalf("reload answered %d %s, want 200 (a warning only)", code, body)
		}
		want := `"msg":"model selects no rows","config":"` + cfg + `","warning":"model fraud: no rows with model = 'frud' in the last day`
		d.waitFor("the warning in the log", 20*time.Second, func() bool { return strings.Contains(d.logs.String(), want) })
	})
	d.stop()
}

// TestBadCommandLine: bad flags of one-shot commands exit 2 with the
// reason and touch nothing.
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--config", "../../configs/example.yaml", "--at", "yesterday"}, `mlwatch eval: --at "yesterday": want an RFC 3339 time`},
		{[]string{"eval", "--config", "../../configs/example.yaml", "--format", "xml"}, `mlwatch eval: --format "xml": want text or json`},
		{[]string{"generate", "--config", "../../configs/example.yaml", "--from", "2026-11-01T00:00:00Z", "--to", "+1h", "--incident", "meteor:+1m:+2m"}, `mlwatch generate: incident "meteor:+1m:+2m": unknown kind "meteor" (want one of canary_fail, cascade, category_block, default_fill, labels_stop, model_blind, null_spike, outage, ramp, shadow_country_block, shadow_divergence, shadow_outage, slice_block, version_rollout, world_shift)`},
		{[]string{"generate", "--config", "../../configs/example.yaml", "--from", "last week", "--to", "+1h"}, `mlwatch generate: --from "last week": want an RFC 3339 time such as 2026-11-01T00:00:00Z`},
		{[]string{"run", "--log.level", "loud"}, `--log.level: unrecognized level: "loud"`},
		{[]string{"backtest", "--config", "../../configs/example.yaml", "--step", "30s"}, `invalid value "30s" for flag -step: want a duration of at least 1m`},
		{[]string{"report", "--config", "../../configs/example.yaml", "--since", "0"}, `invalid value "0" for flag -since: want a positive duration`},
		{[]string{"routes"}, "usage: mlwatch routes test --config FILE"},
		{[]string{"routes", "check"}, `mlwatch routes: unknown subcommand "check"`},
		{[]string{"schema", "create"}, `mlwatch schema: unknown subcommand "create"`},
		{[]string{"schema", "apply", "--backfill"}, "mlwatch: schema apply: --backfill goes with --rollups"},
		{[]string{"silence", "add", "--config", "../../configs/example.yaml", "--comment", "x", "class=~" + strings.Repeat("(a|b)*", 200)}, `mlwatch silence add: matcher "class=~(a|b)*(a|b)*(a|b)*(a|b)*(a|b)*(a|"...: 1207 bytes, at most 1024 are allowed`},
	} {
		t.Run(strings.Join(tc.args[:1], " ")+" "+tc.want, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 2 {
				t.Errorf("exit %d, want 2; stderr %s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut.String())
			}
		})
	}
}

// `mlwatch routes test` names the receivers a label set reaches.
func TestRoutesTest(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"routes", "test", "--config", "../../configs/example.yaml", "model=fraud", "class=model_behavior"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "fraud-product\troute=owner") {
		t.Errorf("routes test printed %q, want the owner route to fraud-product", out.String())
	}
}
