package detectors

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Rollout is a change of the version a model serves in one role, seen
// inside the windows: the fact that explains the simultaneous moves of
// that model's figures (a new production version that blocks three times
// as much moves the block rate everywhere at once).
type Rollout struct {
	Model string `json:"model"`
	Role  string `json:"role"` // production or shadow
	From  string `json:"from"` // the version that served most rows before
	To    string `json:"to"`
	// At is the start of the first bucket from which To carries at least
	// half of its final share without falling back below it.
	At time.Time `json:"at"`
	// Share is To's share of the role's rows in the last buckets.
	Share float64 `json:"share"`
}

// String renders the rollout for a summary: "production switched v7 →
// v8 at 10:02 UTC; 94% of rows now v8".
func (r Rollout) String() string {
	return fmt.Sprintf("%s switched %s → %s at %s UTC; %.0f%% of rows now %s",
		r.Role, r.From, r.To, r.At.UTC().Format("15:04"), 100*r.Share, r.To)
}

// VersionShare is one version's share of a role's rows at the end of the
// probed span.
type VersionShare struct {
	Role    string  `json:"role"`
	Version string  `json:"version"`
	Share   float64 `json:"share"`
	Rows    uint64  `json:"rows"`
}

// Versions is what one probe saw of a model's versions.
type Versions struct {
	Model    string         `json:"model"`
	At       time.Time      `json:"at"`
	Current  []VersionShare `json:"current"`
	Rollouts []Rollout      `json:"rollouts"`
}

// Thresholds of a rollout: the new version gains at least minGain of the
// role's rows between the early half of the span and its last eighth, and
// ends with at least minShare of them.
const (
	rolloutMinGain  = 0.2
	rolloutMinShare = 0.2
)

// VersionQuery renders the probe of a model's versions over [at-span, at):
// rows per role, version and time bucket (span/120, at least a minute).
// It reads only the ts, model, role and model_version columns, inside the
// primary key's range: one cheap query per model and cycle.
func VersionQuery(m *configs.Model, at time.Time, lookback time.Duration) (string, error) {
	s := source{m: m, table: store.ParseTable(m.Table).Quoted()}
	bucket := versionBucket(lookback)
	q := &sqlText{}
	role := "?"
	var roleArgs []any
	if m.Shadow.Mode == configs.ShadowRows {
		role = "toString(" + s.col(m.Columns.Role) + ")"
	} else {
		roleArgs = []any{m.Shadow.ProductionRole}
		if roleArgs[0] == "" {
			roleArgs[0] = "production"
		}
	}
	q.add("SELECT "+role+" AS role, ", roleArgs...)
	q.add("toString(" + s.col(m.Columns.ModelVersion) + ") AS version, ")
	q.add("intDiv(toUInt32("+s.ts()+"), ?) * ? AS bucket, count() AS n\nFROM "+s.table, uint64(bucket.Seconds()), uint64(bucket.Seconds()))
	at = at.UTC().Truncate(time.Second)
	s.filter(q, []span{{at.Add(-lookback), at}}, true)
	q.add("\nGROUP BY role, version, bucket\nORDER BY role, version, bucket")
	return q.bind()
}

func versionBucket(span time.Duration) time.Duration {
	return max(time.Minute, (span / 120).Truncate(time.Minute))
}

// ProbeVersions runs VersionQuery and reads the rollouts from its rows.
func ProbeVersions(ctx context.Context, q Querier, m *configs.Model, at time.Time, span time.Duration) (Versions, error) {
	sql, err := VersionQuery(m, at, span)
	if err != nil {
		return Versions{}, fmt.Errorf("versions of %s: %w", m.Name, err)
	}
	res, err := q.Query(ctx, sql)
	if err != nil {
		return Versions{}, fmt.Errorf("versions of %s: query: %w", m.Name, err)
	}
	return ReadVersions(res, m.Name, at, span)
}

