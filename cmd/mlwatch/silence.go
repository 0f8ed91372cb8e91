package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

const silenceUsage = `usage:
  mlwatch silence add    --config FILE --comment TEXT [--author NAME] [--start RFC3339] [--duration 2h | --end RFC3339] matcher...
  mlwatch silence list   --config FILE [--all] [--format text|json]
  mlwatch silence expire --config FILE ID...
matchers: name=value, name!=value, name=~regex, name!~regex (e.g. model=fraud class=model_behavior country=~"FR|BE")`

// silenceCmd is `mlwatch silence add|list|expire`: silences stored in
// ClickHouse, which the running daemon picks up at its next evaluation.
func silenceCmd(ctx context.Context, c *cli, args []string) int {
	return c.subcommand(ctx, "silence", silenceUsage, args, map[string]func(context.Context, *cli, []string) int{
		"add": silenceAdd, "list": silenceList, "expire": silenceExpire,
	})
}

// silenceStore opens the silences table, creating it if missing.
func silenceStore(ctx context.Context, c *cli, f *flags) (*alerts.Silences, func(), int) {
	cfg, _, db, code := c.setup(ctx, f)
	if code != 0 {
		return nil, nil, code
	}
	t := tablesOf(cfg)
	var defs []store.TableDef
	for _, d := range alerts.TableDefs(t) {
		if d.Name == t.Silences().Name {
			defs = append(defs, d)
		}
	}
	if err := store.Apply(ctx, db, t.Database, defs); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence: %v\n", err)
		db.Close()
		return nil, nil, 1
	}
	return alerts.NewSilences(db, t), func() { db.Close() }, 0
}

func silenceAdd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("silence add", c)
	comment := f.String("comment", "", "why (required)")
	author := f.String("author", "", "who (default: $USER)")
	start := f.String("start", "", "start time, RFC3339 (default: now)")
	end := f.String("end", "", "end time, RFC3339")
	duration := f.String("duration", "2h", "length, e.g. 30m, 2h, 1d (ignored with --end)")
	base := f.String("url", "", "the running daemon's address (default: server.listen_address); without a daemon the silence is stored directly")
	if code, ok := f.parse(args); !ok {
		return code
	}
	matchers, err := alerts.ParseMatchers(f.Args())
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
		return 2
	}
	now := time.Now().UTC().Truncate(time.Second)
	s := alerts.Silence{Matchers: matchers, StartsAt: now, Comment: *comment, CreatedBy: *author}
	if s.CreatedBy == "" {
		s.CreatedBy, _ = c.env("USER")
	}
	if *start != "" {
		if s.StartsAt, err = time.Parse(time.RFC3339, *start); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence add: --start: %v\n", err)
			return 2
		}
	}
	if *end != "" {
		if s.EndsAt, err = time.Parse(time.RFC3339, *end); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence add: --end: %v\n", err)
			return 2
		}
	} else {
		d, err := configs.ParseDuration(*duration)
		if err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence add: --duration: %v\n", err)
			return 2
		}
		s.EndsAt = s.StartsAt.Add(d)
	}
	if err := s.Validate(); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
		return 2
	}
	// A running daemon owns the tables (the embedded engine locks its
	// data path): go through its API, and say what the silence mutes.
	if cfg, ok := c.load(*f.config); ok {
		api := newDaemonAPI(cfg, *base)
		current, err := api.daemonAlerts(ctx)
		switch {
		case err == nil:
			s.Matchers = readObviousForms(s.Matchers, current, c.stderr)
			describeMatches(c.stderr, s, current)
			ms := make([]string, len(s.Matchers))
			for i, m := range s.Matchers {
				ms[i] = m.String()
			}
			var added alerts.Silence
			if err := api.postJSON(ctx, "/api/v1/silences", map[string]any{"matchers": ms, "starts_at": s.StartsAt, "ends_at": s.EndsAt,
				"created_by": s.CreatedBy, "comment": s.Comment}, &added); err != nil {
				fmt.Fprintf(c.stderr, "mlwatch silence add: through the running daemon at %s: %v\n", api.base, err)
				return 1
			}
			fmt.Fprintln(c.stdout, added.ID)
			return 0
		case !errors.Is(err, errNoDaemon) && *base != "":
			fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
			return 1
		}
	}
	ss, done, code := silenceStore(ctx, c, f)
	if code != 0 {
		return code
	}
	defer done()
	added, err := ss.Add(ctx, s, now)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
		return 1
	}
	fmt.Fprintln(c.stdout, added.ID)
	return 0
}

func silenceList(ctx context.Context, c *cli, args []string) int {
	f := newFlags("silence list", c)
	all := f.Bool("all", false, "include expired silences")
	format := f.format("")
	if code, ok := f.parse(args); !ok {
		return code
	}
	ss, done, code := silenceStore(ctx, c, f)
	if code != 0 {
		return code
	}
	defer done()
	list, err := ss.List(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence list: %v\n", err)
		return 1
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if *format == "text" {
		fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tSTARTS\tENDS\tAUTHOR\tCOMMENT")
	}
	for _, s := range list {
		state := s.State(now)
		if state == alerts.SilenceExpired && !*all {
			continue
		}
		if *format == "json" {
			b, _ := json.Marshal(struct {
				alerts.Silence
				State string `json:"state"`
			}{s, state})
			fmt.Fprintln(c.stdout, string(b))
			continue
		}
		ms := make([]string, len(s.Matchers))
		for i, m := range s.Matchers {
			ms[i] = m.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, state, strings.Join(ms, " "),
			s.StartsAt.UTC().Format(time.RFC3339), s.EndsAt.UTC().Format(time.RFC3339), s.CreatedBy, s.Comment)
	}
	tw.Flush()
	return 0
}

func silenceExpire(ctx context.Context, c *cli, args []string) int {
	f := newFlags("silence expire", c)
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() == 0 {
		fmt.Fprintln(c.stderr, "mlwatch silence expire: give the silence IDs to expire")
		return 2
	}
	ss, done, code := silenceStore(ctx, c, f)
	if code != 0 {
		return code
	}
	defer done()
	failed := 0
	for _, id := range f.Args() {
		if _, err := ss.Expire(ctx, id, time.Now().UTC().Truncate(time.Second)); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence expire: %v\n", err)
			failed++
			continue
		}
		fmt.Fprintf(c.stdout, "expired %s\n", id)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
