// Command mlbench measures mlwatch's evaluation cycle against what
// ClickHouse can do and against a client that pulls the rows (make bench).
//
// For each size it fills a table on a ClickHouse server with generated
// traffic (8 days, the rate chosen for the size; kept between runs), then
// runs the full cycle of configs/example.yaml (every detector, both
// windows) reps times and prints, per size: the median cycle; the floor
// (the median of one query scanning the cycle's columns over the cycle's
// time ranges once); their ratio; rows and bytes read per cycle (the
// server's progress); the peak RSS of `mlwatch eval` doing the same cycle
// in server mode; the client baseline (streams the windows' rows into Go
// and computes the same headline figures) and its ratio to the cycle; and,
// with the model's minute rollup, the cycle that reads it.
//
// It is a command, not a testing.B benchmark: it needs a server of its own
// (scripts/bench.sh starts one), data that takes minutes to generate at
// the larger sizes, child processes to measure peak memory, and prints one
// table for docs/benchmarks.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/traffic"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// The generated span and the evaluation time: eight days from a Monday,
// evaluated on the second Monday at 15:00 UTC (a busy hour) so the
// seasonal baseline has its seven days.
var (
	genFrom = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	genTo   = genFrom.Add(8 * 24 * time.Hour)
	evalAt  = time.Date(2026, 11, 9, 15, 0, 0, 0, time.UTC)
)

// rowsPerRate is how many rows the 8 days hold per request/minute of rate
// (measured: rate 220 gives 4.96M rows).
const rowsPerRate = 22550

type options struct {
	addr, database, config, mlwatch  string
	sizes                            []int64
	reps                             int
	rollups, client, regen, fillOnly bool
	incremental, raw, reuse          bool
	meter                            *readMeter
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "client" {
		return clientCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("mlbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:19200", "ClickHouse server (native port) to fill and measure")
	fs.StringVar(&o.database, "database", "bench", "database for the generated tables")
	fs.StringVar(&o.config, "config", "configs/example.yaml", "config whose detectors make the cycle")
	fs.StringVar(&o.mlwatch, "mlwatch", "bin/mlwatch", "mlwatch binary, for the peak RSS of eval")
	sizes := fs.String("sizes", "1M,5M,10M", "table sizes in rows (K, M suffixes)")
	huge := fs.Bool("huge", false, "add the 100M size (generation takes ~20 min)")
	fs.IntVar(&o.reps, "reps", 5, "cycles (and floors) per size; medians are reported")
	fs.BoolVar(&o.rollups, "rollups", true, "create the minute rollup before generating and measure the cycle on it")
	fs.BoolVar(&o.client, "client", true, "run the client-side baseline")
	fs.BoolVar(&o.regen, "regen", false, "regenerate tables even when they hold the right rows")
	fs.BoolVar(&o.fillOnly, "fill-only", false, "generate (and roll up) the tables, measure nothing")
	fs.BoolVar(&o.incremental, "incremental", true, "measure the cold-start and steady-state cycles of incremental evaluation")
	fs.BoolVar(&o.reuse, "reuse", false, "measure a size's existing table whatever its row count (one made by hand, e.g. denser only where the cycle reads)")
	fs.BoolVar(&o.raw, "raw", true, "measure the raw cycle, its floor, eval's RSS and the client baseline (false: the incremental cycles only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := parseSize(s)
		if err != nil {
			fmt.Fprintf(stderr, "mlbench: --sizes: %v\n", err)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	if *huge {
		o.sizes = append(o.sizes, 100_000_000)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Addr: o.addr, QueryTimeout: 30 * time.Minute})
	if err != nil {
		fmt.Fprintf(stderr, "mlbench: %v\n", err)
		return 1
	}
	defer db.Close()
	o.meter = &readMeter{}
	db.AddHook(o.meter.hook)
	if err := db.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+store.MustIdent(o.database)); err != nil {
		fmt.Fprintf(stderr, "mlbench: %v\n", err)
		return 1
	}
	load0 := loadavg()
	var rows []row
	for _, n := range o.sizes {
		r, err := measure(ctx, db, o, n, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "mlbench: %s rows: %v\n", sizeLabel(n), err)
			return 1
		}
		rows = append(rows, r)
		printTable(stderr, rows) // progress
	}
	fmt.Fprintf(stdout, "mlbench: %s, cycle of %s evaluated at %s, median of %d; load average %s at the start, %s at the end (%d cores)\n\n",
		o.addr, o.config, evalAt.Format(time.RFC3339), o.reps, load0, loadavg(), runtime.NumCPU())
	printTable(stdout, rows)
	fmt.Fprintln(stdout)
	printIncremental(stdout, rows)
	return 0
}

