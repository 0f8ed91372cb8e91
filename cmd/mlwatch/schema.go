package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
)

// schemaCmd is `mlwatch schema apply`: mlwatch's tables, and on request
// the models' prediction, labels and rollup tables.
func schemaCmd(ctx context.Context, c *cli, args []string) int {
	return c.subcommand(ctx, "schema", "usage: mlwatch schema apply --config FILE [--predictions] [--rollups [--backfill]] [--cluster NAME [--local-suffix S]]", args,
		map[string]func(context.Context, *cli, []string) int{"apply": schemaApply})
}

func schemaApply(ctx context.Context, c *cli, args []string) int {
	f := newFlags("schema apply", c)
	predictions := f.Bool("predictions", false, "also create each model's prediction table with the canonical schema, and its labels table (models[].labels.table)")
	rollups := f.Bool("rollups", false, "also create each model's minute rollup (models[].rollup.table) and the materialized views that feed it")
	backfill := f.Bool("backfill", false, "with --rollups: also roll up the rows already in the prediction table (once, into an empty rollup)")
	cluster := f.String("cluster", "", "a ClickHouse cluster (remote_servers): create the prediction tables (--predictions) and rollups (--rollups) on every node as local tables (name + --local-suffix) with Distributed tables of the configured names over them")
	suffix := f.String("local-suffix", "_local", "with --cluster: the suffix of the per-node tables behind each Distributed table")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if *backfill && !*rollups {
		fmt.Fprintln(c.stderr, "mlwatch: schema apply: --backfill goes with --rollups")
		return 2
	}
	cfg, log, db, code := c.setup(ctx, f)
	if code != 0 {
		return code
	}
	defer db.Close()
	t, err := applyTables(ctx, db, cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch: schema apply: %v\n", err)
		return 1
	}
	fmt.Fprintf(c.stdout, "mlwatch tables ready in %s (%s engine)\n", t.Database, db.Engine())
	if *cluster != "" {
		if *suffix == "" {
			fmt.Fprintln(c.stderr, "mlwatch: schema apply: --local-suffix must not be empty")
			return 2
		}
		if err := applyCluster(ctx, c.stdout, cfg, db, log, *cluster, *suffix, *predictions, *rollups, *backfill); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch: schema apply --cluster %s: %v\n", *cluster, err)
			return 1
		}
		return 0
	}
	if *predictions {
		for _, m := range cfg.Models {
			tbl := store.ParseTable(m.Table)
			database := tbl.Database
			if database == "" {
				database = cfg.ClickHouse.Database
			}
			if err := store.Apply(ctx, db, database, []store.TableDef{store.PredictionsDef(tbl.Name)}); err != nil {
				fmt.Fprintf(c.stderr, "mlwatch: schema apply: model %s: %v\n", m.Name, err)
				return 1
			}
			fmt.Fprintf(c.stdout, "prediction table %s.%s ready for model %s\n", database, tbl.Name, m.Name)
			if l := m.Labels; l != nil && l.Table != "" {
				lt := store.ParseTable(m.LabelsTable())
				ldb := lt.Database
				if ldb == "" {
					ldb = cfg.ClickHouse.Database
				}
				if err := store.Apply(ctx, db, ldb, []store.TableDef{store.LabelsDef(lt.Name, l.Columns.RequestID, l.Columns.Label, l.Columns.LabeledAt)}); err != nil {
					fmt.Fprintf(c.stderr, "mlwatch: schema apply: model %s labels: %v\n", m.Name, err)
					return 1
				}
				fmt.Fprintf(c.stdout, "labels table %s.%s ready for model %s\n", ldb, lt.Name, m.Name)
			}
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
				err = refuseDistributed(ctx, db, "model "+m.Name+" rollup", store.ParseTable(m.Table), store.ParseTable(m.Rollup.Table))
			}
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
			if *backfill {
				rows, err := backfillRollup(ctx, db, m, r, time.Now().UTC().Truncate(time.Minute))
				if err != nil {
					fmt.Fprintf(c.stderr, "mlwatch: schema apply --backfill: model %s: %v\n", m.Name, err)
					return 1
				}
				fmt.Fprintf(c.stdout, "rollup %s backfilled from %d rows already in %s\n", m.Rollup.Table, rows, m.Table)
			}
		}
		if n == 0 {
			fmt.Fprintln(c.stderr, "mlwatch: schema apply --rollups: no model sets rollup.table")
			return 1
		}
	}
	return 0
}

// backfillRollup rolls up the model's rows older than cutoff (the views
// take everything inserted from now on), a day at a time. A range rolled
// up twice would count twice, so it refuses a rollup that already holds
// minutes before the cutoff.
func backfillRollup(ctx context.Context, db *store.DB, m *configs.Model, r *detectors.RollupDDL, cutoff time.Time) (int64, error) {
	for _, t := range r.Tables {
		res, err := db.Query(ctx, "SELECT count() FROM "+store.Table{Database: r.Database, Name: t.Name}.Quoted()+" WHERE minute < ?", cutoff)
		if err != nil {
			return 0, err
		}
		if n := store.Int(res.Rows[0][0]); n > 0 {
			return 0, fmt.Errorf("rollup table %s already holds %d rows before %s; backfill runs once, into an empty rollup (drop the rollup tables and views to start over)",
				t.Name, n, cutoff.Format(time.RFC3339))
		}
	}
	ts := store.MustIdent(m.Columns.TS)
	res, err := db.Query(ctx, "SELECT min("+ts+"), count() FROM "+store.ParseTable(m.Table).Quoted()+" WHERE "+ts+" < ?", cutoff)
	if err != nil {
		return 0, err
	}
	first, rows := store.Time(res.Rows[0][0]), store.Int(res.Rows[0][1])
	if rows == 0 {
		return 0, nil
	}
	for day := first.Truncate(24 * time.Hour); day.Before(cutoff); day = day.Add(24 * time.Hour) {
		end := day.Add(24 * time.Hour)
		if end.After(cutoff) {
			end = cutoff
		}
		stmts, err := r.Backfill(day, end)
		if err != nil {
			return 0, err
		}
		for _, q := range stmts {
			if err := db.Exec(ctx, q); err != nil {
				return 0, fmt.Errorf("backfill %s: %w", day.Format("2006-01-02"), err)
			}
		}
	}
	return rows, nil
}
