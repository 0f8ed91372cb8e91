//go:build incidenttable

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestIncidentTable is issue 11's "done when": every incident kind of
// incidentCases (and a quiet day), generated with seeds and rates the
// tests do not use, against the limits of TestIncidentsAreOneAlert. Slow
// (a baseline of 9 days per seed and rate), so it is not part of `make
// test`; it prints the table of docs/reliability.md:
//
//	MLWATCH_TABLE_ENGINE=embedded go test -tags incidenttable ./cmd/mlwatch \
//	    -run TestIncidentTable -count=1 -timeout 2h -v
//
// MLWATCH_TABLE_RUNS takes seed:rate pairs (default 101:180,202:320,303:220),
// MLWATCH_TABLE_ENGINE server or embedded (default embedded), and
// MLWATCH_TABLE_KINDS a comma-separated subset of the cases.
func TestIncidentTable(t *testing.T) {
	runs := envOr("MLWATCH_TABLE_RUNS", "101:180,202:320,303:220")
	engine := envOr("MLWATCH_TABLE_ENGINE", "embedded")
	kinds := map[string]bool{}
	for _, k := range strings.Split(os.Getenv("MLWATCH_TABLE_KINDS"), ",") {
		if k != "" {
			kinds[k] = true
		}
	}
	var e storetest.Engine
	for _, x := range storetest.Engines(t) {
		if x.Name == engine {
			e = x
		}
	}
	if e.DB == nil {
		t.Fatalf("no engine %q (server or embedded)", engine)
	}
	var rows []string
	for _, run := range strings.Split(runs, ",") {
		s, r, ok := strings.Cut(run, ":")
		seed, err1 := strconv.ParseUint(s, 10, 64)
		rate, err2 := strconv.ParseFloat(r, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("MLWATCH_TABLE_RUNS: %q is not seed:rate", run)
		}
		base := fmt.Sprintf("base_%d", seed)
		newBaseTable(t, e, base, seed, rate)
		for _, tc := range append([]incidentCase{{name: "quiet"}}, incidentCases...) {
			if len(kinds) > 0 && !kinds[tc.name] {
				continue
			}
			var o incidentOutcome
			withIncident(t, e, base, seed, rate, tc, func(table string) { o = runIncident(t, e, table, tc, newReplay(e.DB)) })
			bad := o.check(tc)
			verdict := "ok"
			if len(bad) > 0 {
				verdict = "FAILS"
				for _, b := range bad {
					t.Errorf("%s seed %d rate %g: %s", tc.name, seed, rate, b)
				}
			}
			root := "-"
			if tc.incident != "" {
				root = "no"
				if o.found {
					root = "yes"
				}
			}
			row := fmt.Sprintf("| %s | %d | %g | %s | %d | %d | %d | %s |", tc.name, seed, rate, root, o.roots, o.alerts, o.pages, verdict)
			rows = append(rows, row)
			t.Logf("%s\n%s\nbacktest:\n%s", row, strings.Join(o.eval, "\n"), strings.Join(o.fired, "\n"))
		}
	}
	fmt.Printf("\nengine %s\n| incident | seed | rate | right root | roots | alerts | pages in backtest | limits |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n%s\n",
		engine, strings.Join(rows, "\n"))
}
