package main

import (
	"context"
	"fmt"
)

func checkConfig(_ context.Context, c *cli, args []string) int {
	f := newFlags("check-config", c)
	if code, ok := f.parse(args); !ok {
		return code
	}
	cfg, ok := c.load(*f.config)
	if !ok {
		return 1
	}
	fmt.Fprintf(c.stdout, "%s: ok (%d models, %d detectors, %d receivers)\n", cfg.Path, len(cfg.Models), len(cfg.Detectors), len(cfg.Receivers))
	return 0
}
