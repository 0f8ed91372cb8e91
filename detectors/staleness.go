package detectors

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// staleness reports when the newest model version serving production in
// the window was deployed (the deploy-time column) or first seen longer
// than max_age ago: nobody shipped a fresh model (model_staleness).
type staleness struct {
	d   *Detector
	src source
	p   *configs.StalenessParams
}

// MetricVersionAge is the serving version's age in seconds.
const MetricVersionAge = "version_age_seconds"

func newStaleness(d *Detector) (kind, error) {
	if d.cfg.Staleness == nil {
		return nil, fmt.Errorf("staleness parameters missing (load the config with configs.Load)")
	}
	return &staleness{d: d, src: newSource(d), p: d.cfg.Staleness}, nil
}

// The versions are read over [window start - max_age, at): a version first
// seen at the start of that range is at least max_age old, which is all
// the decision needs, so older partitions are never scanned.
func (s *staleness) query(w windows) *sqlText {
	src := s.src
	c := src.m.Columns
	q := &sqlText{}
	q.add("SELECT toString(" + src.col(c.ModelVersion) + ") AS version, min(" + src.ts() + ") AS first, ")
	if c.DeployedAt != "" {
		q.add("max(" + src.col(c.DeployedAt) + ") AS deployed, ")
	} else {
		q.add("min(" + src.ts() + ") AS deployed, ")
	}
	q.add("countIf("+src.ts()+" >= ?) AS n FROM "+src.table+" WHERE ", w.cur.from)
	src.where(q, []span{{w.cur.from.Add(-s.p.MaxAge.D()), w.cur.to}}, false)
	q.add(" GROUP BY version ORDER BY version")
	return q
}

func (s *staleness) evaluate(res *store.Result, r *run) error {
	c, err := cols(res, "version", "first", "deployed", "n")
	if err != nil {
		return err
	}
	var version string
	var newest, first time.Time
	var serving []string
	var n float64
	for _, row := range res.Rows {
		if store.Float(row[c[3]]) <= 0 {
			continue
		}
		v, d := store.Str(row[c[0]]), store.Time(row[c[2]])
		serving = append(serving, v)
		if version == "" || d.After(newest) {
			version, newest, first, n = v, d, store.Time(row[c[1]]), store.Float(row[c[3]])
		}
	}
	if version == "" {
		r.skipped++
		return nil
	}
	age := r.w.at.Sub(newest)
	h := newHyp(MetricVersionAge, map[string]string{}, "", ClassModelStaleness)
	h.Value, h.Baseline, h.BaselineHigh = age.Seconds(), s.p.MaxAge.D().Seconds(), s.p.MaxAge.D().Seconds()
	h.effect = h.Value - h.Baseline
	h.NCurrent = uint64(n)
	h.gate = age > s.p.MaxAge.D()
	how := "deployed"
	if s.src.m.Columns.DeployedAt == "" {
		how = "first seen"
	}
	atLeast := ""
	if !first.After(r.w.cur.from.Add(-s.p.MaxAge.D())) && how == "first seen" {
		atLeast = "at least "
	}
	h.summary = fmt.Sprintf("serving model version %s was %s %s%s ago (max age %s; serving: %s)",
		version, how, atLeast, days(age), s.p.MaxAge, strings.Join(serving, ", "))
	r.add(h)
	return nil
}

func days(d time.Duration) string {
	return fmt.Sprintf("%.1fd", math.Floor(d.Hours()/24*10)/10)
}
