package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the mlwatch command once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mlwatch-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mlwatch")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proc is one mlwatch process under test.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan error
	// dump, when set, logs what a failed wait should be read with.
	dump func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// mlwatchCmd runs a one-shot mlwatch command and fails the test on error.
func mlwatchCmd(t testing.TB, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mlwatch %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startDaemon starts `mlwatch run` (with any extra flags) and waits until
// it is ready.
func startDaemon(t testing.TB, cfg string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, addr: freeAddr(t), logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary(t), append([]string{"run", "--config", cfg, "--web.listen-address", p.addr}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("mlwatch logs:\n%s", p.logs.String())
		}
	})
	p.waitFor("ready", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *proc) waitFor(what string, timeout time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case err := <-p.done:
			p.t.Fatalf("mlwatch exited (%v) while waiting for %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			if p.dump != nil {
				p.dump()
			}
			p.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *proc) get(path string) []byte {
	p.t.Helper()
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func (p *proc) alerts() []alerts.View {
	var resp struct{ Data []alerts.View }
	if err := json.Unmarshal(p.get("/api/v1/alerts"), &resp); err != nil {
		p.t.Fatal(err)
	}
	return resp.Data
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("mlwatch exited with %v after SIGTERM", err)
		}
	case <-time.After(40 * time.Second):
		p.t.Fatal("mlwatch did not stop within 40s of SIGTERM")
	}
}

func firing(vs []alerts.View, match func(alerts.View) bool) *alerts.View {
	for _, v := range vs {
		if v.State == "firing" && match(v) {
			return &v
		}
	}
	return nil
}

// runMlwatch runs a one-shot mlwatch command and returns its combined
// output and exit code, for commands expected to fail.
func runMlwatch(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("mlwatch %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}