// ReadVersions decides, from the probe's rows, each role's current
// versions and its rollouts: a version whose share of the role's rows
// rose by rolloutMinGain from the span's first half to its last eighth,
// to at least rolloutMinShare, took over from the version that served
// most rows in the first half.
func ReadVersions(res *store.Result, model string, at time.Time, span time.Duration) (Versions, error) {
	c, err := cols(res, "role", "version", "bucket", "n")
	if err != nil {
		return Versions{}, err
	}
	at = at.UTC().Truncate(time.Second)
	from := at.Add(-span)
	bucket := versionBucket(span)
	nb := int(math.Ceil(float64(span) / float64(bucket)))
	type series struct{ n []float64 }
	byRole := map[string]map[string]*series{}
	for _, row := range res.Rows {
		role, version := store.Str(row[c[0]]), store.Str(row[c[1]])
		t := time.Unix(store.Int(row[c[2]]), 0).UTC()
		i := int(t.Sub(from.Truncate(bucket)) / bucket)
		if i < 0 || i >= nb+1 {
			continue
		}
		if byRole[role] == nil {
			byRole[role] = map[string]*series{}
		}
		s := byRole[role][version]
		if s == nil {
			s = &series{n: make([]float64, nb+1)}
			byRole[role][version] = s
		}
		s.n[i] += store.Float(row[c[3]])
	}
	out := Versions{Model: model, At: at}
	roles := make([]string, 0, len(byRole))
	for r := range byRole {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, role := range roles {
		vs := byRole[role]
		names := make([]string, 0, len(vs))
		for v := range vs {
			names = append(names, v)
		}
		sort.Strings(names)
		total := make([]float64, nb+1)
		for _, v := range names {
			for i, x := range vs[v].n {
				total[i] += x
			}
		}
		sum := func(v string, a, b int) (float64, float64) {
			var x, n float64
			for i := a; i < b && i < len(total); i++ {
				x += vs[v].n[i]
				n += total[i]
			}
			return x, n
		}
		half, late := (nb+1)/2, nb+1-max(1, (nb+1)/8)
		var lateRows float64
		for _, v := range names {
			x, n := sum(v, late, nb+1)
			lateRows = n
			if n > 0 && x > 0 {
				out.Current = append(out.Current, VersionShare{Role: role, Version: v, Share: x / n, Rows: uint64(x)})
			}
		}
		// The previous version: most rows in the first half.
		prev, prevRows := "", 0.0
		for _, v := range names {
			if x, _ := sum(v, 0, half); x > prevRows {
				prev, prevRows = v, x
			}
		}
		if prev == "" || lateRows == 0 {
			continue
		}
		for _, v := range names {
			if v == prev {
				continue
			}
			xe, ne := sum(v, 0, half)
			xl, nl := sum(v, late, nb+1)
			shareLate := xl / nl
			if shareLate < rolloutMinShare || shareLate-xe/ne < rolloutMinGain {
				continue
			}
			// The switch: the first bucket from which v holds at least half
			// its final share to the end.
			i := nb + 1
			for i > 0 && (total[i-1] == 0 || vs[v].n[i-1]/total[i-1] >= shareLate/2) {
				i--
			}
			for i < nb && total[i] == 0 {
				i++
			}
			i = min(i, nb)
			at := from.Truncate(bucket).Add(time.Duration(i) * bucket)
			if at.Before(from) {
				at = from
			}
			out.Rollouts = append(out.Rollouts, Rollout{Model: model, Role: role, From: prev, To: v, At: at, Share: shareLate})
		}
	}
	return out, nil
}

// MarkRollouts gives the findings of res whose current window holds a
// rollout of their model that rollout: Finding.Rollout is set (the first
// one, production first) and the summary says so. It returns how many
// findings it marked.
func MarkRollouts(res *Result, rs []Rollout) int {
	marked := 0
	for i := range res.Findings {
		f := &res.Findings[i]
		for j := range rs {
			r := rs[j]
			if r.Model != f.Model || r.At.Before(f.WindowStart) || !r.At.Before(f.WindowEnd) {
				continue
			}
			if f.Rollout == nil || (f.Rollout.Role != "production" && r.Role == "production") {
				f.Rollout = &r
			}
		}
		if f.Rollout != nil {
			f.Summary += "; " + f.Rollout.String()
			marked++
		}
	}
	return marked
}
