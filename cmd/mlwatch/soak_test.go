//go:build soak

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
)

// The soak run (make soak, build tag soak) repeats the make-test cases at
// full size: a million distinct slice values, Slack down for minutes.
func init() {
	distinctValues = 1000000
	slackOutagePhase = 90 * time.Second
}

// soakDuration is how long the load test runs (SOAK_DURATION, default 5m).
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		return d
	}
	return 5 * time.Minute
}

// rss reads a process's resident set size in bytes from /proc.
func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/status: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestSoakLoad runs 200 block_rate detectors, each over 30 country slices
// and the aggregate, every 15 s for SOAK_DURATION against a private
// ClickHouse, with an incident firing alerts into a local Slack. Every
// fire time is either a run or a counted miss, and the daemon's memory
// stays flat: the peak RSS of the last minute is within 25% (+20 MiB) of
// the second minute's.
func TestSoakLoad(t *testing.T) {
	const detectors = 200
	dur := soakDuration(t)
	ch := startClickHouse(t, chOptions{})
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	var extra strings.Builder
	for i := 1; i < detectors; i++ {
		psi := i%2 == 0
		fmt.Fprintf(&extra, "  - {name: d%03d, kind: block_rate, model: fraud, schedule: \"@every 15s\", window: 1h, baseline: {mode: previous}, top_k: 30, min_abs_change: %g, block_rate: {score_psi: %t}}\n",
			i, 0.005+float64(i)*0.0001, psi)
	}
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	faultConfig{Addr: ch.addr, Database: "default", Schedule: "@every 15s", Timeout: "30s"}.write(t, cfg)
	// The first detector is faultConfig's; the others go in its list.
	text, _ := os.ReadFile(cfg)
	text = []byte(strings.Replace(string(text), "receivers:\n", extra.String()+"receivers:\n", 1))
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	env := slackEnv(slack.URL())
	seedIncident(t, cfg, env, "FR")

	d := startDaemon(t, cfg, env)
	pid := d.cmd.Process.Pid
	start := time.Now()
	type sample struct {
		at  time.Duration
		rss int64
	}
	var samples []sample
	for time.Since(start) < dur {
		time.Sleep(5 * time.Second)
		select {
		case err := <-d.done:
			t.Fatalf("mlwatch exited under load: %v", err)
		default:
		}
		samples = append(samples, sample{time.Since(start), rss(t, pid)})
	}
	elapsed := time.Since(start)
	metrics := string(d.get("/metrics"))
	var st struct {
		Data []struct {
			Runs []struct {
				Error      string
				DurationMS float64 `json:"duration_ms"`
			}
		}
	}
	if err := json.Unmarshal(d.get("/api/v1/detectors"), &st); err != nil {
		t.Fatal(err)
	}
	d.stop()
	errs := map[string]int{}
	var durs []float64
	for _, det := range st.Data {
		for _, r := range det.Runs {
			durs = append(durs, r.DurationMS)
			if r.Error != "" {
				e := r.Error
				if i := strings.Index(e, ": "); i > 0 {
					e = e[i+2:]
				}
				errs[e[:min(len(e), 90)]]++
			}
		}
	}
	sort.Float64s(durs)
	if len(durs) > 0 {
		t.Logf("run duration over the last runs of each detector: median %.0f ms, p90 %.0f ms, max %.0f ms",
			durs[len(durs)/2], durs[len(durs)*9/10], durs[len(durs)-1])
	}
	for e, n := range errs {
		t.Logf("%d recent runs failed with: %s", n, e)
	}
	qn := metric(metrics, "mlwatch_clickhouse_query_duration_seconds_count")
	if qn > 0 {
		t.Logf("%.0f ClickHouse queries, mean %.0f ms", qn, 1000*metric(metrics, "mlwatch_clickhouse_query_duration_seconds_sum")/qn)
	}

	// Fire times: every detector ran or counted a miss at each one.
	var runs, misses, failures float64
	worst := 0.0
	expected := elapsed.Seconds() / 15
	for i := 0; i < detectors; i++ {
		name := "block"
		if i > 0 {
			name = fmt.Sprintf("d%03d", i)
		}
		lbl := `detector="` + name + `"`
		r := metric(metrics, "mlwatch_detector_runs_total", lbl)
		m := metric(metrics, "mlwatch_detector_missed_runs_total", lbl)
		runs += r
		misses += m
		failures += metric(metrics, "mlwatch_detector_runs_total", lbl, `result="failure"`)
		if gap := expected - (r + m); gap > worst {
			worst = gap
		}
	}
	t.Logf("%d detectors × 31 slices every 15s for %s: %.0f runs (%.0f failed), %.0f fire times missed and counted; worst detector %.1f fire times short of %.1f",
		detectors, elapsed.Round(time.Second), runs, failures, misses, worst, expected)
	if worst > 2 {
		t.Errorf("a detector accounts for %.1f fewer fire times than the %.1f that passed: runs lost without being counted", worst, expected)
	}

	// Memory: peak RSS per minute.
	perMinute := map[int]int64{}
	for _, s := range samples {
		m := int(s.at / time.Minute)
		perMinute[m] = max(perMinute[m], s.rss)
	}
	var mins []int
	for m := range perMinute {
		mins = append(mins, m)
	}
	sort.Ints(mins)
	var line []string
	peak := int64(0)
	for _, m := range mins {
		line = append(line, fmt.Sprintf("min %d: %.0f MiB", m+1, float64(perMinute[m])/(1<<20)))
		peak = max(peak, perMinute[m])
	}
	t.Logf("peak RSS %.0f MiB; per minute: %s", float64(peak)/(1<<20), strings.Join(line, ", "))
	if len(mins) >= 3 {
		second, last := perMinute[mins[1]], perMinute[mins[len(mins)-1]]
		if float64(last) > float64(second)*1.25+20*(1<<20) {
			t.Errorf("memory grows under steady load: %.0f MiB in minute 2, %.0f MiB in the last", float64(second)/(1<<20), float64(last)/(1<<20))
		}
	}
	if n := len(slack.Calls("chat.postMessage")); n == 0 {
		t.Error("no alert reached Slack under load")
	}
}

