package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
)

func runCmd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("run", c)
	listen := f.String("web.listen-address", "", "HTTP address (default: server.listen_address, 127.0.0.1:9107)")
	peerPos := f.Int("cluster.peer-position", -1, "this replica's position in an HA group sharing one ClickHouse (0 first): it holds each notification position × --cluster.peer-timeout, then sends unless a peer did")
	peerID := f.String("cluster.peer-id", "", "a stable name of this replica in an HA group; without --cluster.peer-position the position is its rank among the live replicas' names")
	peerTimeout := f.Duration("cluster.peer-timeout", alerts.DefaultPeerTimeout, "the hold per position in an HA group")
	if code, ok := f.parse(args); !ok {
		return code
	}
	var peer *alerts.Peer
	if *peerPos >= 0 || *peerID != "" {
		peer = &alerts.Peer{Position: *peerPos, ID: *peerID, Timeout: *peerTimeout}
		if err := peer.Check(); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch run: %v\n", err)
			return 2
		}
	} else if *peerPos < -1 {
		fmt.Fprintf(c.stderr, "mlwatch run: --cluster.peer-position: %d is negative; positions start at 0\n", *peerPos)
		return 2
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
		Peer:          peer,
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
