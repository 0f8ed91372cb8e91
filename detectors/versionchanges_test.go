package detectors

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// A rollout and its rollback inside a chart's range are two changes of
// production's leading version, at their times; the shadow, which kept
// its version, has none. On both engines.
func TestVersionChanges(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 18, 8, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, err := configs.Parse("series.yaml", []byte(strings.ReplaceAll(seriesYAML, "%DB%", e.Database)), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
				t.Fatal(err)
			}
			in, _ := traffic.ParseIncident("version_rollout:+1h40m:+3h:fraud-v8", start)
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: start, To: start.Add(4 * time.Hour), Rate: 120, Seed: 9, Incidents: []traffic.Incident{in}}); err != nil {
				t.Fatal(err)
			}
			vcs, err := VersionChanges(ctx, e.DB, &cfg.Models[0], start.Add(4*time.Hour), 4*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(vcs) != 2 {
				t.Fatalf("changes %+v, want the rollout and the rollback", vcs)
			}
			up, down := vcs[0], vcs[1]
			if up.Role != "production" || up.To != "fraud-v8" || up.At.Before(start.Add(100*time.Minute)) || up.At.After(start.Add(110*time.Minute)) {
				t.Errorf("rollout %+v, want production → fraud-v8 within 10 min after 09:40", up)
			}
			if down.Role != "production" || down.From != "fraud-v8" || down.To != up.From || down.At.Before(start.Add(3*time.Hour-2*time.Minute)) || down.At.After(start.Add(3*time.Hour+2*time.Minute)) {
				t.Errorf("rollback %+v, want production fraud-v8 → %s at 11:00", down, up.From)
			}
		})
	}
}
