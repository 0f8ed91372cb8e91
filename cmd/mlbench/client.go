package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The client-side baseline: what a team without a monitoring tool writes.
// It streams the windows' rows out of ClickHouse with clickhouse-go (typed
// scans, no []any decoding) and computes the cycle's headline figures in
// Go: block rate per country and window, null and default-fill rate of
// every feature, PSI of the score and of every feature against the
// baseline's deciles, and the production/shadow disagreement rate.

// clientFigures are the baseline's results, printed as JSON so the
// parent can check them and count them.
type clientFigures struct {
	Rows         int                `json:"rows"`
	Countries    int                `json:"countries"`
	Features     int                `json:"features"`
	BlockRate    float64            `json:"block_rate"`
	ScorePSI     float64            `json:"score_psi"`
	MaxNullRate  float64            `json:"max_null_rate"`
	MaxFeatPSI   float64            `json:"max_feature_psi"`
	Disagreement float64            `json:"disagreement"`
	NullRates    map[string]float64 `json:"null_rates"`
	Seconds      float64            `json:"seconds"`
}

// clientRun is one client baseline: address, table and the windows (the
// first is the current one).
type clientRun struct {
	addr, table, model string
	windows            [][2]time.Time
}

func (c clientRun) run(ctx context.Context, out io.Writer) error {
	start := time.Now()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{c.addr},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Minute,
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return fmt.Errorf("client: open: %w", err)
	}
	defer conn.Close()
	var conds []string
	for _, w := range c.windows {
		conds = append(conds, fmt.Sprintf("(ts >= toDateTime(%d) AND ts < toDateTime(%d))", w[0].Unix(), w[1].Unix()))
	}
	q := "SELECT ts, request_id, role, score, decision, country, feature_names, feature_values FROM " + c.table +
		" WHERE model = ? AND (" + strings.Join(conds, " OR ") + ")"
	rows, err := conn.Query(ctx, q, c.model)
	if err != nil {
		return fmt.Errorf("client: query: %w", err)
	}
	defer rows.Close()

	nw := len(c.windows)
	type cnt struct{ n, x float64 }
	blocks := make([]map[string]*cnt, nw)
	scores := make([][]float64, nw)
	feats := make([]map[string][]float64, nw) // non-null values
	nulls := make([]map[string]float64, nw)
	fills := make([]map[string]float64, nw)
	prodRows := make([]float64, nw)
	for i := range blocks {
		blocks[i], feats[i], nulls[i], fills[i] = map[string]*cnt{}, map[string][]float64{}, map[string]float64{}, map[string]float64{}
	}
	type pair struct {
		w      int
		pd, sd int8 // -1 unseen
	}
	pairs := map[string]*pair{}
	var (
		ts       time.Time
		id, role string
		score    float32
		decision uint8
		country  string
		names    []string
		values   []*float64
		n        int
	)
	for rows.Next() {
		if err := rows.Scan(&ts, &id, &role, &score, &decision, &country, &names, &values); err != nil {
			return fmt.Errorf("client: scan: %w", err)
		}
		n++
		w := -1
		for i, win := range c.windows {
			if !ts.Before(win[0]) && ts.Before(win[1]) {
				w = i
				break
			}
		}
		if w < 0 {
			continue
		}
		p := pairs[id]
		if p == nil {
			p = &pair{w: w, pd: -1, sd: -1}
			pairs[id] = p
		}
		if role != "production" {
			p.sd = int8(decision)
			continue
		}
		p.pd = int8(decision)
		b := blocks[w][country]
		if b == nil {
			b = &cnt{}
			blocks[w][country] = b
		}
		b.n++
		b.x += float64(decision)
		scores[w] = append(scores[w], float64(score))
		prodRows[w]++
		for i, name := range names {
			if i >= len(values) || values[i] == nil || math.IsNaN(*values[i]) {
				nulls[w][name]++
				continue
			}
			if *values[i] == 0 {
				fills[w][name]++
			}
			feats[w][name] = append(feats[w][name], *values[i])
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("client: rows: %w", err)
	}

	f := clientFigures{Rows: n, NullRates: map[string]float64{}}
	// Block rate per country (current window) and overall.
	var tn, tx float64
	for _, b := range blocks[0] {
		tn += b.n
		tx += b.x
	}
	f.Countries = len(blocks[0])
	if tn > 0 {
		f.BlockRate = tx / tn
	}
	// Score PSI against the pooled baseline's deciles.
	var base []float64
	for w := 1; w < nw; w++ {
		base = append(base, scores[w]...)
	}
	f.ScorePSI = psi(scores[0], base)
	// Features: null rate, fill rate, PSI.
	for name, vals := range feats[0] {
		f.Features++
		nr := nulls[0][name] / prodRows[0]
		f.NullRates[name] = nr
		f.MaxNullRate = math.Max(f.MaxNullRate, nr)
		var b []float64
		for w := 1; w < nw; w++ {
			b = append(b, feats[w][name]...)
		}
		f.MaxFeatPSI = math.Max(f.MaxFeatPSI, psi(vals, b))
	}
	// Disagreement of paired decisions in the current window.
	var np, nd float64
	for _, p := range pairs {
		if p.w == 0 && p.pd >= 0 && p.sd >= 0 {
			np++
			if p.pd != p.sd {
				nd++
			}
		}
	}
	if np > 0 {
		f.Disagreement = nd / np
	}
	f.Seconds = time.Since(start).Seconds()
	return json.NewEncoder(out).Encode(f)
}

// psi is the population stability index of cur against base over base's
// deciles (ties kept whole).
func psi(cur, base []float64) float64 {
	if len(cur) == 0 || len(base) == 0 {
		return math.NaN()
	}
	sort.Float64s(base)
	var edges []float64
	for i := 1; i < 10; i++ {
		e := base[i*len(base)/10]
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	count := func(xs []float64) []float64 {
		out := make([]float64, len(edges)+1)
		for _, x := range xs {
			out[sort.SearchFloat64s(edges, x)]++
		}
		return out
	}
	c, b := count(cur), count(base)
	var s float64
	for i := range c {
		pc := math.Max(c[i]/float64(len(cur)), 1e-6)
		pb := math.Max(b[i]/float64(len(base)), 1e-6)
		s += (pc - pb) * math.Log(pc/pb)
	}
	return s
}
