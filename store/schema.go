package store

import (
	"context"
	"fmt"
	"strings"
)

// TableDef is one of mlwatch's own tables: its columns in order and the
// engine clause. Apply creates it, then adds any column an older version
// of the table lacks (18.16 has no ADD COLUMN IF NOT EXISTS).
type TableDef struct {
	Name    string
	Columns [][2]string // name, type
	Engine  string
}

// Tables names mlwatch's own tables under a database and prefix. Each
// table's columns are declared by the package that writes it
// (detectors.EvaluationsTable, monitor.RunsTable, alerts.Tables);
// monitor.TableDefs lists them all.
type Tables struct {
	Database string
	Prefix   string
}

// Evaluations is one row per decision a detector made: the figures behind
// every finding and every checked slice, for charts and backtests.
func (t Tables) Evaluations() Table { return Table{t.Database, t.Prefix + "evaluations"} }

// Partials holds incremental evaluation's partial aggregates of closed
// time buckets (detectors.IncrementalTables: it and Partials + "_fills").
func (t Tables) Partials() Table { return Table{t.Database, t.Prefix + "partials"} }

// Runs is one row per detector run: query text, duration, rows read, error.
func (t Tables) Runs() Table { return Table{t.Database, t.Prefix + "runs"} }

// Alerts holds the latest state of each alert (ReplacingMergeTree by version).
func (t Tables) Alerts() Table { return Table{t.Database, t.Prefix + "alerts"} }

// Silences holds silences, latest version of each wins.
func (t Tables) Silences() Table { return Table{t.Database, t.Prefix + "silences"} }

// Outbox holds notifications: written before sending, updated after.
func (t Tables) Outbox() Table { return Table{t.Database, t.Prefix + "outbox"} }

// Peers holds the heartbeats of the replicas of an HA group (mlwatch run
// --cluster.peer-id), from which each derives its position.
func (t Tables) Peers() Table { return Table{t.Database, t.Prefix + "peers"} }

// Triage holds what people did about alerts from Slack or the API:
// acknowledgements, silences and feedback, one row per action.
func (t Tables) Triage() Table { return Table{t.Database, t.Prefix + "triage"} }

// Named returns the table def named t (its database is the caller's to
// give to Apply).
func (d TableDef) Named(t Table) TableDef {
	d.Name = t.Name
	return d
}

// ColumnNames are the def's column names in order, for Insert.
func (d TableDef) ColumnNames() []string {
	out := make([]string, len(d.Columns))
	for i, c := range d.Columns {
		out[i] = c[0]
	}
	return out
}

// PredictionsDef is the canonical prediction-log table (the columns
// configs.Columns defaults to; `mlwatch schema apply --predictions`).
func PredictionsDef(name string) TableDef {
	return TableDef{
		Name: name,
		Columns: [][2]string{
			{"ts", "DateTime"},
			{"request_id", "String"},
			{"model", "String"},
			{"model_version", "String"},
			{"role", "String"},
			{"score", "Float32"},
			{"decision", "UInt8"},
			{"country", "String"},
			{"merchant_category", "String"},
			{"amount_usd", "Float64"},
			{"feature_names", "Array(String)"},
			{"feature_values", "Array(Nullable(Float64))"},
		},
		Engine: "MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (model, role, ts)",
	}
}

// LabelsDef is a labels table: one row per label that arrived (1 =
// fraud), joined to predictions by request id; the column names are the
// model's (configs.LabelColumns). Partitioned by arrival day, so a query
// reads only the labels that arrived since its oldest prediction.
func LabelsDef(name, requestID, label, labeledAt string) TableDef {
	return TableDef{
		Name:    name,
		Columns: [][2]string{{requestID, "String"}, {label, "UInt8"}, {labeledAt, "DateTime"}},
		Engine:  "MergeTree PARTITION BY toYYYYMMDD(" + MustIdent(labeledAt) + ") ORDER BY (" + MustIdent(labeledAt) + ", " + MustIdent(requestID) + ")",
	}
}

// CreateSQL renders CREATE TABLE IF NOT EXISTS for a table in a database.
func (d TableDef) CreateSQL(database string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", Table{database, d.Name}.Quoted())
	for i, c := range d.Columns {
		sep := ","
		if i == len(d.Columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s %s%s\n", MustIdent(c[0]), c[1], sep)
	}
	fmt.Fprintf(&b, ") ENGINE = %s", d.Engine)
	return b.String()
}

// Apply creates the database and tables if missing and adds missing
// columns to tables that exist. Running it twice changes nothing.
func Apply(ctx context.Context, s Store, database string, defs []TableDef) error {
	if database != "" && database != "default" {
		if err := s.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+MustIdent(database)); err != nil {
			return fmt.Errorf("create database %s: %w", database, err)
		}
	}
	for _, d := range defs {
		if err := s.Exec(ctx, d.CreateSQL(database)); err != nil {
			return fmt.Errorf("create table %s: %w", d.Name, err)
		}
		// No database means the connection's: ask the engine which that is.
		dbExpr, args := "currentDatabase()", []any{d.Name}
		if database != "" {
			dbExpr, args = "?", []any{database, d.Name}
		}
		res, err := s.Query(ctx, "SELECT name FROM system.columns WHERE database = "+dbExpr+" AND table = ?", args...)
		if err != nil {
			return fmt.Errorf("columns of %s: %w", d.Name, err)
		}
		have := map[string]bool{}
		for _, r := range res.Rows {
			have[Str(r[0])] = true
		}
		prev := ""
		for _, c := range d.Columns {
			if !have[c[0]] {
				q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", Table{database, d.Name}.Quoted(), MustIdent(c[0]), c[1])
				if prev != "" {
					q += " AFTER " + MustIdent(prev)
				}
				if err := s.Exec(ctx, q); err != nil {
					return fmt.Errorf("add column %s.%s: %w", d.Name, c[0], err)
				}
			}
			prev = c[0]
		}
	}
	return nil
}

// ViewDef is a materialized view that writes what its SELECT makes of
// each block inserted into the SELECT's source table into another table
// (TO): how rollups stay current as rows arrive, with no job to run.
type ViewDef struct {
	Name   string
	To     Table
	Select string
}

// CreateSQL renders CREATE MATERIALIZED VIEW IF NOT EXISTS in a database.
func (v ViewDef) CreateSQL(database string) string {
	return fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS\n%s", Table{database, v.Name}.Quoted(), v.To.Quoted(), v.Select)
}

// ApplyViews creates the views that do not exist yet. A view sees only
// rows inserted after it exists: rows already in the source table are not
// rolled up (backfill with INSERT INTO <to> SELECT ... when needed).
func ApplyViews(ctx context.Context, s Store, database string, views []ViewDef) error {
	for _, v := range views {
		if err := s.Exec(ctx, v.CreateSQL(database)); err != nil {
			return fmt.Errorf("create view %s: %w", v.Name, err)
		}
	}
	return nil
}
