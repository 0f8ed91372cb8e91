package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/traffic"
)

// incidentFlags collects repeated --incident values.
type incidentFlags []string

func (f *incidentFlags) String() string     { return strings.Join(*f, ",") }
func (f *incidentFlags) Set(s string) error { *f = append(*f, s); return nil }

func generateCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("generate", c)
	from := f.String("from", "", "first minute, RFC 3339 (required)")
	to := f.String("to", "", "end (exclusive), RFC 3339 or +DURATION after --from (required)")
	rate := f.Float64("rate", 1000, "mean requests per minute on a weekday; each request logs a production and a shadow row")
	seed := f.Uint64("seed", 1, "random seed; the same seed gives the same rows")
	model := f.String("model", "", "model to generate (default: the config's first model)")
	var incidents incidentFlags
	f.Var(&incidents, "incident", "KIND:START:END[:ARG], repeatable; START/END are RFC 3339 or +DURATION after --from; kinds: slice_block, null_spike, default_fill, world_shift, outage, shadow_divergence, shadow_outage, category_block, version_rollout, cascade, canary_fail, ramp, labels_stop, model_blind, shadow_country_block (see docs/design-notes.md)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	start, err := time.Parse(time.RFC3339, *from)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch generate: --from %q: want an RFC 3339 time such as 2026-11-01T00:00:00Z\n", *from)
		return 2
	}
	var end time.Time
	if strings.HasPrefix(*to, "+") {
		in, err := traffic.ParseIncident("outage:"+*from+":"+*to, start)
		if err != nil {
			fmt.Fprintf(c.stderr, "mlwatch generate: --to %q: %v\n", *to, err)
			return 2
		}
		end = in.End
	} else if end, err = time.Parse(time.RFC3339, *to); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch generate: --to %q: want an RFC 3339 time or +DURATION\n", *to)
		return 2
	}
	var ins []traffic.Incident
	for _, s := range incidents {
		in, err := traffic.ParseIncident(s, start)
		if err != nil {
			fmt.Fprintf(c.stderr, "mlwatch generate: %v\n", err)
			return 2
		}
		ins = append(ins, in)
	}
	cfg, ok := c.load(*f.config)
	if !ok {
		return 1
	}
	// Generation is a batch job: each INSERT may take minutes on a busy
	// server, far past a detector's query timeout.
	if cfg.ClickHouse.QueryTimeout.D() < 10*time.Minute {
		cfg.ClickHouse.QueryTimeout = configs.Duration(10 * time.Minute)
	}
	log, err := c.logger(*f.logLevel)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 2
	}
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch: %v\n", err)
		return 1
	}
	defer db.Close()
	m := &cfg.Models[0]
	if *model != "" {
		m = nil
		for i := range cfg.Models {
			if cfg.Models[i].Name == *model {
				m = &cfg.Models[i]
			}
		}
		if m == nil {
			fmt.Fprintf(c.stderr, "mlwatch generate: --model %q is not in %s\n", *model, cfg.Path)
			return 2
		}
	}
	workers := 1
	if db.Engine() == "server" {
		workers = 2
	}
	// The table may already hold rows in the range: report what this run
	// added.
	ts := store.MustIdent(m.Columns.TS)
	countRange := func() int64 {
		rows, err := db.Query(ctx, "SELECT count() FROM "+store.ParseTable(m.Table).Quoted()+" WHERE "+ts+" >= ? AND "+ts+" < ?", start, end)
		if err != nil || len(rows.Rows) != 1 {
			return 0
		}
		return store.Int(rows.Rows[0][0])
	}
	before := countRange()
	last := time.Now()
	st, err := traffic.Generate(ctx, db, traffic.Options{
		Model: m, From: start, To: end, Rate: *rate, Seed: *seed, Incidents: ins, Concurrency: workers,
		Progress: func(done, total int) {
			if time.Since(last) > 2*time.Second || done == total {
				fmt.Fprintf(c.stderr, "generate: %d/%d minutes\n", done, total)
				last = time.Now()
			}
		},
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch %v\n", err)
		return 1
	}
	n := countRange() - before
	fmt.Fprintf(c.stdout, "generated %d rows for model %s over %d minutes in %s (%s engine)\n", n, m.Name, st.Minutes, st.Duration.Round(time.Millisecond), db.Engine())
	if m.Labels != nil && m.Labels.Table != "" {
		if err := traffic.GenerateLabels(ctx, db, traffic.LabelOptions{Model: m, From: start, To: end, Incidents: ins}); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch %v (run mlwatch schema apply --predictions to create %s)\n", err, m.LabelsTable())
			return 1
		}
		fmt.Fprintf(c.stdout, "labels of those requests written to %s (%.0f%% coverage, delays of days to weeks)\n", m.LabelsTable(), 100*traffic.LabelCoverage)
	}
	for _, in := range ins {
		fmt.Fprintf(c.stdout, "  incident %s\n", in)
	}
	return 0
}
