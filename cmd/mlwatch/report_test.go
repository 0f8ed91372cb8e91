package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestReportCommand: `mlwatch report` reads the notified incidents from
// the outbox and the triage from its table, and prints the quality row
// (text and JSON).
func TestReportCommand(t *testing.T) {
	e := storetest.ServerEngine(t)
	ctx := context.Background()
	cfgPath := filepath.Join(t.TempDir(), "mlwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(badConfig(storetest.ServerAddr(), e.Database, "predictions", "country", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	tables := store.Tables{Database: e.Database, Prefix: "mlwatch_"}
	if err := store.Apply(ctx, e.DB, e.Database, monitor.TableDefs(tables)); err != nil {
		t.Fatal(err)
	}
	fired := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	views := func(fp string) alerts.View {
		return alerts.View{Fingerprint: fp, Detector: "block", Class: "model_behavior", Severity: "page", Change: alerts.ChangeNew,
			ActiveAt: fired, FiredAt: &fired, Value: alerts.Number(math.NaN()), Baseline: 0.1, PValue: alerts.Number(math.NaN())}
	}
	n := alerts.Notification{ID: "n1", Receiver: "team", Kind: alerts.KindFiring, CreatedAt: fired, Alerts: []alerts.View{views("a"), views("b")}}
	payload, _ := json.Marshal(n)
	if err := e.DB.Insert(ctx, tables.Outbox(), []string{"id", "version", "seq", "created_at", "receiver", "group_key", "kind", "thread", "payload", "status", "attempts", "next_attempt_at", "last_error", "sent_at", "ref"},
		[][]any{{"n1", uint64(1), uint64(1), fired, "team", "g", "firing", "", string(payload), "sent", uint32(1), fired, "", fired, "x"}}); err != nil {
		t.Fatal(err)
	}
	log := alerts.NewTriageLog(e.DB, tables)
	for _, a := range []alerts.Action{
		{At: fired.Add(6 * time.Minute), Action: alerts.ActionAck, Fingerprint: "a", AlertActiveAt: fired, UserName: "ana"},
		{At: fired.Add(9 * time.Minute), Action: alerts.ActionFalsePositive, Fingerprint: "a", AlertActiveAt: fired, UserName: "ana"},
	} {
		if _, err := log.Record(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"report", "--config", cfgPath, "--since", "7d"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"DETECTOR", "ACK p50", "block", "model_behavior", "50%", "6m0s"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	out.Reset()
	if code := run([]string{"report", "--config", cfgPath, "--since", "7d", "--format", "json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var row alerts.QualityRow
	if err := json.Unmarshal(out.Bytes(), &row); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if row.Alerts != 2 || row.Pages != 2 || row.Acked != 1 || float64(row.AckMedian) != 360 || row.FalsePositive != 1 || float64(row.PagesPerWeek) != 2 {
		t.Fatalf("row: %+v", row)
	}
}
