package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store/storetest"
)

// mlwatchExit runs the built command and returns its exit code, stdout
// and stderr.
func mlwatchExit(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// TestGuardrailsCommand is the "done when": on generated data
// whose shadow blocks most of France, `mlwatch guardrails --config
// configs/example.yaml --model fraud` exits 1 naming the slice, in every
// format; a quiet day ships (exit 0); five minutes are not enough (2);
// bad flags and configs exit 3.
func TestGuardrailsCommand(t *testing.T) {
	e := storetest.ServerEngine(t)
	env := []string{"MLWATCH_CLICKHOUSE_ADDR=" + storetest.ServerAddr(), "MLWATCH_CLICKHOUSE_DATABASE=" + e.Database}
	cfg := "../../configs/example.yaml"
	day0 := time.Date(2026, 9, 7, 0, 0, 0, 0, time.UTC)
	at := day0.Add(40 * 24 * time.Hour).Format(time.RFC3339)
	d1, d2 := day0.Add(24*time.Hour).Format(time.RFC3339), day0.Add(48*time.Hour).Format(time.RFC3339)
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	gen := mlwatchCmd(t, env, "generate", "--config", cfg, "--from", day0.Format(time.RFC3339), "--to", d2,
		"--rate", "100", "--seed", "21", "--incident", "shadow_country_block:+0h:+1d:FR")
	if !strings.Contains(gen, "labels of those requests written to") {
		t.Fatalf("generate wrote no labels:\n%s", gen)
	}
	guard := func(args ...string) (int, string, string) {
		return mlwatchExit(t, env, append([]string{"guardrails", "--config", cfg, "--model", "fraud", "--at", at}, args...)...)
	}

	t.Run("shadow blocks France", func(t *testing.T) {
		code, out, errOut := guard("--from", day0.Format(time.RFC3339), "--to", d1)
		t.Logf("%s%s", out, errOut)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		if !strings.Contains(out, "FAIL country=FR: block rate rises by") || !strings.Contains(out, "labels: matured labels") {
			t.Errorf("text report does not name France's block rate on matured labels:\n%s", out)
		}
		code, out, _ = guard("--from", day0.Format(time.RFC3339), "--to", d1, "--format", "json")
		var r struct {
			Verdict  string   `json:"verdict"`
			ExitCode int      `json:"exit_code"`
			Failed   []string `json:"failed"`
			Checks   []struct {
				Slice  map[string]string `json:"slice"`
				Metric string            `json:"metric"`
				Status string            `json:"status"`
				Diff   *float64          `json:"diff"`
				Low    *float64          `json:"ci_low"`
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		var countries []string
		for _, c := range r.Checks {
			if c.Status == "fail" && c.Slice["country"] != "" {
				countries = append(countries, c.Slice["country"])
				if c.Diff == nil || c.Low == nil || *c.Low < 0.5 {
					t.Errorf("FR's difference %v (CI low %v): want most of France blocked", c.Diff, c.Low)
				}
			}
		}
		if code != 1 || r.Verdict != "fail" || r.ExitCode != 1 || strings.Join(countries, ",") != "FR" {
			t.Errorf("json: exit %d verdict %s failing countries %v, want 1, fail, FR", code, r.Verdict, countries)
		}
		code, out, _ = guard("--from", day0.Format(time.RFC3339), "--to", d1, "--format", "markdown")
		if code != 1 || !strings.Contains(out, "❌ **country=FR: block rate rises") || !strings.Contains(out, "| fail | country=FR | block_rate |") {
			t.Errorf("markdown: exit %d, want 1 naming FR in the list and the table:\n%s", code, out)
		}
	})
	t.Run("equal shadow", func(t *testing.T) {
		code, out, errOut := guard("--from", d1, "--to", d2)
		if code != 0 || !strings.Contains(out, "SHIP") {
			t.Errorf("exit %d, want 0 (ship):\n%s%s", code, out, errOut)
		}
	})
	t.Run("short period", func(t *testing.T) {
		code, out, errOut := guard("--from", d1, "--to", "+5m")
		if code != 2 || !strings.Contains(out, "NOT ENOUGH DATA") || !strings.Contains(out, "MISSING block rate: production has") {
			t.Errorf("exit %d, want 2 naming what is missing:\n%s%s", code, out, errOut)
		}
	})
	t.Run("usage", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte("models:\n  - name: fraud\n    table: predictions\n    guardrails: {fdr: 2}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--from", "yesterday", "--to", d1}, `--from "yesterday": want an RFC 3339 time`},
			{[]string{"--from", d1, "--to", d2, "--format", "xml"}, `--format "xml": want text, json or markdown`},
			{[]string{"--from", d1, "--to", d2, "--candidate", "canary"}, `--candidate "canary": want shadow`},
			{[]string{"--from", d2, "--to", d1}, "is not after --from"},
			{[]string{"--from", d1, "--to", d2, "--model", "fruad"}, `--model "fruad": ../../configs/example.yaml has no such model (models: fraud)`},
			{[]string{"--from", d1, "--to", d2, "--config", bad}, bad + ":4: models[0].guardrails.fdr: fdr must be in (0, 1)"},
			{[]string{"--from", d1, "--to", d2, "--bogus"}, "flag provided but not defined: -bogus"},
		} {
			code, out, errOut := guard(tc.args...)
			if code != 3 || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("%v: exit %d stdout %q stderr %q, want 3 and %q", tc.args, code, out, errOut, tc.want)
			}
		}
	})
}