// TestSoakBurst: 500 detectors due on the same minute, every one firing
// an alert, on the default 8 connections (issue 12: 16 of 1,000 runs
// failed on pool waits and 1,074 state writes were dropped). No run fails,
// every alert state is stored, and the state writes are batched.
func TestSoakBurst(t *testing.T) {
	runBurst(t, burst{detectors: 500, schedule: "@every 1m", timeout: "5m", conns: 8, waves: 3, wait: 20 * time.Minute})
}

// TestSoakCrashLoop kills the daemon with SIGKILL at random moments, 20
// times, while repeats keep notifications flowing to a webhook that
// answers slowly (so kills land mid-send), restarting it each time. In the
// end every outbox entry was received (none lost) and the number of
// repeated receipts is at most one per crash.
func TestSoakCrashLoop(t *testing.T) {
	const crashes = 20
	ch := startClickHouse(t, chOptions{})
	var mu sync.Mutex
	got := map[string]int{}
	rng := rand.New(rand.NewSource(1))
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n alerts.Notification
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &n); err != nil || n.ID == "" {
			http.Error(w, "bad body", 400)
			return
		}
		mu.Lock()
		delay := time.Duration(rng.Intn(400)) * time.Millisecond
		got[n.ID]++
		mu.Unlock()
		time.Sleep(delay)
	}))
	defer hook.Close()
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	faultConfig{Addr: ch.addr, Database: "default", GroupBy: "[model, class, slice]",
		Extra: "  - {name: hook, webhook: {url: \"" + hook.URL + "/\"}}\nroute:\n  repeat_interval: 5s\n  routes:\n    - {receiver: hook, matchers: [class=model_behavior]}\n"}.write(t, cfg)
	env := slackEnv("http://127.0.0.1:9/")
	seedIncident(t, cfg, env, "FR", "DE", "GB", "ES", "IT")

	d := startDaemon(t, cfg, env)
	for i := 0; i < crashes; i++ {
		time.Sleep(time.Duration(3000+rng.Intn(5000)) * time.Millisecond)
		d.kill()
		d = startDaemon(t, cfg, env)
	}
	d.waitFor("the outbox to drain", 5*time.Minute, func() bool {
		es := readOutbox(t, ch.store(), "default")
		return len(es) > 0 && countStatus(es, "pending") == 0
	})
	time.Sleep(3 * time.Second)
	d.stop()

	es := readOutbox(t, ch.store(), "default")
	mu.Lock()
	defer mu.Unlock()
	lost, dups, hookEntries := 0, 0, 0
	for _, e := range es {
		if e.Receiver != "hook" {
			continue
		}
		hookEntries++
		switch n := got[e.ID]; {
		case e.Status != "sent":
			t.Errorf("entry %s is %s: %s", e.ID, e.Status, e.LastError)
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("%d crashes: %d notifications in the outbox, %d received, %d lost, %d repeated receipts (%.2f per crash)",
		crashes, hookEntries, len(got), lost, dups, float64(dups)/crashes)
	if lost != 0 {
		t.Errorf("%d notifications lost", lost)
	}
	if dups > crashes {
		t.Errorf("%d repeated receipts for %d crashes: more than one per crash", dups, crashes)
	}
	if hookEntries < crashes {
		t.Errorf("only %d notifications over %d crashes: the flow the test relies on did not run", hookEntries, crashes)
	}
}

// TestSoakClickHouseFrozen stops a private ClickHouse with SIGSTOP: it
// accepts connections but answers nothing. The daemon's runs time out and
// are counted, monitoring_failure fires and is paged, and the HTTP API
// keeps answering; after SIGCONT everything recovers.
func TestSoakClickHouseFrozen(t *testing.T) {
	ch := startClickHouse(t, chOptions{})
	slack := fakeslack.New(t, "xoxb-e2e", nil)
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	faultConfig{Addr: ch.addr, Database: "default", Timeout: "3s"}.write(t, cfg)
	env := slackEnv(slack.URL())
	seedIncident(t, cfg, env, "FR")
	d := startDaemon(t, cfg, env)
	d.waitFor("the FR alert in Slack", 90*time.Second, func() bool { return len(postsTo(slack, "C0PRODUCT")) > 0 })

	pid := chPid(t, ch)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := true
	defer func() {
		if frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	start := time.Now()
	slowest := time.Duration(0)
	d.waitFor("monitoring_failure paged while ClickHouse is frozen", 3*time.Minute, func() bool {
		t0 := time.Now()
		vs := d.alerts()
		slowest = max(slowest, time.Since(t0))
		if firing(vs, isMonitoringFailure) == nil {
			return false
		}
		for _, c := range postsTo(slack, "C0INFRA") {
			if strings.Contains(c.Text, "monitoring_failure") {
				return true
			}
		}
		return false
	})
	t.Logf("frozen: monitoring_failure paged after %s; slowest /api/v1/alerts %s", time.Since(start).Round(100*time.Millisecond), slowest.Round(time.Millisecond))
	if slowest > 2*time.Second {
		t.Errorf("/api/v1/alerts took %s while ClickHouse was frozen", slowest)
	}
	_ = syscall.Kill(pid, syscall.SIGCONT)
	frozen = false
	d.waitFor("monitoring_failure to resolve", 2*time.Minute, func() bool { return firing(d.alerts(), isMonitoringFailure) == nil })
	d.stop()
}

func chPid(t *testing.T, ch *chServer) int {
	t.Helper()
	b, err := os.ReadFile(ch.pidFile())
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
