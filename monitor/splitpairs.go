package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// SplitPairWindow is how far back SplitPairWarnings looks.
const SplitPairWindow = time.Hour

// SplitPairs is what the split-pair check found for one model whose
// prediction table is a Distributed table with shadow rows.
type SplitPairs struct {
	Model string
	Table string
	// Shadow is the requests with a shadow row in the window; Split those
	// whose production row is on another shard than their shadow row.
	Shadow, Split uint64
}

// CheckSplitPairs counts, for each model with shadow rows (shadow.mode
// rows) on a Distributed table, the requests of the last SplitPairWindow
// before now whose shadow row and production row sit on different shards.
// The shadow detector pairs rows on the initiator, so its figures are
// right whatever the sharding key; but pairing on the shards (and any
// per-shard tool) needs both rows of a request on one shard, e.g. the
// sharding key cityHash64(request_id) that `schema apply --cluster` uses.
// The check is one cheap query per model run twice: pairs counted per
// shard (distributed_group_by_no_merge) and pairs counted across the
// cluster; the difference is the split pairs. Tables that are not
// Distributed are skipped (one node pairs everything).
func CheckSplitPairs(ctx context.Context, q store.Store, cfg *configs.Config, now time.Time) ([]SplitPairs, error) {
	var out []SplitPairs
	for i := range cfg.Models {
		m := &cfg.Models[i]
		if m.Shadow.Mode != configs.ShadowRows || m.Columns.RequestID == "" || m.Columns.Role == "" {
			continue
		}
		t := store.ParseTable(m.Table).In(cfg.ClickHouse.Database)
		engine, err := q.Query(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", t.Database, t.Name)
		if err != nil {
			return out, fmt.Errorf("model %s: read the engine of %s.%s: %w", m.Name, t.Database, t.Name, err)
		}
		if len(engine.Rows) == 0 || store.Str(engine.Rows[0][0]) != "Distributed" {
			continue
		}
		sql, args := splitPairSQL(m, t, now)
		var lone [2]uint64
		var shadow uint64
		for j, settings := range []string{" SETTINGS distributed_group_by_no_merge = 1", ""} {
			res, err := q.Query(ctx, sql+settings, args...)
			if err != nil {
				return out, fmt.Errorf("model %s: split-pair check on %s.%s: %w", m.Name, t.Database, t.Name, err)
			}
			if len(res.Rows) == 1 {
				lone[j] = uint64(store.Int(res.Rows[0][0]))
				if j == 1 {
					shadow = uint64(store.Int(res.Rows[0][1]))
				}
			}
		}
		split := uint64(0)
		if lone[0] > lone[1] {
			split = lone[0] - lone[1]
		}
		out = append(out, SplitPairs{Model: m.Name, Table: t.Database + "." + t.Name, Shadow: shadow, Split: split})
	}
	return out, nil
}

// splitPairSQL counts shadow requests without a production row next to
// them (per GROUP BY: per shard with distributed_group_by_no_merge, else
// across the cluster) and all shadow requests.
func splitPairSQL(m *configs.Model, t store.Table, now time.Time) (string, []any) {
	id, role, ts := store.MustIdent(m.Columns.RequestID), store.MustIdent(m.Columns.Role), store.MustIdent(m.Columns.TS)
	where := ts + " >= ? AND " + ts + " < ?"
	args := []any{m.Shadow.ProductionRole, m.Shadow.ShadowRole, now.Add(-SplitPairWindow), now}
	if m.ModelValue != "" && m.Columns.Model != "" {
		where += " AND " + store.MustIdent(m.Columns.Model) + " = ?"
		args = append(args, m.ModelValue)
	}
	return "SELECT countIf(s = 1 AND p = 0) AS lone, countIf(s = 1) AS shadow FROM (SELECT " + id +
		" AS rid, max(" + role + " = ?) AS p, max(" + role + " = ?) AS s FROM " + t.Quoted() +
		" WHERE " + where + " GROUP BY rid)", args
}

// SplitPairWarnings are CheckSplitPairs' findings as warnings for the
// daemon's log and `mlwatch eval`: one per model with split pairs, or
// one saying the check failed. initiator holds the models on a cluster
// (models[].cluster) whose shadow detectors must pair on the initiator,
// through the Distributed table, instead of on each shard: those with
// split pairs, and all of them when the check failed (pairing on the
// shards would miss the split pairs; Monitor.PairOnInitiator).
func SplitPairWarnings(ctx context.Context, q store.Store, cfg *configs.Config, now time.Time) (warnings []string, initiator map[string]bool) {
	found, err := CheckSplitPairs(ctx, q, cfg, now)
	initiator = map[string]bool{}
	checked := map[string]bool{}
	for _, s := range found {
		checked[s.Model] = true
		if s.Split == 0 {
			continue
		}
		m := &cfg.Models[modelIndex(cfg, s.Model)]
		what := "the shadow detector still pairs them (on the node mlwatch talks to), but pairing on the shards needs both rows of a request on one shard"
		if m.Cluster != "" {
			initiator[m.Name] = true
			what = fmt.Sprintf("the shadow detectors pair on the node mlwatch talks to, through the Distributed table, not on the shards of cluster %s, until a reload finds no split pair", m.Cluster)
		}
		warnings = append(warnings, fmt.Sprintf("model %s: %d of %d shadow requests in the last %s have their production row on another shard of %s: "+
			"%s: shard the Distributed table by cityHash64(%s), as `mlwatch schema apply --cluster` does",
			s.Model, s.Split, s.Shadow, SplitPairWindow, s.Table, what, m.Columns.RequestID))
	}
	if err != nil {
		msg := "split-pair check: " + err.Error()
		for i := range cfg.Models {
			if m := &cfg.Models[i]; m.Cluster != "" && !checked[m.Name] {
				initiator[m.Name] = true
				msg += fmt.Sprintf("; model %s pairs on the node mlwatch talks to, not on the shards of cluster %s", m.Name, m.Cluster)
			}
		}
		warnings = append(warnings, msg)
	}
	return warnings, initiator
}

func modelIndex(cfg *configs.Config, name string) int {
	for i := range cfg.Models {
		if cfg.Models[i].Name == name {
			return i
		}
	}
	return 0
}
