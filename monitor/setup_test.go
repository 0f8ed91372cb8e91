package monitor

import (
	"context"
	"strings"
	"testing"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// engineConfig parses a test config whose %DB% stands for the engine's
// database and creates its prediction table (predictions) there, with
// mlwatch's own tables too when own is set. It returns the config and
// the names of mlwatch's tables.
func engineConfig(t *testing.T, e storetest.Engine, name, yaml string, own bool) (*configs.Config, store.Tables) {
	t.Helper()
	cfg, err := configs.Parse(name, []byte(strings.ReplaceAll(yaml, "%DB%", e.Database)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	tables := store.Tables{Database: e.Database, Prefix: cfg.State.TablePrefix}
	defs := []store.TableDef{store.PredictionsDef("predictions")}
	if own {
		defs = append(TableDefs(tables), defs...)
	}
	if err := store.Apply(context.Background(), e.DB, e.Database, defs); err != nil {
		t.Fatal(err)
	}
	return cfg, tables
}
