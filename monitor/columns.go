package monitor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// CheckColumns verifies, against system.columns, that each model's table
// exists and has every column the config names, each of a type its role
// can be read as, so a typo or a wrong type is reported at start-up (and
// reload) by table, column and type instead of as a failing detector, or
// a wrong alert, later.
func CheckColumns(ctx context.Context, q store.Store, cfg *configs.Config) error {
	var problems []string
	for _, m := range cfg.Models {
		t := store.ParseTable(m.Table).In(cfg.ClickHouse.Database)
		db, table := t.Database, t.Name
		res, err := q.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", db, table)
		if err != nil {
			return fmt.Errorf("model %s: read columns of %s.%s: %w", m.Name, db, table, err)
		}
		if len(res.Rows) == 0 {
			problems = append(problems, fmt.Sprintf("model %s: table %s.%s does not exist (mlwatch schema apply --predictions creates the canonical one)", m.Name, db, table))
			continue
		}
		have := map[string]string{}
		for _, r := range res.Rows {
			have[store.Str(r[0])] = store.Str(r[1])
		}
		type need struct {
			key, col string
			role     columnRole
		}
		needs := []need{
			{"columns.ts", m.Columns.TS, roleTime}, {"columns.score", m.Columns.Score, roleNumber},
			{"columns.decision", m.Columns.Decision, roleDecision}, {"columns.model_version", m.Columns.ModelVersion, roleText},
		}
		if m.ModelValue != "" && m.Columns.Model != "" {
			needs = append(needs, need{"columns.model", m.Columns.Model, roleLabel})
		}
		if m.Columns.DeployedAt != "" {
			needs = append(needs, need{"columns.deployed_at", m.Columns.DeployedAt, roleTime})
		}
		switch m.Shadow.Mode {
		case configs.ShadowRows:
			needs = append(needs, need{"columns.role", m.Columns.Role, roleLabel}, need{"columns.request_id", m.Columns.RequestID, roleLabel})
		case configs.ShadowColumns:
			needs = append(needs, need{"shadow.score_column", m.Shadow.ScoreColumn, roleNumber}, need{"shadow.decision_column", m.Shadow.DecisionColumn, roleDecision})
		}
		for _, c := range m.Slices {
			needs = append(needs, need{"slices", c, roleText})
		}
		if m.Features.Layout == configs.LayoutArrays {
			needs = append(needs, need{"features.names_column", m.Features.NamesColumn, roleNames}, need{"features.values_column", m.Features.ValuesColumn, roleValues})
		} else {
			for _, f := range m.Features.Names {
				needs = append(needs, need{"features.names", f, roleNumber})
			}
		}
		for _, d := range cfg.Detectors {
			if d.Model != m.Name {
				continue
			}
			if d.Slices != nil {
				for _, c := range *d.Slices {
					needs = append(needs, need{"detector " + d.Name + " slices", c, roleText})
				}
			}
			if d.Expectation != nil {
				for _, mt := range d.Expectation.Match {
					needs = append(needs, need{"detector " + d.Name + " expectation.match", mt.Column, roleText})
				}
			}
		}
		if m.Rollup != nil {
			if p := checkRollup(ctx, q, cfg, &m); p != "" {
				problems = append(problems, p)
			}
		}
		if m.Cluster != "" {
			if p := checkCluster(ctx, q, cfg, &m); p != "" {
				problems = append(problems, p)
			}
		}
		seen := map[string]bool{}
		for _, n := range needs {
			if n.col == "" || seen[n.key+"\x00"+n.col] {
				continue
			}
			seen[n.key+"\x00"+n.col] = true
			typ, ok := have[n.col]
			if !ok {
				if !seen[n.col] {
					problems = append(problems, fmt.Sprintf("model %s: %s names column %q, which table %s.%s does not have", m.Name, n.key, n.col, db, table))
				}
				seen[n.col] = true
				continue
			}
			if !n.role.accepts(typ) {
				problems = append(problems, fmt.Sprintf("model %s: %s names column %q of table %s.%s, which is %s; want %s",
					m.Name, n.key, n.col, db, table, typ, n.role.want()))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// checkCluster reports a model on a cluster (models[].cluster) whose
// shards mlwatch cannot reach, or a shard that lacks a table the
// detectors read there: the local table (shadow, performance) and, for
// a performance detector, the labels table (as each shard names it).
func checkCluster(ctx context.Context, q store.Store, cfg *configs.Config, m *configs.Model) string {
	ss, ok := q.(interface {
		Shards(context.Context, string) ([]store.Shard, error)
	})
	if !ok {
		return "" // a store of tests; configs.Load refuses a cluster without a server
	}
	shards, err := ss.Shards(ctx, m.Cluster)
	if err != nil {
		return fmt.Sprintf("model %s: %v", m.Name, err)
	}
	type shardTable struct {
		field, hint string
		t           store.Table
	}
	need := []shardTable{{"local_table", fmt.Sprintf("mlwatch schema apply --cluster %s --predictions creates <table>_local on every node", m.Cluster),
		store.ParseTable(m.LocalTable).In(store.ParseTable(m.Table).Database).In(cfg.ClickHouse.Database)}}
	if m.Labels != nil && m.Labels.Table != "" && readsLabels(cfg, m.Name) {
		need = append(need, shardTable{"labels.table", "each shard joins its predictions to the labels there: a Distributed table over the labels",
			store.ParseTable(m.LabelsTable()).In(cfg.ClickHouse.Database)})
	}
	for _, n := range need {
		var missing []string
		for _, sh := range shards {
			res, err := sh.DB.Query(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", n.t.Database, n.t.Name)
			if err != nil {
				return fmt.Sprintf("model %s: cluster %s shard %d (%s): %v", m.Name, m.Cluster, sh.Num, sh.Addr, err)
			}
			if store.Int(res.Rows[0][0]) == 0 {
				missing = append(missing, fmt.Sprintf("%d (%s)", sh.Num, sh.Addr))
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("model %s: %s %s.%s does not exist on shard %s of cluster %s (%s)",
				m.Name, n.field, n.t.Database, n.t.Name, strings.Join(missing, ", "), m.Cluster, n.hint)
		}
	}
	return ""
}

// readsLabels reports whether an enabled performance detector watches
// the model.
func readsLabels(cfg *configs.Config, model string) bool {
	for _, d := range cfg.Detectors {
		if d.Model == model && d.Kind == configs.KindPerformance && !d.Disabled {
			return true
		}
	}
	return false
}

// checkRollup reports a rollup that detectors read but that was never
// created, naming the command that creates it.
func checkRollup(ctx context.Context, q store.Store, cfg *configs.Config, m *configs.Model) string {
	var readers []string
	for _, d := range cfg.Detectors {
		if d.Model == m.Name && d.Source == configs.SourceRollup && !d.Disabled {
			readers = append(readers, d.Name)
		}
	}
	if len(readers) == 0 {
		return ""
	}
	t := store.ParseTable(m.Rollup.Table).In(store.ParseTable(m.Table).Database).In(cfg.ClickHouse.Database)
	db, table := t.Database, t.Name
	res, err := q.Query(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name IN (?, ?)", db, table, table+"_features")
	if err != nil {
		return fmt.Sprintf("model %s: read tables of %s: %v", m.Name, db, err)
	}
	if store.Int(res.Rows[0][0]) < 2 {
		return fmt.Sprintf("model %s: detectors %s read rollup %s.%s, which does not exist (mlwatch schema apply --rollups --backfill creates and fills it)",
			m.Name, strings.Join(readers, ", "), db, table)
	}
	return ""
}

// columnRole is what a configured column is used as, and so which types
// the detectors' SQL reads correctly.
type columnRole int

const (
	// roleTime: the row's time (ts, deployed_at): compared with DateTime
	// bounds. Epoch seconds in an integer column would be compared as
	// numbers and misread (freshness once reported "106751d old").
	roleTime columnRole = iota
	// roleDecision: 1 = blocked; integers or Bool, NULL allowed.
	roleDecision
	// roleNumber: a score or a feature value.
	roleNumber
	// roleLabel: compared with a configured string (model, role) or
	// grouped as one (request_id).
	roleLabel
	// roleText: read through toString (slices, model_version,
	// expectation columns): anything but compound values.
	roleText
	// roleNames and roleValues: the parallel arrays of the arrays layout.
	roleNames
	roleValues
)

var roleWant = map[columnRole]string{
	roleTime:     "DateTime or DateTime64 (for epoch seconds add a column `ts_dt DateTime ALIAS toDateTime(ts)` and name it)",
	roleDecision: "an integer type (UInt8, Int32, ...) or Bool, Nullable allowed",
	roleNumber:   "a numeric type (Float32, Float64, an integer, Decimal), Nullable allowed",
	roleLabel:    "String, FixedString, LowCardinality(String) or Enum",
	roleText:     "a type toString renders (not Array, Tuple, Map or an aggregate state)",
	roleNames:    "Array(String) (or Array(LowCardinality(String)))",
	roleValues:   "Array(Float32|Float64) or Array(Nullable(Float32|Float64))",
}

func (r columnRole) want() string { return roleWant[r] }

// accepts reports whether a column of ClickHouse type typ (as
// system.columns writes it) can serve in the role.
func (r columnRole) accepts(typ string) bool {
	switch r {
	case roleTime:
		return isTime(typ)
	case roleDecision:
		t := unwrap(typ, "Nullable")
		return isInteger(t) || t == "Bool"
	case roleNumber:
		t := unwrap(typ, "Nullable")
		return isInteger(t) || t == "Float32" || t == "Float64" || strings.HasPrefix(t, "Decimal")
	case roleLabel:
		return isString(unwrap(unwrap(unwrap(typ, "LowCardinality"), "Nullable"), "LowCardinality"))
	case roleText:
		for _, p := range []string{"Array(", "Tuple(", "Map(", "Nested(", "AggregateFunction(", "SimpleAggregateFunction(", "Object("} {
			if strings.HasPrefix(typ, p) {
				return false
			}
		}
		return true
	case roleNames:
		t, ok := cutWrap(typ, "Array")
		return ok && isString(unwrap(t, "LowCardinality"))
	case roleValues:
		t, ok := cutWrap(typ, "Array")
		t = unwrap(t, "Nullable")
		return ok && (t == "Float32" || t == "Float64")
	}
	return false
}

// cutWrap returns the inside of "Name(inside)".
func cutWrap(typ, name string) (string, bool) {
	if strings.HasPrefix(typ, name+"(") && strings.HasSuffix(typ, ")") {
		return typ[len(name)+1 : len(typ)-1], true
	}
	return typ, false
}

// unwrap strips one "Name(...)" around typ, if there is one.
func unwrap(typ, name string) string {
	t, _ := cutWrap(typ, name)
	return t
}

func isTime(typ string) bool {
	return typ == "DateTime" || strings.HasPrefix(typ, "DateTime(") || strings.HasPrefix(typ, "DateTime64(")
}

func isInteger(typ string) bool {
	switch typ {
	case "UInt8", "UInt16", "UInt32", "UInt64", "UInt128", "UInt256", "Int8", "Int16", "Int32", "Int64", "Int128", "Int256":
		return true
	}
	return false
}

func isString(typ string) bool {
	return typ == "String" || strings.HasPrefix(typ, "FixedString(") || strings.HasPrefix(typ, "Enum8(") || strings.HasPrefix(typ, "Enum16(")
}

// ModelRowWarnings names each model whose selector (model column = its
// model_value) matches no row in the day before now: most often a typo in
// model_value, which would otherwise show only as a freshness page. These
// are warnings, not refusals: a new model may not have logged yet. Each
// lists the values the column does hold, to make the typo plain. A model
// whose check cannot run (ClickHouse slow) gets no warning.
func ModelRowWarnings(ctx context.Context, q store.Store, cfg *configs.Config, now time.Time) []string {
	var out []string
	for _, m := range cfg.Models {
		if m.ModelValue == "" || m.Columns.Model == "" {
			continue
		}
		t := store.ParseTable(m.Table).In(cfg.ClickHouse.Database)
		db, table := t.Database, t.Name
		from := store.MustIdent(db) + "." + store.MustIdent(table)
		ts, col := store.MustIdent(m.Columns.TS), store.MustIdent(m.Columns.Model)
		since := now.Add(-24 * time.Hour)
		res, err := q.Query(ctx, "SELECT 1 FROM "+from+" WHERE "+ts+" >= ? AND "+ts+" <= ? AND "+col+" = ? LIMIT 1", since, now, m.ModelValue)
		if err != nil || len(res.Rows) > 0 {
			continue
		}
		w := fmt.Sprintf("model %s: no rows with %s = '%s' in the last day (before %s)", m.Name, m.Columns.Model, m.ModelValue, now.UTC().Format(time.RFC3339))
		seen, err := q.Query(ctx, "SELECT toString("+col+") AS v, count() AS n FROM "+from+" WHERE "+ts+" >= ? AND "+ts+" <= ? GROUP BY v ORDER BY n DESC, v LIMIT 5", since, now)
		switch {
		case err != nil:
		case len(seen.Rows) == 0:
			w += fmt.Sprintf("; table %s.%s has no rows at all in that day", db, table)
		default:
			vals := make([]string, len(seen.Rows))
			for i, r := range seen.Rows {
				vals[i] = fmt.Sprintf("'%s' (%d rows)", store.Str(r[0]), store.Int(r[1]))
			}
			w += fmt.Sprintf("; %s holds %s: check models[].model_value", m.Columns.Model, strings.Join(vals, ", "))
		}
		out = append(out, w)
	}
	return out
}
