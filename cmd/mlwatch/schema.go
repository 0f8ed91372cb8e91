package main

import (
	"context"
	"fmt"

	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
)

func schemaCmd(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 || args[0] != "apply" {
		fmt.Fprintln(c.stderr, "usage: mlwatch schema apply --config FILE [--predictions] [--rollups]")
		return 2
	}
	f := newFlags("schema apply", c)
	predictions := f.Bool("predictions", false, "also create each model's prediction table with the canonical schema")
	rollups := f.Bool("rollups", false, "also create each model's minute rollup (models[].rollup.table) and the materialized views that feed it")
	if code, ok := f.parse(args[1:]); !ok {
		return code
	}
	cfg, _, db, code := c.setup(ctx, f)
	if code != 0 {
		return code
	}
	defer db.Close()
	t := tablesOf(cfg)
	if err := store.Apply(ctx, db, t.Database, t.Defs()); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch: schema apply: %v\n", err)
		return 1
	}
	fmt.Fprintf(c.stdout, "mlwatch tables ready in %s (%s engine)\n", t.Database, db.Engine())
	if *predictions {
		for _, m := range cfg.Models {
			tbl := splitTable(m.Table)
			database := tbl.Database
			if database == "" {
				database = cfg.ClickHouse.Database
			}
			if err := store.Apply(ctx, db, database, []store.TableDef{store.PredictionsDef(tbl.Name)}); err != nil {
				fmt.Fprintf(c.stderr, "mlwatch: schema apply: model %s: %v\n", m.Name, err)
				return 1
			}
			fmt.Fprintf(c.stdout, "prediction table %s.%s ready for model %s\n", database, tbl.Name, m.Name)
		}
	}
	if *rollups {
		n := 0
		for i := range cfg.Models {
			m := &cfg.Models[i]
			if m.Rollup == nil {
				continue
			}
			r, err := detectors.Rollup(m)
			if err == nil {
				err = store.Apply(ctx, db, r.Database, r.Tables)
			}
			if err == nil {
				err = store.ApplyViews(ctx, db, r.Database, r.Views)
			}
			if err != nil {
				fmt.Fprintf(c.stderr, "mlwatch: schema apply: model %s rollup: %v\n", m.Name, err)
				return 1
			}
			n++
			fmt.Fprintf(c.stdout, "rollup %s ready for model %s (rows inserted from now on are rolled up)\n", m.Rollup.Table, m.Name)
		}
		if n == 0 {
			fmt.Fprintln(c.stderr, "mlwatch: schema apply --rollups: no model sets rollup.table")
			return 1
		}
	}
	return 0
}
