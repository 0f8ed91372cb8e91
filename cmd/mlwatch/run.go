package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
)

func runCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("run", c)
	listen := f.String("web.listen-address", "", "HTTP address (default: server.listen_address, 127.0.0.1:9107)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	log, err := c.logger(*f.logLevel)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	err = monitor.RunDaemon(ctx, monitor.DaemonOptions{
		ConfigPath:    *f.config,
		Env:           c.env,
		ListenAddress: *listen,
		Logger:        log,
		Open: func(ctx context.Context, cfg *configs.Config, hooks ...store.Hook) (*store.DB, error) {
			return openStore(ctx, cfg, log, hooks...)
		},
	})
	if err != nil {
		log.Error("mlwatch failed", zap.Error(err))
		fmt.Fprintf(c.stderr, "mlwatch run: %v\n", err)
		return 1
	}
	return 0
}