// row is one size's measurements.
type row struct {
	label            string
	rows             int64
	cycle, floor     time.Duration
	read, bytes      uint64
	floorRead        uint64
	rss              int64 // KiB
	client           time.Duration
	clientRSS        int64
	rollup           time.Duration
	rollupRead       uint64
	perDetector      map[string]time.Duration
	perRollup        map[string]time.Duration
	perDetectorOrder []string
	inc              incResult
}

func measure(ctx context.Context, db *store.DB, o options, n int64, log io.Writer) (row, error) {
	r := row{label: sizeLabel(n), perDetector: map[string]time.Duration{}, perRollup: map[string]time.Duration{}}
	table := store.Table{Database: o.database, Name: "predictions_" + strings.ToLower(r.label)}
	cfg, text, err := benchConfig(o.config, table)
	if err != nil {
		return r, err
	}
	have, err := count(ctx, db, table)
	if err != nil || o.regen || (!(o.reuse && have > 0) && math.Abs(float64(have)-float64(n)) > 0.05*float64(n)) {
		src := store.Table{Database: o.database, Name: "predictions_10m"}
		if k := n / 10_000_000; n > 10_000_000 && n%10_000_000 == 0 && exists(ctx, db, src) {
			fmt.Fprintf(log, "mlbench: %s rows into %s as %d copies of %s\n", r.label, table, k, src)
			if err := replicate(ctx, db, src, table, int(k)); err != nil {
				return r, err
			}
		} else {
			fmt.Fprintf(log, "mlbench: generating %s rows into %s\n", r.label, table)
			if err := fill(ctx, db, cfg, table, n, o.rollups, log); err != nil {
				return r, err
			}
		}
		if have, err = count(ctx, db, table); err != nil {
			return r, err
		}
	}
	r.rows = have
	if l := cfg.Models[0].Labels; l != nil && l.Table != "" {
		// The performance detector reads the labels table; the generated
		// 8 days hold no matured label, so an empty one is the truth.
		lt := store.ParseTable(l.Table)
		if lt.Database == "" {
			lt.Database = table.Database
		}
		if err := store.Apply(ctx, db, lt.Database, []store.TableDef{store.LabelsDef(lt.Name, l.Columns.RequestID, l.Columns.Label, l.Columns.LabeledAt)}); err != nil {
			return r, err
		}
	}
	if o.rollups {
		src := store.Table{Database: o.database, Name: "predictions_10m"}
		if k := n / 10_000_000; n > 10_000_000 && n%10_000_000 == 0 && exists(ctx, db, store.Table{Database: o.database, Name: src.Name + "_1m"}) {
			err = replicateRollup(ctx, db, &cfg.Models[0], src, int(k), log)
		} else {
			err = ensureRollup(ctx, db, &cfg.Models[0], log)
		}
		if err != nil {
			return r, err
		}
	}

	if o.fillOnly {
		return r, nil
	}
	dets, err := newDetectors(cfg)
	if err != nil {
		return r, err
	}
	if !o.raw {
		if o.incremental {
			r.inc, err = measureIncremental(ctx, db, o.meter, o.database, table, dets, o.reps)
		}
		return r, err
	}
	for _, d := range dets {
		r.perDetectorOrder = append(r.perDetectorOrder, d.Config().Name)
	}
	// The cycle, reps times (one warm-up first: the daemon runs warm).
	tm, err := timeCycles(ctx, db, dets, evalAt, o.reps)
	if err != nil {
		return r, err
	}
	r.cycle, r.perDetector, r.read, r.bytes = tm.cycle, tm.per, tm.read, tm.bytes
	if o.incremental {
		if r.inc, err = measureIncremental(ctx, db, o.meter, o.database, table, dets, o.reps); err != nil {
			return r, err
		}
	}
	// The floor: the union of the detectors' ranges, every column once.
	floorSQL, err := floorQuery(cfg, dets, table)
	if err != nil {
		return r, err
	}
	var floors []time.Duration
	for i := 0; i <= o.reps; i++ {
		start := time.Now()
		res, err := db.Query(ctx, floorSQL)
		if err != nil {
			return r, fmt.Errorf("floor: %w", err)
		}
		if i > 0 {
			floors = append(floors, time.Since(start))
		}
		r.floorRead = res.Stats.RowsRead
	}
	r.floor = median(floors)
	// The daemon's peak RSS: mlwatch eval in server mode, one cycle.
	if r.rss, err = evalRSS(ctx, o, text); err != nil {
		return r, err
	}
	// The client baseline, once: it takes long.
	if o.client {
		r.client, r.clientRSS, err = clientRSS(o, cfg, dets, table)
		if err != nil {
			return r, err
		}
	}
	if o.rollups {
		rcfg, _, err := rollupConfig(text)
		if err != nil {
			return r, err
		}
		rdets, err := newDetectors(rcfg)
		if err != nil {
			return r, err
		}
		tm, err := timeCycles(ctx, db, rdets, evalAt, o.reps)
		if err != nil {
			return r, err
		}
		r.rollup, r.perRollup, r.rollupRead = tm.cycle, tm.per, tm.read
	}
	return r, nil
}

