package detectors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Two-level evaluation for a model on a cluster (models[].cluster).
//
// ClickHouse 18.16 sends to the shards of a Distributed table only the
// query level that reads it; a kind whose rows must be combined per
// request before they are counted (shadow pairs production and shadow
// rows by request id) has that level in a nested query, so each shard
// would ship one row per request. With the model's cluster and local
// table in the config, such a kind runs its whole aggregation on each
// shard's local table over a connection of its own and returns partial
// aggregates (one row per slice value and window, additive columns); the
// shards' rows are summed here per key and cut to the top K exactly as
// ranked does in SQL. That needs both rows of a request on one shard
// (sharding by request id): when the split-pair check finds split pairs,
// the caller sets PairOnInitiator and the kind reads the Distributed
// table as one query again.

// shardedKind is a kind with a two-level form.
type shardedKind interface {
	// shardQuery is the query each shard runs over its local table: one
	// row per slice (sc, sv) and window w, with the additive columns of
	// shardCols.
	shardQuery(w windows) *sqlText
	// shardCols are the additive columns of shardQuery's rows and what
	// ranked orders slice values by (summed over windows): a column, or
	// columns joined by " + ", as in the SQL of ranked.
	shardCols() (sums []string, rank string)
}

// twoLevel is the query of a kind that counts per slice and window in one
// aggregation (counts, over a source) that can run on each shard: the one
// query ranks that aggregation; the two-level form runs it on each
// shard's local table and the shards' rows are summed (shadow pairs and
// performance joins the labels inside it).
type twoLevel struct {
	from   source
	counts func(s source, w windows) *sqlText
	cols   []string // the additive columns after sc, sv, w
	rank   string   // what ranked orders slice values by
}

func (t twoLevel) query(w windows) *sqlText {
	return t.from.ranked(t.counts(t.from, w), false, t.cols, t.rank)
}

func (t twoLevel) shardQuery(w windows) *sqlText {
	s := t.from
	s.table = localTable(s.m).Quoted()
	return shardCounts(t.counts(s, w), t.cols)
}

func (t twoLevel) shardCols() ([]string, string) { return t.cols, t.rank }

// shardCounts is the query a shard runs: the rows of counts (one per
// slice and window) with the slice's name and value, the window and the
// additive columns cols.
func shardCounts(counts *sqlText, cols []string) *sqlText {
	q := &sqlText{}
	q.add("SELECT sc, sv, w")
	for _, c := range cols {
		q.add(", " + c)
	}
	return q.addFrom("", counts)
}

// shardStore is a Querier that reaches each shard of a cluster over a
// connection of its own (*store.DB).
type shardStore interface {
	Shards(ctx context.Context, cluster string) ([]store.Shard, error)
}

// PairOnInitiator makes a detector of a model on a cluster
// (models[].cluster) read the model's Distributed table in one query
// again, as without the cluster setting, instead of evaluating on each
// shard: the fallback when a request's rows are split across shards
// (monitor.CheckSplitPairs), where pairs are found on the initiator
// only. Safe to call while the detector evaluates.
func (d *Detector) PairOnInitiator(on bool) { d.initiator.Store(on) }

// OnShards reports whether the detector evaluates on each shard of its
// model's cluster (a kind with a two-level form, a model with
// models[].cluster, no PairOnInitiator).
func (d *Detector) OnShards() bool { return d.sharded() != nil }

func (d *Detector) sharded() shardedKind {
	if d.model.Cluster == "" || d.cfg.Source == configs.SourceRollup || d.initiator.Load() {
		return nil
	}
	k, _ := d.impl.(shardedKind)
	return k
}

// localTable is the model's table on each shard, in the database of its
// Distributed table when the config names none.
func localTable(m *configs.Model) store.Table {
	l := store.ParseTable(m.LocalTable)
	if l.Database == "" {
		l.Database = store.ParseTable(m.Table).Database
	}
	return l
}

