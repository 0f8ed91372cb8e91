package configs

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

// wantError reads the "# error: LINE: message" header of a bad testdata file.
func wantError(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	line := sc.Text()
	if !strings.HasPrefix(line, "# error: ") {
		t.Fatalf("%s: first line must be '# error: LINE: message'", path)
	}
	return path + ":" + strings.TrimPrefix(line, "# error: ")
}

func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad-*.yaml")
	more, _ := filepath.Glob("testdata/*.yaml")
	for _, f := range more {
		base := filepath.Base(f)
		if !strings.HasPrefix(base, "good-") && !strings.HasPrefix(base, "bad-") {
			files = append(files, f)
		}
	}
	if len(files) < 15 {
		t.Fatalf("expected at least 15 bad testdata files, found %d", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := wantError(t, path)
			cfg, err := Load(path, noEnv)
			if err == nil {
				t.Fatalf("loaded %s without error: %+v", path, cfg)
			}
			var probs Problems
			if !errors.As(err, &probs) {
				t.Fatalf("error is %T, want Problems", err)
			}
			found := false
			for _, p := range probs {
				if p.String() == want {
					found = true
				}
			}
			if !found {
				t.Errorf("want problem\n  %s\ngot\n  %s", want, strings.ReplaceAll(err.Error(), "\n", "\n  "))
			}
		})
	}
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/good-*.yaml")
	files = append(files, "example.yaml")
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if _, err := Load(path, noEnv); err != nil {
				t.Fatalf("%v", err)
			}
		})
	}
}

func TestExampleDefaultsAndEnv(t *testing.T) {
	env := map[string]string{
		EnvClickHouseAddr:     "10.0.0.1:9000",
		EnvClickHouseDatabase: "ml",
		EnvClickHousePassword: "s3cret",
		"SLACK_BOT_TOKEN":     "xoxb-test",
		EnvSlackAPIURL:        "http://127.0.0.1:1234/api",
	}
	cfg, err := Load("example.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ch := cfg.ClickHouse
	if ch.Addr != "10.0.0.1:9000" || ch.Database != "ml" || ch.Password != "s3cret" {
		t.Errorf("env overrides not applied: %+v", ch)
	}
	if cfg.State.Database != "ml" || cfg.State.TablePrefix != "mlwatch_" {
		t.Errorf("state defaults: %+v", cfg.State)
	}
	for _, r := range cfg.Receivers {
		if r.Slack == nil || r.Slack.Token != "xoxb-test" || r.Slack.APIURL != "http://127.0.0.1:1234/api/" {
			t.Errorf("receiver %s: slack token/api url not resolved: %+v", r.Name, r.Slack)
		}
	}
	kinds := map[string]bool{}
	for _, d := range cfg.Detectors {
		kinds[d.Kind] = true
		if d.Cron == nil {
			t.Errorf("detector %s: schedule not parsed", d.Name)
		}
	}
	for _, k := range Kinds {
		if !kinds[k] {
			t.Errorf("example.yaml does not enable detector kind %s", k)
		}
	}
	m := cfg.Models[0]
	if m.Features.Layout != LayoutArrays || len(m.Features.Names) != 0 {
		t.Errorf("example must read every feature from the arrays layout, got %+v", m.Features)
	}
	if m.Shadow.Mode != ShadowRows || m.Owners.Product == m.Owners.Infra {
		t.Errorf("example must use shadow rows and separate product/infra receivers: %+v %+v", m.Shadow, m.Owners)
	}
	var fh *Detector
	for i := range cfg.Detectors {
		if cfg.Detectors[i].Kind == KindFeatureHealth {
			fh = &cfg.Detectors[i]
		}
	}
	if fh.Slices == nil || len(*fh.Slices) != 0 {
		t.Errorf("slices: [] must mean aggregate only, got %v", fh.Slices)
	}
	if fh.FeatureHealth.NullRateMax != 0.5 || *fh.FeatureHealth.DefaultValue != 0 {
		t.Errorf("feature_health defaults: %+v", fh.FeatureHealth)
	}
}

func TestConfigTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	data := strings.Repeat("# padding line of a very large config file\n", MaxSize/40)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, noEnv)
	if err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Fatalf("want a size error, got %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml", noEnv)
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml: open") {
		t.Fatalf("got %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"2w", 14 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0", 0, true},
		{"", 0, false},
		{"-5m", 0, false},
		{"5 minutes", 0, false},
		{"1d-1h", 0, false},
		{"d", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
			if tc.ok {
				back, err := ParseDuration(FormatDuration(got))
				if err != nil || back != got {
					t.Fatalf("round trip %v -> %q -> %v, %v", got, FormatDuration(got), back, err)
				}
			}
		})
	}
}

func TestMatcher(t *testing.T) {
	labels := map[string]string{"class": "feature_pipeline", "model": "fraud"}
	for _, tc := range []struct {
		in   string
		want bool
		bad  bool
	}{
		{"class=feature_pipeline", true, false},
		{`class="feature_pipeline"`, true, false},
		{"class!=feature_pipeline", false, false},
		{"class=~feature_.*", true, false},
		{"class=~feature", false, false}, // anchored
		{"class!~model_.*", true, false},
		{"owner=", true, false}, // missing label is empty
		{"owner!=", false, false},
		{"class=~(", false, true},
		{"1class=x", false, true},
		{"class", false, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, err := ParseMatcher(tc.in)
			if (err != nil) != tc.bad {
				t.Fatalf("ParseMatcher(%q) err = %v", tc.in, err)
			}
			if err == nil && m.Matches(labels) != tc.want {
				t.Fatalf("%q matches = %v, want %v", tc.in, !tc.want, tc.want)
			}
		})
	}
}

// global.incremental turns incremental evaluation on for the kinds that
// have it; a detector's incremental: false opts out, and other kinds stay
// on rows. Its defaults are filled.
func TestIncrementalOn(t *testing.T) {
	cfg, err := Load("testdata/good-incremental.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"rate": true, "volume": false, "pairs": false}
	for i := range cfg.Detectors {
		d := &cfg.Detectors[i]
		if got := cfg.IncrementalOn(d); got != want[d.Name] {
			t.Errorf("%s: incremental %v, want %v", d.Name, got, want[d.Name])
		}
	}
	in := cfg.Global.Incremental
	if in.Bucket.D() != 5*time.Minute || in.LateMargin.D() != 15*time.Minute || in.Recheck.D() != 6*time.Hour || in.RecheckEvery.D() != 30*time.Minute {
		t.Errorf("defaults: %+v", *in)
	}
	cfg.Global.Incremental = nil
	if cfg.IncrementalOn(&cfg.Detectors[0]) {
		t.Error("incremental without global.incremental or the detector's own setting")
	}
}
