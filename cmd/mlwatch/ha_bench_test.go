package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// BenchmarkHAPair measures the HA pair of docs/scaling.md (make bench-ha;
// not part of make test): two `mlwatch run` replicas (positions 0 and 1,
// --cluster.peer-timeout BENCH_HA_PEER_TIMEOUT, default 15s) on one
// ClickHouse and one local Slack. Both up, reloads switch BENCH_HA_DETECTORS
// (default 10) bound detectors on and off, each its own group, until at
// least BENCH_HA_NOTIFICATIONS (100) notifications were delivered; it
// reports duplicates per 100 notifications. Then it SIGKILLs position 0,
// reloads the survivor with one more detector, and reports the seconds
// from the kill to that page in Slack (with both up, the same change took
// the "latency" figure).
func BenchmarkHAPair(b *testing.B) {
	timeout := envOr("BENCH_HA_PEER_TIMEOUT", "15s")
	k, _ := strconv.Atoi(envOr("BENCH_HA_DETECTORS", "10"))
	want, _ := strconv.Atoi(envOr("BENCH_HA_NOTIFICATIONS", "100"))
	e := storetest.ServerEngine(b)
	slack := fakeslack.New(b, "xoxb-ha", nil)
	cfg := filepath.Join(b.TempDir(), "mlwatch.yaml")
	env := []string{"E2E_SLACK_TOKEN=xoxb-ha", "MLWATCH_SLACK_API_URL=" + slack.URL(), "MLWATCH_API_TOKEN=ha"}
	// Each bound detector watches a model of its own (on the same table):
	// bound detectors of one model would be twins of one metric, folded
	// into one alert.
	write := func(bounds ...string) {
		var ms, ds strings.Builder
		ms.WriteString("  - {name: fraud, table: predictions, slices: [country], owners: {product: product, infra: infra}}\n")
		ds.WriteString(strings.Replace(haDetectors["block"], `"@every 2s"`, `"@every 1m"`, 1))
		for _, name := range bounds {
			fmt.Fprintf(&ms, "  - {name: %s, model_value: fraud, table: predictions, owners: {product: product, infra: infra}}\n", name)
			ds.WriteString(strings.NewReplacer("name: bound", "name: "+name, "model: fraud", "model: "+name, `"@every 2s"`, `"@every 5s"`).Replace(haDetectors["bound"]))
		}
		text := strings.NewReplacer("%ADDR%", storetest.ServerAddr(), "%DB%", e.Database, "%DETECTORS%", ds.String()).Replace(haConfig)
		text = strings.Replace(text, "  - name: fraud\n    table: predictions\n    slices: [country]\n    owners: {product: product, infra: infra}\n", ms.String(), 1)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	write()
	now := time.Now().UTC().Truncate(time.Minute)
	mlwatchCmd(b, env, "schema", "apply", "--config", cfg, "--predictions")
	mlwatchCmd(b, env, "generate", "--config", cfg, "--from", now.Add(-2*time.Hour).Format(time.RFC3339), "--to", now.Add(30*time.Minute).Format(time.RFC3339),
		"--rate", "200", "--seed", "5")
	flags := []string{"--cluster.peer-timeout", timeout}
	reps := []*proc{
		startDaemon(b, cfg, env, append(flags, "--cluster.peer-position", "0")...),
		startDaemon(b, cfg, env, append(flags, "--cluster.peer-position", "1")...),
	}
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("bound%02d", i+1)
	}
	var latency time.Duration
	for on := true; len(slack.Calls("chat.postMessage")) < want; on = !on {
		before := len(slack.Calls("chat.postMessage"))
		if on {
			write(names...)
		} else {
			write()
		}
		at := time.Now()
		for _, p := range reps {
			_ = p.cmd.Process.Signal(syscall.SIGHUP)
		}
		reps[0].waitFor("the phase's notifications", 5*time.Minute, func() bool {
			return len(slack.Calls("chat.postMessage")) >= before+k && settled(reps)
		})
		if latency == 0 {
			latency = firstPostAfter(slack, before).Sub(at)
		}
		fmt.Printf("ha: phase on=%v: %d posts in %.1fs\n", on, len(slack.Calls("chat.postMessage"))-before, time.Since(at).Seconds())
	}
	time.Sleep(5 * time.Second)
	posts := len(slack.Calls("chat.postMessage"))
	planned := 0
	for _, p := range reps {
		if n := len(p.notifications()); n > planned {
			planned = n
		}
	}
	dups := posts - planned
	b.ReportMetric(float64(planned), "notifications")
	b.ReportMetric(100*float64(dups)/float64(planned), "duplicates/100")
	b.ReportMetric(latency.Seconds(), "s-latency")
	fmt.Printf("ha: both up: %d notifications, %d Slack posts, %d duplicates (%.1f per 100); first page of a change %.1fs after the reload\n",
		planned, posts, dups, 100*float64(dups)/float64(planned), latency.Seconds())

	// SIGKILL position 0; the survivor gets one more detector.
	_ = reps[0].cmd.Process.Signal(syscall.SIGKILL)
	<-reps[0].done
	killed := time.Now()
	before := len(slack.Calls("chat.postMessage"))
	write("failover")
	_ = reps[1].cmd.Process.Signal(syscall.SIGHUP)
	reps[1].waitFor("the survivor's page", 5*time.Minute, func() bool {
		for _, c := range slack.Calls("chat.postMessage")[before:] {
			if c.ThreadTS == "" && strings.Contains(c.Text+c.Blocks, "failover") {
				return true
			}
		}
		return false
	})
	failover := firstPostAfter(slack, before).Sub(killed)
	b.ReportMetric(failover.Seconds(), "s-failover")
	fmt.Printf("ha: position 0 SIGKILLed: first page from the survivor %.1fs later (peer timeout %s)\n", failover.Seconds(), timeout)
	reps[1].stop()
}

// settled reports whether no replica has a notification pending.
func settled(reps []*proc) bool {
	for _, p := range reps {
		for _, n := range p.notifications() {
			if n.State == alerts.NotificationPending {
				return false
			}
		}
	}
	return true
}

func firstPostAfter(slack *fakeslack.Server, before int) time.Time {
	calls := slack.Calls("chat.postMessage")
	if len(calls) <= before {
		return time.Time{}
	}
	return calls[before].At
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
