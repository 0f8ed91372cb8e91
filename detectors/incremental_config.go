package detectors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// IncrementalFor is the incremental evaluation cfg asks for
// (global.incremental, detectors' incremental), its partials in mlwatch's
// tables (store.Tables.Partials), old partials dropped by Clean; nil when
// no enabled detector of cfg is evaluated incrementally.
func IncrementalFor(db store.Store, cfg *configs.Config) (*Incremental, error) {
	var ds []*configs.Detector
	for i := range cfg.Detectors {
		if d := &cfg.Detectors[i]; !d.Disabled && cfg.IncrementalOn(d) {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return nil, nil
	}
	t := store.Tables{Database: cfg.State.Database, Prefix: cfg.State.TablePrefix}
	opt := IncrementalOptions{Partials: t.Partials(), Keep: keepFor(ds)}
	if g := cfg.Global.Incremental; g != nil {
		opt.Bucket, opt.LateMargin, opt.Recheck, opt.RecheckEvery = g.Bucket.D(), g.LateMargin.D(), g.Recheck.D(), g.RecheckEvery.D()
	}
	return NewIncremental(db, opt)
}

// keepFor is IncrementalOptions.Keep for detectors ds: a day before the
// oldest window any of them reads at now.
func keepFor(ds []*configs.Detector) func(now time.Time) time.Time {
	return func(now time.Time) time.Time {
		oldest := now
		for _, d := range ds {
			for _, sp := range newWindows(d, now).all() {
				if sp.from.Before(oldest) {
					oldest = sp.from
				}
			}
		}
		return oldest.Add(-24 * time.Hour)
	}
}

// cleanEvery is how often Clean looks for old partials.
const cleanEvery = time.Hour

// Clean drops, at most every hour and only with Keep set, the day
// partitions of the partials and fills tables that end before Keep(now):
// buckets no window reads any more. It returns the partitions dropped.
func (c *Incremental) Clean(ctx context.Context) (int, error) {
	if c.opt.Keep == nil {
		return 0, nil
	}
	now := c.opt.Now()
	c.mu.Lock()
	due := c.cleaned.IsZero() || now.Sub(c.cleaned) >= cleanEvery
	if due {
		c.cleaned = now
	}
	c.mu.Unlock()
	if !due {
		return 0, nil
	}
	// Partitions are toYYYYMMDD(bucket): a day wholly before the cutoff's
	// day is dropped.
	cutoff, err := strconv.ParseUint(c.opt.Keep(now).UTC().Format("20060102"), 10, 32)
	if err != nil {
		return 0, err
	}
	dropped := 0
	for _, t := range []store.Table{c.opt.Partials, c.fillsTable()} {
		dbExpr, args := "currentDatabase()", []any{t.Name}
		if t.Database != "" {
			dbExpr, args = "?", []any{t.Database, t.Name}
		}
		res, err := c.db.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = "+dbExpr+" AND table = ? AND active", args...)
		if err != nil {
			return dropped, fmt.Errorf("partitions of %s: %w", t.Name, err)
		}
		for _, row := range res.Rows {
			p := store.Str(row[0])
			day, err := strconv.ParseUint(p, 10, 32)
			if err != nil || day >= cutoff {
				continue
			}
			if err := c.db.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %d", t.Quoted(), day)); err != nil {
				return dropped, fmt.Errorf("drop partition %d of %s: %w", day, t.Name, err)
			}
			dropped++
		}
	}
	return dropped, nil
}
