package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlwatch/mlwatch/store"
)

// FuzzParse: any bytes either load into a config whose every identifier
// is valid, every detector scheduled and every owner a known receiver, or
// are refused with problems that each name the file and a line, and the
// loader never panics. Seeds: example.yaml and every testdata file, plus
// the committed corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, path := range append(files, "example.yaml") {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, noEnv)
		if err != nil {
			var probs Problems
			if !errors.As(err, &probs) || len(probs) == 0 {
				t.Fatalf("error %T %v is not Problems", err, err)
			}
			for _, p := range probs {
				if p.File != "fuzz.yaml" || p.Line < 0 || p.Msg == "" || !strings.HasPrefix(p.String(), "fuzz.yaml:") {
					t.Fatalf("problem without file, line or message: %+v", p)
				}
			}
			return
		}
		checkLoaded(t, cfg)
	})
}

// checkLoaded verifies what Parse promises of a config it accepts.
func checkLoaded(t *testing.T, cfg *Config) {
	t.Helper()
	ident := func(what, name string) {
		if err := store.ValidateIdent(name); err != nil {
			t.Fatalf("accepted config has an invalid %s: %v", what, err)
		}
	}
	ident("database", cfg.ClickHouse.Database)
	ident("state database", cfg.State.Database)
	ident("table prefix", cfg.State.TablePrefix)
	receivers := map[string]bool{}
	for _, r := range cfg.Receivers {
		receivers[r.Name] = true
	}
	models := map[string]bool{}
	for _, m := range cfg.Models {
		models[m.Name] = true
		for _, part := range strings.SplitN(m.Table, ".", 2) {
			ident("table", part)
		}
		for _, c := range []string{m.Columns.TS, m.Columns.Score, m.Columns.Decision, m.Columns.ModelVersion} {
			ident("column", c)
		}
		for _, s := range m.Slices {
			ident("slice column", s)
		}
		if m.Features.Layout == LayoutColumns {
			for _, n := range m.Features.Names {
				ident("feature column", n)
			}
		}
		for _, o := range []string{m.Owners.Product, m.Owners.Infra} {
			if o != "" && !receivers[o] {
				t.Fatalf("model %s owned by unknown receiver %q", m.Name, o)
			}
		}
	}
	for _, d := range cfg.Detectors {
		if d.Cron == nil || !models[d.Model] {
			t.Fatalf("detector %s: schedule %v, model %q", d.Name, d.Cron, d.Model)
		}
		if d.Window.D() <= 0 || d.Timeout.D() <= 0 {
			t.Fatalf("detector %s: window %s, timeout %s", d.Name, d.Window, d.Timeout)
		}
		if d.Slices != nil {
			for _, s := range *d.Slices {
				ident("detector slice column", s)
			}
		}
	}
}
