package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
)

// routesCmd is `mlwatch routes test --config F label=value...`: the
// receivers a label set reaches, one line each (receiver first), so a
// route can be checked before an alert needs it. Owner and severity
// default from the class, as they do for real alerts.
func routesCmd(ctx context.Context, c *cli, args []string) int {
	return c.subcommand(ctx, "routes", "usage: mlwatch routes test --config FILE [--format text|json] label=value...", args,
		map[string]func(context.Context, *cli, []string) int{"test": routesTest})
}

func routesTest(_ context.Context, c *cli, args []string) int {
	f := newFlags("routes test", c)
	format := f.format("")
	if code, ok := f.parse(args); !ok {
		return code
	}
	labels, err := parseLabels(f.Args())
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch routes test: %v\n", err)
		return 2
	}
	cfg, ok := c.load(*f.config)
	if !ok {
		return 1
	}
	labels = alerts.CompleteLabels(labels)
	dests := alerts.NewRouter(cfg).Route(labels)
	if len(dests) == 0 {
		fmt.Fprintln(c.stderr, "mlwatch routes test: no receiver: the model has no owner receiver for this class and route.receiver is empty")
		return 1
	}
	for _, d := range dests {
		if *format == "json" {
			b, _ := json.Marshal(map[string]any{
				"receiver": d.Receiver, "route": d.Route, "group_by": d.GroupBy,
				"repeat_interval": configs.FormatDuration(d.RepeatInterval), "labels": labels,
			})
			fmt.Fprintln(c.stdout, string(b))
			continue
		}
		fmt.Fprintf(c.stdout, "%s\troute=%s group_by=[%s] repeat_interval=%s\n",
			d.Receiver, d.Route, strings.Join(d.GroupBy, ","), configs.FormatDuration(d.RepeatInterval))
	}
	return 0
}

// parseLabels reads label=value arguments.
func parseLabels(args []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want name=value", a)
		}
		labels[k] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return labels, nil
}
