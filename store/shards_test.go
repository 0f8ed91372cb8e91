package store_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestShards: DB.Shards connects to each shard of the test cluster as
// system.clusters of the node lists it, keeps the connections for the
// next call, runs the node's hooks on the shards' queries, and names an
// unknown cluster; the embedded engine has no cluster.
func TestShards(t *testing.T) {
	c := storetest.NewCluster(t)
	ctx := context.Background()
	db := c.Nodes[1]
	var hooked atomic.Int64
	storetest.Listen(t, func(ev store.QueryEvent) {
		if strings.Contains(ev.SQL, "shard probe") {
			hooked.Add(1)
		}
	})
	shards, err := db.Shards(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != len(c.Addrs) {
		t.Fatalf("%d shards, want %d", len(shards), len(c.Addrs))
	}
	for i, sh := range shards {
		if sh.Num != i+1 || sh.Addr != c.Addrs[i] {
			t.Errorf("shard %d: %+v, want number %d at %s", i, sh, i+1, c.Addrs[i])
		}
		if _, err := sh.DB.Query(ctx, "SELECT 1 -- shard probe"); err != nil {
			t.Fatal(err)
		}
	}
	if hooked.Load() != int64(len(shards)) {
		t.Errorf("the node's hooks saw %d of the %d shard queries", hooked.Load(), len(shards))
	}
	again, err := db.Shards(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].DB != shards[i].DB {
			t.Errorf("shard %d: a new connection on the second call", i+1)
		}
	}
	if _, err := db.Shards(ctx, "no_such_cluster"); err == nil || !strings.Contains(err.Error(), "cluster no_such_cluster: not in system.clusters") {
		t.Errorf("unknown cluster: %v", err)
	}
	if _, err := storetest.Embedded(t).Shards(ctx, c.Name); err == nil || !strings.Contains(err.Error(), "embedded engine has no cluster") {
		t.Errorf("embedded engine: %v", err)
	}
}
