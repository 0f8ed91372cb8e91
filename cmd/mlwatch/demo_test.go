package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoStepsOutliveQueryTimeout: the demo's long steps (schema, two
// weeks of traffic) have their own deadline, not the config's
// query_timeout. On a loaded machine generation outlived the example's
// 60 s and the demo failed ("generate: ... context deadline exceeded");
// here query_timeout is 1 s, which every generation chunk outlives on any
// machine, and the demo must still finish. (Small rate and a daily step,
// to keep the test short; a separate process, as the embedded engine
// takes one data path per process.)
func TestDemoStepsOutliveQueryTimeout(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(example), "query_timeout: 60s", "query_timeout: 1s", 1)
	if text == string(example) {
		t.Fatal("configs/example.yaml no longer sets query_timeout: 60s; update the test")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "example.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mlwatchCmd(t, nil, "demo", "--config", cfg, "--data", filepath.Join(dir, "demo"), "--exit", "--rate", "20", "--step", "24h")
	for _, want := range []string{"generated ", "detector runs", "== alert fatigue by detector over the week =="} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
