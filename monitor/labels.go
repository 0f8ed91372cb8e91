package monitor

import (
	"context"
	"fmt"
	"strings"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// LabelWarnings says, for each model whose labels live in a table of their
// own, whether that table is missing, unreadable or empty. Labels often
// live elsewhere and arrive late, so none of this stops the daemon or the
// other detectors: it is logged at start-up (and reload) and printed by
// eval, and the model's performance detector waits (a missing table it
// never read is not a monitoring failure; one it read before is).
func LabelWarnings(ctx context.Context, q store.Store, cfg *configs.Config) []string {
	var out []string
	for i := range cfg.Models {
		m := &cfg.Models[i]
		if m.Labels == nil || m.Labels.Table == "" {
			continue
		}
		name := m.LabelsTable()
		db, table := cfg.ClickHouse.Database, name
		if j := strings.IndexByte(name, '.'); j > 0 {
			db, table = name[:j], name[j+1:]
		}
		res, err := q.Query(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, table)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("model %s: labels table %s.%s could not be checked (%v): performance figures may be missing", m.Name, db, table, err))
			continue
		case len(res.Rows) == 0 || store.Int(res.Rows[0][0]) == 0:
			out = append(out, fmt.Sprintf("model %s: labels table %s.%s does not exist: its performance detector waits for it and guardrails decide on block rates alone (mlwatch schema apply --predictions creates it); the other detectors run", m.Name, db, table))
			continue
		}
		from := store.MustIdent(db) + "." + store.MustIdent(table)
		res, err = q.Query(ctx, "SELECT count() FROM (SELECT 1 FROM "+from+" LIMIT 1)")
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("model %s: labels table %s.%s cannot be read (%v): its performance detector will fail until it can", m.Name, db, table, err))
		case len(res.Rows) == 0 || store.Int(res.Rows[0][0]) == 0:
			out = append(out, fmt.Sprintf("model %s: labels table %s.%s is empty: no performance figures until labels arrive (they count once a prediction is %s old)", m.Name, db, table, configs.FormatDuration(m.Labels.Maturity.D())))
		}
	}
	return out
}