// newDetectors builds the config's detectors, in its order.
func newDetectors(cfg *configs.Config) ([]*detectors.Detector, error) {
	dets := make([]*detectors.Detector, 0, len(cfg.Detectors))
	for i := range cfg.Detectors {
		d, err := detectors.New(cfg, &cfg.Detectors[i])
		if err != nil {
			return nil, err
		}
		dets = append(dets, d)
	}
	return dets, nil
}

// timing is what timeCycles measured: the median cycle and the median of
// each detector, and the rows and bytes the last cycle read.
type timing struct {
	cycle       time.Duration
	per         map[string]time.Duration
	read, bytes uint64
}

// timeCycles evaluates every detector at evalAt, reps times after one
// warm-up cycle that is not counted.
func timeCycles(ctx context.Context, db *store.DB, dets []*detectors.Detector, evalAt time.Time, reps int) (timing, error) {
	tm := timing{per: map[string]time.Duration{}}
	var cycles []time.Duration
	per := map[string][]time.Duration{}
	for i := 0; i <= reps; i++ {
		var total time.Duration
		var read, bytes uint64
		for _, d := range dets {
			start := time.Now()
			res, err := d.Evaluate(ctx, db, evalAt)
			if err != nil {
				return tm, err
			}
			el := time.Since(start)
			total += el
			read += res.Stats.RowsRead
			bytes += res.Stats.BytesRead
			if i > 0 {
				per[d.Config().Name] = append(per[d.Config().Name], el)
			}
		}
		if i > 0 {
			cycles = append(cycles, total)
		}
		tm.read, tm.bytes = read, bytes
	}
	tm.cycle = median(cycles)
	for k, v := range per {
		tm.per[k] = median(v)
	}
	return tm, nil
}

// benchConfig is the config with the model's table (and rollup) replaced.
func benchConfig(path string, table store.Table) (*configs.Config, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	text := strings.Replace(string(b), "    table: predictions\n", fmt.Sprintf("    table: %s\n    rollup: {table: %s_1m}\n", table, table), 1)
	if text == string(b) {
		return nil, "", fmt.Errorf("config %s: no model with `table: predictions` to point at the benchmark table", path)
	}
	cfg, err := configs.Parse(path, []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, "", err
	}
	return cfg, text, nil
}

// rollupConfig switches the detectors the rollup serves to it.
func rollupConfig(text string) (*configs.Config, string, error) {
	var out []string
	lines := strings.Split(text, "\n")
	kind := ""
	for _, l := range lines {
		out = append(out, l)
		if strings.HasPrefix(l, "    kind: ") {
			kind = strings.TrimPrefix(l, "    kind: ")
			for _, k := range configs.RollupKinds {
				if k == kind {
					out = append(out, "    source: rollup")
				}
			}
		}
	}
	text = strings.Join(out, "\n")
	cfg, err := configs.Parse("rollup.yaml", []byte(text), func(string) (string, bool) { return "", false })
	return cfg, text, err
}

