package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// Shard is one shard of a cluster, reached over a connection of its own.
type Shard struct {
	Num  int    // shard_num in system.clusters
	Addr string // host:port of the replica connected to
	DB   *DB
}

// shardConns are a DB's connections to the servers of its clusters, by
// address, opened on first use and closed with the DB.
type shardConns struct {
	mu    sync.Mutex
	conns map[string]*DB
}

func (s *shardConns) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

// Shards connects to one replica of every shard of cluster name, as
// system.clusters of db's server lists them (host_address and port),
// with db's own credentials, TLS settings, timeout and hooks: the first
// replica of a shard (replica_num order) that accepts a connection.
// Connections are kept for the next call and closed with db. A shard
// none of whose replicas answers is an error: figures without it would
// be wrong, not partial.
func (db *DB) Shards(ctx context.Context, name string) ([]Shard, error) {
	if db.opt.Addr == "" {
		return nil, fmt.Errorf("cluster %s: the embedded engine has no cluster", name)
	}
	res, err := db.Query(ctx, "SELECT shard_num, host_name, host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", name)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: read system.clusters: %w", name, err)
	}
	if len(res.Rows) == 0 {
		return nil, fmt.Errorf("cluster %s: not in system.clusters of %s (remote_servers)", name, db.opt.Addr)
	}
	var out []Shard
	var errs []error
	for i := 0; i < len(res.Rows); {
		num := int(Int(res.Rows[i][0]))
		var sh *Shard
		errs = errs[:0]
		for ; i < len(res.Rows) && int(Int(res.Rows[i][0])) == num; i++ {
			if sh != nil {
				continue
			}
			r := res.Rows[i]
			addr := net.JoinHostPort(Str(r[2]), strconv.FormatInt(Int(r[3]), 10))
			c, err := db.shards.open(ctx, db.shardOptions(), addr, Str(r[1]))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sh = &Shard{Num: num, Addr: addr, DB: c}
		}
		if sh == nil {
			return nil, fmt.Errorf("cluster %s shard %d: no replica answers: %w", name, num, errors.Join(errs...))
		}
		out = append(out, *sh)
	}
	return out, nil
}

// shardOptions are db's options for a shard's connection: the hooks are
// db's, including those added after Open.
func (db *DB) shardOptions() Options {
	opt := db.opt
	opt.Hooks = append([]Hook(nil), db.hooks...)
	return opt
}

// open returns the connection to addr, opening it with opt's settings.
func (s *shardConns) open(ctx context.Context, opt Options, addr, host string) (*DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[addr]; c != nil {
		return c, nil
	}
	opt.Addr = addr
	if opt.Secure && opt.ServerName == "" {
		opt.ServerName = host // the certificate names the host, not its address
	}
	c, err := Open(ctx, opt)
	if err != nil {
		return nil, err
	}
	if s.conns == nil {
		s.conns = map[string]*DB{}
	}
	s.conns[addr] = c
	return c, nil
}
