package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/mlwatch/mlwatch/store"
)

// Cluster is the two-shard test cluster of scripts/clickhouse-cluster.sh
// with a fresh database of the test's own on every node.
type Cluster struct {
	Name     string   // the cluster's name in remote_servers
	Addrs    []string // each node's native address, shard order
	Nodes    []*store.DB
	Database string
}

// ClusterAddrs are the test cluster's node addresses
// (MLWATCH_TEST_CLUSTER_ADDRS, comma-separated) and its name
// (MLWATCH_TEST_CLUSTER_NAME), or the defaults of the script.
func ClusterAddrs() (name string, addrs []string) {
	name, list := os.Getenv("MLWATCH_TEST_CLUSTER_NAME"), os.Getenv("MLWATCH_TEST_CLUSTER_ADDRS")
	if name == "" {
		name = "mlwatch_test"
	}
	if list == "" {
		list = "127.0.0.1:19010,127.0.0.1:19020"
	}
	return name, strings.Split(list, ",")
}

// NewCluster connects to every node of the test cluster and creates one
// database of the same name on each, dropped when the test ends. A node
// that does not answer fails the test; it never skips.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	name, addrs := ClusterAddrs()
	var b [6]byte
	_, _ = rand.Read(b[:])
	c := &Cluster{Name: name, Addrs: addrs, Database: "test_" + hex.EncodeToString(b[:])}
	ctx := context.Background()
	for _, a := range addrs {
		db, err := store.Open(ctx, store.Options{Addr: a, QueryTimeout: QueryTimeout, Hooks: []store.Hook{fanout}})
		if err != nil {
			t.Fatalf("test cluster node %s: %v (start it with scripts/clickhouse-cluster.sh start, or run make test)", a, err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if err := db.Exec(ctx, "CREATE DATABASE "+store.MustIdent(c.Database)); err != nil {
			t.Fatalf("node %s: create database: %v", a, err)
		}
		t.Cleanup(func() {
			if os.Getenv("MLWATCH_TEST_KEEP") == "" {
				_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+store.MustIdent(c.Database))
			}
		})
		c.Nodes = append(c.Nodes, db)
	}
	return c
}