// fill generates the table's rows; with rollups, the rollup tables are
// created empty and filled after the rows by Backfill a day at a time (a
// view rolling up every insert block would double generation time, and
// the rollup's content is the same).
func fill(ctx context.Context, db *store.DB, cfg *configs.Config, table store.Table, n int64, rollups bool, log io.Writer) error {
	if err := db.Exec(ctx, "DROP TABLE IF EXISTS "+table.Quoted()); err != nil {
		return err
	}
	m := &cfg.Models[0]
	if err := store.Apply(ctx, db, table.Database, []store.TableDef{store.PredictionsDef(table.Name)}); err != nil {
		return err
	}
	if rollups {
		ddl, err := detectors.Rollup(m)
		if err != nil {
			return err
		}
		for _, t := range ddl.Tables {
			if err := db.Exec(ctx, "DROP TABLE IF EXISTS "+store.Table{Database: ddl.Database, Name: t.Name}.Quoted()); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	_, err := traffic.Generate(ctx, db, traffic.Options{Model: m, From: genFrom, To: genTo, Rate: float64(n) / rowsPerRate, Seed: 1, Concurrency: 2})
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "mlbench: generated %s in %s\n", table, time.Since(start).Round(time.Second))
	return nil
}

func exists(ctx context.Context, db *store.DB, t store.Table) bool {
	n, err := count(ctx, db, t)
	return err == nil && n > 0
}

// replicate fills dst with k copies of src's rows, each copy's request ids
// suffixed: the larger sizes in a fraction of the generator's time, with
// the same distributions (so the same findings) at k times the counts.
func replicate(ctx context.Context, db *store.DB, src, dst store.Table, k int) error {
	def := store.PredictionsDef(dst.Name)
	if err := db.Exec(ctx, "DROP TABLE IF EXISTS "+dst.Quoted()); err != nil {
		return err
	}
	if err := store.Apply(ctx, db, dst.Database, []store.TableDef{def}); err != nil {
		return err
	}
	var cols, sel []string
	for _, c := range def.Columns {
		cols = append(cols, store.MustIdent(c[0]))
		sel = append(sel, store.MustIdent(c[0]))
	}
	start := time.Now()
	for i := 0; i < k; i++ {
		sel[1] = fmt.Sprintf("concat(request_id, '-%d')", i)
		if err := db.Exec(ctx, "INSERT INTO "+dst.Quoted()+" ("+strings.Join(cols, ", ")+") SELECT "+strings.Join(sel, ", ")+" FROM "+src.Quoted()); err != nil {
			return fmt.Errorf("replicate: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "mlbench: copied %s %d times in %s\n", src, k, time.Since(start).Round(time.Second))
	return nil
}

// replicateRollup fills the rollup of a table made by replicate from the
// source table's rollup: its states inserted k times, which is exactly
// what rolling up the k copies gives (no request ids in a rollup), in
// seconds instead of a backfill of every row.
func replicateRollup(ctx context.Context, db *store.DB, m *configs.Model, src store.Table, k int, log io.Writer) error {
	ddl, err := detectors.Rollup(m)
	if err != nil {
		return err
	}
	if err := store.Apply(ctx, db, ddl.Database, ddl.Tables); err != nil {
		return err
	}
	dst := store.Table{Database: ddl.Database, Name: ddl.Tables[0].Name}
	if n, err := count(ctx, db, dst); err != nil || n > 0 {
		return err
	}
	for _, suffix := range []string{"_1m", "_1m_features"} {
		from := store.Table{Database: src.Database, Name: src.Name + suffix}
		to := store.Table{Database: ddl.Database, Name: strings.TrimSuffix(dst.Name, "_1m") + suffix}
		for i := 0; i < k; i++ {
			if err := db.Exec(ctx, "INSERT INTO "+to.Quoted()+" SELECT * FROM "+from.Quoted()); err != nil {
				return fmt.Errorf("replicate rollup: %w", err)
			}
		}
		if err := db.Exec(ctx, "OPTIMIZE TABLE "+to.Quoted()+" FINAL"); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "mlbench: rollup of %s is %s's rollup %d times\n", m.Table, src, k)
	return nil
}

// ensureRollup creates the model's rollup tables and, when they are empty,
// rolls up the generated days.
func ensureRollup(ctx context.Context, db *store.DB, m *configs.Model, log io.Writer) error {
	ddl, err := detectors.Rollup(m)
	if err != nil {
		return err
	}
	if err := store.Apply(ctx, db, ddl.Database, ddl.Tables); err != nil {
		return err
	}
	n, err := count(ctx, db, store.Table{Database: ddl.Database, Name: ddl.Tables[0].Name})
	if err != nil || n > 0 {
		return err
	}
	start := time.Now()
	for day := genFrom; day.Before(genTo); day = day.Add(24 * time.Hour) {
		stmts, err := ddl.Backfill(day, day.Add(24*time.Hour))
		if err != nil {
			return err
		}
		for _, st := range stmts {
			if err := db.Exec(ctx, st); err != nil {
				return fmt.Errorf("backfill: %w", err)
			}
		}
	}
	for _, t := range ddl.Tables {
		if err := db.Exec(ctx, "OPTIMIZE TABLE "+store.Table{Database: ddl.Database, Name: t.Name}.Quoted()+" FINAL"); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "mlbench: rolled up %s in %s\n", m.Table, time.Since(start).Round(time.Second))
	return nil
}

func count(ctx context.Context, db *store.DB, t store.Table) (int64, error) {
	res, err := db.Query(ctx, "SELECT count() FROM "+t.Quoted())
	if err != nil {
		return 0, err
	}
	return store.Int(res.Rows[0][0]), nil
}

// ranges is the union of the detectors' time ranges, merged.
func ranges(dets []*detectors.Detector) [][2]time.Time {
	var all [][2]time.Time
	for _, d := range dets {
		all = append(all, d.Ranges(evalAt)...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i][0].Before(all[j][0]) })
	var out [][2]time.Time
	for _, r := range all {
		if n := len(out); n > 0 && !r[0].After(out[n-1][1]) {
			if r[1].After(out[n-1][1]) {
				out[n-1][1] = r[1]
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// floorQuery reads every column the cycle reads, over the cycle's ranges,
// once, with the cheapest aggregate that still decodes each value.
func floorQuery(cfg *configs.Config, dets []*detectors.Detector, table store.Table) (string, error) {
	m := cfg.Models[0]
	c := m.Columns
	id := store.MustIdent
	var conds []string
	var args []any
	for _, r := range ranges(dets) {
		conds = append(conds, "("+id(c.TS)+" >= ? AND "+id(c.TS)+" < ?)")
		args = append(args, r[0], r[1])
	}
	sel := []string{"count()", "max(" + id(c.RequestID) + ")", "max(" + id(c.ModelVersion) + ")", "max(" + id(c.Role) + ")",
		"sum(" + id(c.Score) + ")", "sum(" + id(c.Decision) + ")",
		"sum(length(" + id(m.Features.NamesColumn) + "))", "sum(length(" + id(m.Features.ValuesColumn) + "))"}
	for _, s := range m.Slices {
		sel = append(sel, "max("+id(s)+")")
	}
	args = append(args, m.ModelValue)
	return store.Bind("SELECT "+strings.Join(sel, ", ")+" FROM "+table.Quoted()+" PREWHERE "+strings.Join(conds, " OR ")+
		" WHERE "+id(c.Model)+" = ?", args...)
}

// evalRSS runs `mlwatch eval` on the config in server mode and returns its
// peak RSS in KiB.
func evalRSS(ctx context.Context, o options, text string) (int64, error) {
	dir, err := os.MkdirTemp("", "mlbench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return 0, err
	}
	env := append(os.Environ(), "MLWATCH_CLICKHOUSE_ADDR="+o.addr, "MLWATCH_CLICKHOUSE_DATABASE="+o.database)
	apply := exec.CommandContext(ctx, o.mlwatch, "schema", "apply", "--config", path)
	apply.Env = env
	if out, err := apply.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("mlwatch schema apply: %v: %s", err, out)
	}
	cmd := exec.CommandContext(ctx, o.mlwatch, "eval", "--config", path, "--at", evalAt.Format(time.RFC3339), "--log.level", "warn")
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("mlwatch eval: %v: %s", err, out.String())
	}
	return maxRSS(cmd.ProcessState), nil
}

func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// clientRSS runs the client baseline as a child (so its memory is its
// own) and returns its wall time and peak RSS.
func clientRSS(o options, cfg *configs.Config, dets []*detectors.Detector, table store.Table) (time.Duration, int64, error) {
	// The current window first, then the seasonal baseline days.
	var wins [][2]time.Time
	for _, d := range dets {
		if d.Config().Kind == configs.KindBlockRate {
			wins = d.Ranges(evalAt)
		}
	}
	js, _ := json.Marshal(wins)
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(self, "client", "--addr", o.addr, "--table", table.String(), "--model", cfg.Models[0].ModelValue, "--windows", string(js))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("client: %v: %s", err, errb.String())
	}
	el := time.Since(start)
	var f clientFigures
	if err := json.Unmarshal(out.Bytes(), &f); err != nil {
		return 0, 0, fmt.Errorf("client output: %w", err)
	}
	if f.Rows == 0 || f.Features == 0 {
		return 0, 0, fmt.Errorf("client computed nothing: %s", out.String())
	}
	return el, maxRSS(cmd.ProcessState), nil
}

func clientCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mlbench client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "server")
	table := fs.String("table", "", "table")
	model := fs.String("model", "", "model value")
	wins := fs.String("windows", "", "JSON [[from, to], ...], current window first")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := clientRun{addr: *addr, table: *table, model: *model}
	if err := json.Unmarshal([]byte(*wins), &c.windows); err != nil {
		fmt.Fprintf(stderr, "mlbench client: --windows: %v\n", err)
		return 2
	}
	if err := c.run(context.Background(), stdout); err != nil {
		fmt.Fprintf(stderr, "mlbench %v\n", err)
		return 1
	}
	return 0
}

// loadavg is the machine's 1-minute load average: other work on a 2-core
// machine shows in every figure.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1_000, strings.TrimSuffix(s, "K")
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func sizeLabel(n int64) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n%1_000 == 0:
		return fmt.Sprintf("%dK", n/1_000)
	}
	return fmt.Sprint(n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func printTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| rows | cycle (median) | floor (median) | cycle/floor | rows read/cycle | bytes read/cycle | daemon peak RSS | client baseline | client/cycle | client peak RSS | rollup cycle | rows read/rollup cycle |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		if r.cycle == 0 {
			continue // --raw=false
		}
		ratio := func(a, b time.Duration) string {
			if b == 0 || a == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", float64(a)/float64(b))
		}
		client, clientRatio, crss := "–", "–", "–"
		if r.client > 0 {
			client, clientRatio, crss = ms(r.client), fmt.Sprintf("%.1f×", float64(r.client)/float64(r.cycle)), fmt.Sprintf("%.0f MB", float64(r.clientRSS)/1024)
		}
		rollup, rread := "–", "–"
		if r.rollup > 0 {
			rollup, rread = ms(r.rollup), fmt.Sprint(r.rollupRead)
		}
		fmt.Fprintf(w, "| %s (%d) | %s | %s | %s | %d | %.1f MB | %.0f MB | %s | %s | %s | %s | %s |\n",
			r.label, r.rows, ms(r.cycle), ms(r.floor), ratio(r.cycle, r.floor), r.read, float64(r.bytes)/1e6,
			float64(r.rss)/1024, client, clientRatio, crss, rollup, rread)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.cycle == 0 {
			continue
		}
		var parts []string
		for _, n := range r.perDetectorOrder {
			parts = append(parts, fmt.Sprintf("%s %s", n, ms(r.perDetector[n])))
		}
		fmt.Fprintf(w, "%s per detector (median): %s\n", r.label, strings.Join(parts, ", "))
		if len(r.perRollup) > 0 {
			parts = parts[:0]
			for _, n := range r.perDetectorOrder {
				parts = append(parts, fmt.Sprintf("%s %s", n, ms(r.perRollup[n])))
			}
			fmt.Fprintf(w, "%s per detector with rollups (median): %s\n", r.label, strings.Join(parts, ", "))
		}
	}
}
