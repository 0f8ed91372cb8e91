package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"go.uber.org/zap"
)

// clusterNode is one server of a ClickHouse cluster, connected.
type clusterNode struct {
	addr string
	db   *store.DB
}

// openCluster connects to every server (every replica of every shard) of
// cluster name as system.clusters of the node db talks to lists them, with
// the config's credentials. Without ZooKeeper there is no ON CLUSTER DDL
// queue, so schema changes go node by node.
func openCluster(ctx context.Context, cfg *configs.Config, db *store.DB, name string, log *zap.Logger) ([]clusterNode, error) {
	res, err := db.Query(ctx, "SELECT host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", name)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	if len(res.Rows) == 0 {
		return nil, fmt.Errorf("cluster %s: not in system.clusters of the server mlwatch talks to (remote_servers)", name)
	}
	var nodes []clusterNode
	for _, r := range res.Rows {
		addr := net.JoinHostPort(store.Str(r[0]), strconv.FormatInt(store.Int(r[1]), 10))
		c := *cfg
		c.ClickHouse.Addr = addr
		ndb, err := openStore(ctx, &c, log)
		if err != nil {
			closeCluster(nodes)
			return nil, fmt.Errorf("cluster %s node %s: %w", name, addr, err)
		}
		nodes = append(nodes, clusterNode{addr: addr, db: ndb})
	}
	return nodes, nil
}

func closeCluster(nodes []clusterNode) {
	for _, n := range nodes {
		_ = n.db.Close()
	}
}

// engineOf returns the engine of a table ("" when it does not exist).
func engineOf(ctx context.Context, db *store.DB, t store.Table) (string, error) {
	dbExpr, args := "currentDatabase()", []any{t.Name}
	if t.Database != "" {
		dbExpr, args = "?", []any{t.Database, t.Name}
	}
	res, err := db.Query(ctx, "SELECT engine FROM system.tables WHERE database = "+dbExpr+" AND name = ?", args...)
	if err != nil {
		return "", err
	}
	if len(res.Rows) == 0 {
		return "", nil
	}
	return store.Str(res.Rows[0][0]), nil
}

// refuseDistributed fails when a view would read from or write into a
// Distributed table: a materialized view sees only the rows inserted
// through its own node, and one writing into a Distributed table
// double-counts or breaks inserts.
func refuseDistributed(ctx context.Context, db *store.DB, what string, tables ...store.Table) error {
	for _, t := range tables {
		eng, err := engineOf(ctx, db, t)
		if err != nil {
			return err
		}
		if eng == "Distributed" {
			return fmt.Errorf("%s: %s is a Distributed table; a materialized view on it would see only the rows inserted through this node (use schema apply --cluster NAME: the rollup then lives on every shard, over the local table)", what, t.Quoted())
		}
	}
	return nil
}

// localOf is the per-shard table behind a Distributed table t.
func localOf(t store.Table, suffix string) store.Table {
	return store.Table{Database: t.Database, Name: t.Name + suffix}
}

// distributedDef is a Distributed table named like def over local on
// cluster, sharded by key ("" for none: a table nobody inserts into).
func distributedDef(def store.TableDef, name, cluster, database, local, key string) store.TableDef {
	def.Name = name
	def.Engine = "Distributed(" + store.MustIdent(cluster) + ", " + store.MustIdent(database) + ", " + store.MustIdent(local)
	if key != "" {
		def.Engine += ", " + key
	}
	def.Engine += ")"
	return def
}

// applyCluster is schema apply --cluster: on every node of the cluster,
// each model's prediction table as a local MergeTree (name + suffix) with
// a Distributed table of the configured name over it, sharded by request
// id so that both rows of a request land on one shard (shadow pairing);
// with rollups, each model's rollup and its views on every node over the
// local table, and a Distributed table of the rollup's name over the
// local rollups, which the detectors read (partial states merged).
func applyCluster(ctx context.Context, w io.Writer, cfg *configs.Config, db *store.DB, log *zap.Logger, name, suffix string, predictions, rollups, backfill bool) error {
	nodes, err := openCluster(ctx, cfg, db, name, log)
	if err != nil {
		return err
	}
	defer closeCluster(nodes)
	for i := range cfg.Models {
		m := &cfg.Models[i]
		t := store.ParseTable(m.Table)
		if t.Database == "" {
			t.Database = cfg.ClickHouse.Database
		}
		if t.Database == "" {
			t.Database = "default"
		}
		local := localOf(t, suffix)
		if predictions {
			key := "cityHash64(" + store.MustIdent(m.Columns.RequestID) + ")"
			defs := []store.TableDef{store.PredictionsDef(local.Name), distributedDef(store.PredictionsDef(""), t.Name, name, t.Database, local.Name, key)}
			for _, n := range nodes {
				if err := store.Apply(ctx, n.db, t.Database, defs); err != nil {
					return fmt.Errorf("model %s on %s: %w", m.Name, n.addr, err)
				}
			}
			fmt.Fprintf(w, "prediction table %s on %d nodes of cluster %s: %s per node, Distributed by %s\n", t.Quoted(), len(nodes), name, local.Quoted(), key)
		}
		if !rollups || m.Rollup == nil {
			continue
		}
		lm := *m
		lm.Table = local.Database + "." + local.Name
		rt := store.ParseTable(m.Rollup.Table)
		if rt.Database == "" {
			rt.Database = t.Database
		}
		lr := *m.Rollup
		lr.Table = rt.Database + "." + rt.Name + suffix
		lm.Rollup = &lr
		r, err := detectors.Rollup(&lm)
		if err != nil {
			return err
		}
		cutoff := time.Now().UTC().Truncate(time.Minute)
		for _, n := range nodes {
			if err := store.Apply(ctx, n.db, r.Database, r.Tables); err != nil {
				return fmt.Errorf("model %s rollup on %s: %w", m.Name, n.addr, err)
			}
			targets := []store.Table{local}
			for _, d := range r.Tables {
				targets = append(targets, store.Table{Database: r.Database, Name: d.Name})
			}
			if err := refuseDistributed(ctx, n.db, "model "+m.Name+" rollup on "+n.addr, targets...); err != nil {
				return err
			}
			if err := store.ApplyViews(ctx, n.db, r.Database, r.Views); err != nil {
				return fmt.Errorf("model %s rollup views on %s: %w", m.Name, n.addr, err)
			}
			var dist []store.TableDef
			for _, d := range r.Tables {
				// The rollup tables are <rollup>_local and
				// <rollup>_local_features; the Distributed ones drop the
				// suffix: <rollup> and <rollup>_features.
				dn := rt.Name + d.Name[len(rt.Name)+len(suffix):]
				dist = append(dist, distributedDef(d, dn, name, r.Database, d.Name, ""))
			}
			if err := store.Apply(ctx, n.db, r.Database, dist); err != nil {
				return fmt.Errorf("model %s rollup on %s: %w", m.Name, n.addr, err)
			}
			if backfill {
				rows, err := backfillRollup(ctx, n.db, &lm, r, cutoff)
				if err != nil {
					return fmt.Errorf("model %s backfill on %s: %w", m.Name, n.addr, err)
				}
				fmt.Fprintf(w, "rollup %s on %s backfilled from %d rows\n", lr.Table, n.addr, rows)
			}
		}
		fmt.Fprintf(w, "rollup %s ready for model %s on %d nodes of cluster %s (per node: %s and its views over %s)\n", m.Rollup.Table, m.Name, len(nodes), name, lr.Table, local.Quoted())
	}
	return nil
}
