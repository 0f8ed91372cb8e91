package detectors

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// VersionChange is a switch of the version that serves most of a role's
// rows, as a chart marks it: rollouts and rollbacks alike, anywhere in
// the chart's range (a Rollout is only the switch a probe of the recent
// windows sees).
type VersionChange struct {
	Role string    `json:"role"`
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"` // start of the first bucket To led
}

// versionLead is the share a version needs to take the lead from the one
// serving now: above half, with room, so a 50/50 canary split does not
// flap.
const versionLead = 0.6

// VersionChanges probes a model's versions over [to-span, to) with the
// version probe (VersionQuery: four columns, buckets of span/120) and
// returns each role's switches of its leading version, oldest first.
func VersionChanges(ctx context.Context, q Querier, m *configs.Model, to time.Time, span time.Duration) ([]VersionChange, error) {
	if m.Columns.ModelVersion == "" {
		return nil, nil
	}
	sql, err := VersionQuery(m, to, span)
	if err != nil {
		return nil, fmt.Errorf("version changes of %s: %w", m.Name, err)
	}
	res, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("version changes of %s: query: %w", m.Name, err)
	}
	return readVersionChanges(res)
}

// readVersionChanges walks each role's buckets in time order and records
// a change when another version holds versionLead of a bucket's rows.
func readVersionChanges(res *store.Result) ([]VersionChange, error) {
	c, err := cols(res, "role", "version", "bucket", "n")
	if err != nil {
		return nil, err
	}
	type key struct {
		role   string
		bucket int64
	}
	rows := map[key]map[string]float64{}
	for _, row := range res.Rows {
		k := key{store.Str(row[c[0]]), store.Int(row[c[2]])}
		if rows[k] == nil {
			rows[k] = map[string]float64{}
		}
		rows[k][store.Str(row[c[1]])] += store.Float(row[c[3]])
	}
	keys := make([]key, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].role != keys[j].role {
			return keys[i].role < keys[j].role
		}
		return keys[i].bucket < keys[j].bucket
	})
	var out []VersionChange
	lead := map[string]string{}
	for _, k := range keys {
		top, topN, total := "", 0.0, 0.0
		names := make([]string, 0, len(rows[k]))
		for v := range rows[k] {
			names = append(names, v)
		}
		sort.Strings(names)
		for _, v := range names {
			n := rows[k][v]
			total += n
			if n > topN {
				top, topN = v, n
			}
		}
		cur, seen := lead[k.role]
		switch {
		case !seen:
			lead[k.role] = top
		case top != cur && topN >= versionLead*total:
			out = append(out, VersionChange{Role: k.role, From: cur, To: top, At: time.Unix(k.bucket, 0).UTC()})
			lead[k.role] = top
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}
