package detectors

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
)

var update = flag.Bool("update", false, "rewrite the golden SQL files in testdata/")

// goldenConfig is one model in the given shadow mode with a rollup and a
// labels table, and one detector of the given kind (extra: its YAML
// settings). Table names are fixed so the SQL is too.
const goldenConfig = `
models:
  - name: fraud
    table: db.predictions
    slices: [country, merchant_category]
    shadow: {mode: %s}
    rollup: {table: predictions_1m}
    labels: {table: fraud_labels, maturity: 30d}
    owners: {product: p, infra: i}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/"}}
detectors:
  - {name: d, kind: %s, model: fraud, source: %s%s}
`

// goldenExtra are the settings a kind needs beyond the defaults.
var goldenExtra = map[string]string{
	configs.KindExpectation: `, slices: [], expectation: {match: [{column: country, op: in, values: [FR, DE]}, {column: merchant_category, value: golden}], max_rate: 0.1}`,
}

// TestGoldenSQL renders every kind's query (raw and, where served, from
// the rollup; in each shadow mode the kind accepts) at a fixed time and
// compares it with detectors/testdata/<kind>[-rollup][-<shadow mode>].sql
// (no mode suffix: rows; a mode rendering the same SQL as an earlier one
// of the list rows, columns, none has no file). A change of a query's shape shows up in the
// diff of those files: rewrite them with `go test ./detectors -run
// TestGoldenSQL -update`.
func TestGoldenSQL(t *testing.T) {
	at := time.Date(2026, 11, 16, 12, 0, 0, 0, time.UTC)
	seen := map[string]bool{}         // golden files rendered
	rendered := map[string][]string{} // kind/source → SQL of its files
	for _, kind := range configs.Kinds {
		for _, source := range []string{configs.SourceRaw, configs.SourceRollup} {
			if source == configs.SourceRollup && !slices.Contains(configs.RollupKinds, kind) {
				continue
			}
			for _, mode := range []string{configs.ShadowRows, configs.ShadowColumns, configs.ShadowNone} {
				if kind == configs.KindShadow && mode == configs.ShadowNone ||
					source == configs.SourceRollup && mode == configs.ShadowColumns {
					continue // refused by configs
				}
				name := kind
				if source == configs.SourceRollup {
					name += "-rollup"
				}
				if mode != configs.ShadowRows {
					name += "-" + mode
				}
				extra := goldenExtra[kind]
				if kind == configs.KindFeatureHealth && source == configs.SourceRollup {
					extra += ", slices: []"
				}
				base := kind + "/" + source
				t.Run(name, func(t *testing.T) {
					text := fmt.Sprintf(goldenConfig, mode, kind, source, extra)
					cfg, err := configs.Parse("golden.yaml", []byte(text), func(string) (string, bool) { return "", false })
					if err != nil {
						t.Fatal(err)
					}
					d, err := New(cfg, &cfg.Detectors[0])
					if err != nil {
						t.Fatal(err)
					}
					sql, err := d.Query(at)
					if err != nil {
						t.Fatal(err)
					}
					// A mode whose SQL is another mode's has no file.
					if slices.Contains(rendered[base], sql) {
						return
					}
					rendered[base] = append(rendered[base], sql)
					seen[name+".sql"] = true
					golden(t, filepath.Join("testdata", name+".sql"), sql+"\n")
				})
			}
		}
	}
	goldenGuardrails(t, at, seen)
	// A golden file no case renders is a kind or variant that went away,
	// or a mode that now renders the SQL of another.
	files, err := filepath.Glob(filepath.Join("testdata", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			if *update {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s: no case renders it, or its SQL is an earlier mode's (remove it, or run with -update)", f)
		}
	}
}

// goldenGuardrails renders the guardrails query (`mlwatch guardrails`)
// for the shadow candidate in each shadow mode that has one, a
// model_version candidate, and without labels, into
// detectors/testdata/guardrails-<variant>.sql.
func goldenGuardrails(t *testing.T, at time.Time, seen map[string]bool) {
	for _, tc := range []struct {
		name, mode, candidate string
		noLabels              bool
	}{
		{"shadow-rows", configs.ShadowRows, "", false},
		{"shadow-columns", configs.ShadowColumns, "", false},
		{"version", configs.ShadowNone, "v2", false},
		{"version-nolabels", configs.ShadowNone, "v2", true},
	} {
		t.Run("guardrails-"+tc.name, func(t *testing.T) {
			text := fmt.Sprintf(goldenConfig, tc.mode, configs.KindVolume, configs.SourceRaw, "")
			cfg, err := configs.Parse("golden.yaml", []byte(text), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			sql, err := GuardrailQuery(GuardrailOptions{Model: &cfg.Models[0], From: at.Add(-7 * 24 * time.Hour), To: at, At: at,
				Candidate: tc.candidate, NoLabels: tc.noLabels})
			if err != nil {
				t.Fatal(err)
			}
			name := "guardrails-" + tc.name + ".sql"
			seen[name] = true
			golden(t, filepath.Join("testdata", name), sql+"\n")
		})
	}
}

// golden compares got with the file's text, or rewrites the file with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./detectors -run TestGoldenSQL -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendered SQL (run with -update if the change is meant):\n%s", file, lineDiff(string(want), got))
	}
}

// lineDiff names the first line where want and got part.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, b)
		}
	}
	return ""
}
