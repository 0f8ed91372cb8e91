package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestIncidentSecondMembers runs second members of two incident classes of
// TestIncidentsAreOneAlert on seeds and rates no other test uses, with the
// same limits, on both engines:
//   - a small country's outage at a rate where its expected count passes
//     min_samples: EG, 0.6% of the traffic, at 600 requests a minute
//     (about 250 rows expected in the hour);
//   - a version rollout of another version and factor (3, the generator's
//     default) on another seed and rate: the broad move must be one root,
//     its small risky countries part of it.
func TestIncidentSecondMembers(t *testing.T) {
	cases := []struct {
		seed uint64
		rate float64
		tc   incidentCase
		// named must appear in the right root's line (the slice it is
		// about), when set.
		named string
	}{
		{61, 600, incidentCase{name: "outage_small_eg", incident: "outage:+15m:+90m:EG", class: "pipeline_outage", owner: "infra"}, "country=EG"},
		{73, 200, incidentCase{name: "version_rollout_73", incident: "version_rollout:+0m:+90m:fraud-2027.01.0", class: "model_behavior", owner: "product"}, "switched"},
	}
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel() // the two engines share no data
			for _, c := range cases {
				t.Run(c.tc.name, func(t *testing.T) {
					start := time.Now()
					base := fmt.Sprintf("base_%s", c.tc.name)
					newBaseTable(t, e, base, c.seed, c.rate)
					withIncident(t, e, base, c.seed, c.rate, c.tc, func(table string) {
						o := runIncident(t, e, table, c.tc, newReplay(e.DB))
						for _, b := range o.check(c.tc) {
							t.Error(b)
						}
						right := false
						for _, line := range o.eval {
							right = right || strings.HasPrefix(line, "root") && strings.Contains(line, c.tc.class) && strings.Contains(line, c.named)
						}
						if !right {
							t.Errorf("no %s root naming %q:\n%s", c.tc.class, c.named, strings.Join(o.eval, "\n"))
						}
						t.Logf("%s seed %d rate %g: %d roots, %d alerts, %d pages in the backtest (%s)\n%s\nbacktest:\n%s",
							c.tc.name, c.seed, c.rate, o.roots, o.alerts, o.pages, time.Since(start).Round(time.Second),
							strings.Join(o.eval, "\n"), strings.Join(o.fired, "\n"))
					})
				})
			}
		})
	}
}
