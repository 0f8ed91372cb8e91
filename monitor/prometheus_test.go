package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPrometheusScrapes starts Debian's Prometheus against the daemon's
// handler and checks that it scrapes /metrics: the target is up and
// mlwatch's series are stored.
func TestPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: install Debian's prometheus package (make test does)")
	}
	srv, _, m := testServer(t, "x")
	m.runs.WithLabelValues("fraud-block-rate", "success").Add(3)
	target := strings.TrimPrefix(srv.URL, "http://")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	err = os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: mlwatch
    static_configs:
      - targets: ["%s"]
`, target)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	query := func(q string) (int, string) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Data.Result) == 0 {
			return 0, ""
		}
		v, _ := body.Data.Result[0].Value[1].(string)
		return len(body.Data.Result), v
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		_, up := query(`up{job="mlwatch"}`)
		_, runs := query(`mlwatch_detector_runs_total{detector="fraud-block-rate",result="success"}`)
		if up == "1" && runs == "3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape mlwatch (up=%q runs=%q)\n%s", up, runs, logs.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
}
