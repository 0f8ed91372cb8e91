package monitor

import (
	"context"
	"fmt"
	"strings"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// CheckColumns verifies, against system.columns, that each model's table
// exists and has every column the config names, so a typo is reported at
// start-up (and reload) by name instead of as a failing detector later.
func CheckColumns(ctx context.Context, q store.Store, cfg *configs.Config) error {
	var problems []string
	for _, m := range cfg.Models {
		db, table := cfg.ClickHouse.Database, m.Table
		if i := strings.IndexByte(m.Table, '.'); i > 0 {
			db, table = m.Table[:i], m.Table[i+1:]
		}
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
		need := []struct{ key, col string }{
			{"columns.ts", m.Columns.TS}, {"columns.score", m.Columns.Score}, {"columns.decision", m.Columns.Decision},
			{"columns.model_version", m.Columns.ModelVersion},
		}
		if m.ModelValue != "" && m.Columns.Model != "" {
			need = append(need, struct{ key, col string }{"columns.model", m.Columns.Model})
		}
		if m.Columns.DeployedAt != "" {
			need = append(need, struct{ key, col string }{"columns.deployed_at", m.Columns.DeployedAt})
		}
		switch m.Shadow.Mode {
		case configs.ShadowRows:
			need = append(need, struct{ key, col string }{"columns.role", m.Columns.Role}, struct{ key, col string }{"columns.request_id", m.Columns.RequestID})
		case configs.ShadowColumns:
			need = append(need, struct{ key, col string }{"shadow.score_column", m.Shadow.ScoreColumn}, struct{ key, col string }{"shadow.decision_column", m.Shadow.DecisionColumn})
		}
		for _, s := range m.Slices {
			need = append(need, struct{ key, col string }{"slices", s})
		}
		if m.Features.Layout == configs.LayoutArrays {
			need = append(need, struct{ key, col string }{"features.names_column", m.Features.NamesColumn}, struct{ key, col string }{"features.values_column", m.Features.ValuesColumn})
		} else {
			for _, f := range m.Features.Names {
				need = append(need, struct{ key, col string }{"features.names", f})
			}
		}
		for _, d := range cfg.Detectors {
			if d.Model != m.Name {
				continue
			}
			if d.Slices != nil {
				for _, s := range *d.Slices {
					need = append(need, struct{ key, col string }{"detector " + d.Name + " slices", s})
				}
			}
			if d.Expectation != nil {
				for _, mt := range d.Expectation.Match {
					need = append(need, struct{ key, col string }{"detector " + d.Name + " expectation.match", mt.Column})
				}
			}
		}
		if m.Rollup != nil {
			if p := checkRollup(ctx, q, cfg, &m); p != "" {
				problems = append(problems, p)
			}
		}
		seen := map[string]bool{}
		for _, n := range need {
			if n.col == "" || seen[n.col] {
				continue
			}
			seen[n.col] = true
			if _, ok := have[n.col]; !ok {
				problems = append(problems, fmt.Sprintf("model %s: %s names column %q, which table %s.%s does not have", m.Name, n.key, n.col, db, table))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
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
	db, table := cfg.ClickHouse.Database, m.Rollup.Table
	if i := strings.IndexByte(table, '.'); i > 0 {
		db, table = table[:i], table[i+1:]
	} else if j := strings.IndexByte(m.Table, '.'); j > 0 {
		db = m.Table[:j]
	}
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
