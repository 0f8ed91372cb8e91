package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
)

// chServer is a private ClickHouse 18.16 server for one fault or security
// test: its own data directory and loopback ports, so the test can stop,
// kill and restart it (or give it TLS and password users) without touching
// the shared test server every package uses.
type chServer struct {
	t       *testing.T
	dir     string
	addr    string // native protocol
	tlsAddr string // native protocol over TLS; "" without TLS
	caFile  string // the CA that signed the TLS certificate
	db      *store.DB
}

// chOptions shape a private server.
type chOptions struct {
	// TLS adds a native TLS port with a certificate for 127.0.0.1 signed
	// by a fresh CA (caFile).
	TLS bool
	// Users are extra users with passwords, name → password.
	Users map[string]string
}

// startClickHouse starts a private server and stops it when the test ends.
// A missing clickhouse-server fails the test (scripts/clickhouse-server.sh
// start installs it).
func startClickHouse(t *testing.T, opt chOptions) *chServer {
	t.Helper()
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		t.Fatalf("clickhouse-server is not installed (scripts/clickhouse-server.sh start installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "mlwatch-ch-")
	if err != nil {
		t.Fatal(err)
	}
	s := &chServer{t: t, dir: dir, addr: freeAddr(t)}
	tlsXML := ""
	if opt.TLS {
		s.tlsAddr = freeAddr(t)
		s.caFile = filepath.Join(dir, "ca.pem")
		cert, key := writeTLSFiles(t, dir, "server", s.caFile)
		tlsXML = fmt.Sprintf(`<tcp_port_secure>%s</tcp_port_secure>
  <openSSL><server><certificateFile>%s</certificateFile><privateKeyFile>%s</privateKeyFile>
    <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
    <cacheSessions>true</cacheSessions><disableProtocols>sslv2,sslv3</disableProtocols>
    <preferServerCiphers>true</preferServerCiphers></server></openSSL>`, port(s.tlsAddr), cert, key)
	}
	for _, sub := range []string{"log", "data/tmp", "data/user_files", "data/format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config := fmt.Sprintf(`<yandex>
  <logger><level>warning</level><log>%[1]s/log/server.log</log>
    <errorlog>%[1]s/log/err.log</errorlog><size>100M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]s</tcp_port><http_port>%[3]s</http_port>
  %[4]s
  <path>%[1]s/data/</path><tmp_path>%[1]s/data/tmp/</tmp_path>
  <user_files_path>%[1]s/data/user_files/</user_files_path>
  <format_schema_path>%[1]s/data/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size><timezone>UTC</timezone>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`, dir, port(s.addr), port(freeAddr(t)), tlsXML)
	var users strings.Builder
	for name, pw := range opt.Users {
		fmt.Fprintf(&users, "<%[1]s><password>%[2]s</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></%[1]s>", name, pw)
	}
	usersXML := fmt.Sprintf(`<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><log_queries>1</log_queries></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default>%s</users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`, users.String())
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.db != nil {
			_ = s.db.Close()
		}
		s.stop(syscall.SIGKILL)
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "log", "err.log")); err == nil && len(b) > 0 {
				t.Logf("private clickhouse err.log (tail):\n%s", tail(string(b), 3000))
			}
		}
		_ = os.RemoveAll(dir)
	})
	s.start()
	return s
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// start runs the server on its data directory (fresh or left by a
// previous run) and waits until it answers.
func (s *chServer) start() {
	s.t.Helper()
	cmd := exec.Command("clickhouse-server", "--config-file="+filepath.Join(s.dir, "config.xml"), "--daemon", "--pid-file="+s.pidFile())
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("start clickhouse-server: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !s.answers() {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(s.dir, "log", "err.log"))
			s.t.Fatalf("private clickhouse on %s did not answer within 30s:\n%s", s.addr, tail(string(b), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *chServer) pidFile() string { return filepath.Join(s.dir, "ch.pid") }

func (s *chServer) answers() bool {
	return exec.Command("clickhouse-client", "--host", "127.0.0.1", "--port", port(s.addr), "-q", "SELECT 1").Run() == nil
}

// stop sends sig (SIGTERM: a clean stop; SIGKILL: a crash) and waits for
// the process to go.
func (s *chServer) stop(sig syscall.Signal) {
	b, err := os.ReadFile(s.pidFile())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(s.pidFile())
}

// store returns a connection of the test's own to the private server.
func (s *chServer) store() *store.DB {
	s.t.Helper()
	if s.db == nil {
		db, err := store.Open(context.Background(), store.Options{Addr: s.addr, QueryTimeout: 60 * time.Second})
		if err != nil {
			s.t.Fatalf("private clickhouse: %v", err)
		}
		s.db = db
	}
	return s.db
}

// query runs a query on the private server and returns its rows.
func (s *chServer) query(q string, args ...any) [][]any {
	s.t.Helper()
	res, err := s.store().Query(context.Background(), q, args...)
	if err != nil {
		s.t.Fatalf("private clickhouse: %s: %v", q, err)
	}
	return res.Rows
}

// exec runs a statement on the private server.
func (s *chServer) exec(q string, args ...any) {
	s.t.Helper()
	if err := s.store().Exec(context.Background(), q, args...); err != nil {
		s.t.Fatalf("private clickhouse: %s: %v", q, err)
	}
}

// writeTLSFiles writes a fresh CA (to caFile) and a certificate for
// 127.0.0.1 and localhost signed by it; it returns the certificate and key
// paths.
func writeTLSFiles(t *testing.T, dir, name, caFile string) (certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mlwatch test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for path, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}