// evaluateShards runs k's shard query on every shard of the model's
// cluster at once, merges their rows and decides. A shard that fails
// fails the evaluation: figures without it would be wrong.
func (d *Detector) evaluateShards(ctx context.Context, q Querier, w windows, k shardedKind) (*Result, error) {
	res := d.newResult(w)
	fail := func(err error) (*Result, error) { return res, fmt.Errorf("%s %s: %w", d.cfg.Kind, d.cfg.Name, err) }
	sql, err := k.shardQuery(w).bind()
	if err != nil {
		return fail(err)
	}
	res.Query = sql
	ss, ok := q.(shardStore)
	if !ok {
		return fail(fmt.Errorf("model %s is on cluster %s, and this store cannot reach its shards", d.model.Name, d.model.Cluster))
	}
	start := time.Now()
	shards, err := ss.Shards(ctx, d.model.Cluster)
	if err != nil {
		return fail(err)
	}
	parts := make([]*store.Result, len(shards))
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Go(func() {
			if parts[i], errs[i] = sh.DB.Query(ctx, sql); errs[i] != nil {
				errs[i] = fmt.Errorf("shard %d (%s): %w", sh.Num, sh.Addr, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(fmt.Errorf("query on the shards of %s: %w", d.model.Cluster, err))
	}
	sums, rank := k.shardCols()
	rows, err := mergeShards(parts, sums, rank, d.cfg.TopK)
	if err != nil {
		return fail(err)
	}
	rows.Stats.Duration = time.Since(start)
	return res, d.decide(res, rows, w)
}

// mergeShards sums the shards' rows per (sc, sv, w) and keeps, for each
// slice column sc, its top K values by rank summed over the windows, in
// ranked's order: ORDER BY sc, rank DESC, sv, LIMIT K BY sc, and the
// rows by sc, sv, w. NULL is no value, as in a sum's state: NULL + x = x.
func mergeShards(parts []*store.Result, sums []string, rank string, topK int) (*store.Result, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("no shards")
	}
	out := &store.Result{Columns: parts[0].Columns}
	isc, isv, iw := out.Index("sc"), out.Index("sv"), out.Index("w")
	idx, err := cols(out, sums...)
	if err != nil || isc < 0 || isv < 0 || iw < 0 {
		return nil, fmt.Errorf("shard result lacks sc, sv or w (%v)", err)
	}
	irank, err := cols(out, strings.Split(rank, " + ")...)
	if err != nil {
		return nil, fmt.Errorf("shard result lacks the rank %s: %w", rank, err)
	}
	merged := map[shardKey][]any{}
	for _, p := range parts {
		if len(p.Columns) != len(out.Columns) {
			return nil, fmt.Errorf("shards returned different columns: %v and %v", out.Columns, p.Columns)
		}
		out.Stats.RowsRead += p.Stats.RowsRead
		out.Stats.BytesRead += p.Stats.BytesRead
		for _, r := range p.Rows {
			k := shardKey{store.Str(r[isc]), store.Str(r[isv]), store.Float(r[iw])}
			m := merged[k]
			if m == nil {
				merged[k] = append([]any(nil), r...)
				continue
			}
			for _, c := range idx {
				m[c] = addValues(m[c], r[c])
			}
		}
	}
	keep := topValues(merged, irank, topK)
	keys := make([]shardKey, 0, len(merged))
	for k := range merged {
		if keep[[2]string{k.sc, k.sv}] {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b shardKey) int {
		return cmp.Or(strings.Compare(a.sc, b.sc), strings.Compare(a.sv, b.sv), cmp.Compare(a.w, b.w))
	})
	for _, k := range keys {
		out.Rows = append(out.Rows, merged[k])
	}
	out.Stats.ResultRows = len(out.Rows)
	return out, nil
}

// shardKey is a row's slice column, value and window.
type shardKey struct {
	sc, sv string
	w      float64
}

// topValues are the (sc, sv) that ranked keeps: for each slice column
// sc, its top K values by the rank columns (irank) summed over windows
// (ties by value), ORDER BY sc, rank DESC, sv LIMIT K BY sc.
func topValues(merged map[shardKey][]any, irank []col, topK int) map[[2]string]bool {
	type value struct {
		sc, sv string
		rank   float64
	}
	ranks := map[[2]string]*value{}
	for k, r := range merged {
		v := ranks[[2]string{k.sc, k.sv}]
		if v == nil {
			v = &value{sc: k.sc, sv: k.sv}
			ranks[[2]string{k.sc, k.sv}] = v
		}
		for _, i := range irank {
			if f := store.Float(r[i]); !math.IsNaN(f) { // NULL adds nothing
				v.rank += f
			}
		}
	}
	vals := slices.Collect(maps.Values(ranks))
	slices.SortFunc(vals, func(a, b *value) int {
		return cmp.Or(strings.Compare(a.sc, b.sc), cmp.Compare(b.rank, a.rank), strings.Compare(a.sv, b.sv))
	})
	keep := map[[2]string]bool{}
	for i, n := 0, 0; i < len(vals); i++ {
		if i > 0 && vals[i].sc != vals[i-1].sc {
			n = 0
		}
		if n < topK {
			keep[[2]string{vals[i].sc, vals[i].sv}] = true
		}
		n++
	}
	return keep
}

// addValues adds two normalised values of one column: counts (UInt64,
// Int64) exactly, sums as float64; NULL is no value.
func addValues(a, b any) any {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	switch x := a.(type) {
	case uint64:
		if y, ok := b.(uint64); ok {
			return x + y
		}
	case int64:
		if y, ok := b.(int64); ok {
			return x + y
		}
	}
	return store.Float(a) + store.Float(b)
}
