package bridge_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/redis/go-redis/v9"
)

// startRedisTLS starts a private redis-server speaking only TLS on a free
// port, with the certificate cert and key (clients need no certificate),
// and returns its address; it stops with the test. The shared Redis has no
// TLS port.
func startRedisTLS(t *testing.T, cert, key string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: skipping the TLS test, which needs a server of its own")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var log natstest.LogBuffer
	cmd := exec.Command(bin, "--port", "0", "--bind", "127.0.0.1", "--tls-port", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	cmd.Stdout = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("redis-server's log:\n%s", log.String())
		}
	})
	natstest.WaitFor(t, 10*time.Second, "redis-server listening on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("redis-server exited:\n%s", log.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// rediss:// with BRIDGE_TLS_CA: the bridge verifies the server against that
// CA and delivers; without it (the system's roots) the server is not
// trusted and the bridge is not ready, a retryable error, not a pause.
func TestRedisOverTLS(t *testing.T) {
	cert, key := bridgetest.WriteCert(t)
	addr := startRedisTLS(t, cert, key)
	open := func(vars ...string) bridge.Publisher {
		cfg := load(t, append([]string{"BRIDGE_URL=rediss://" + addr + "/0", "BRIDGE_REDIS_STREAM=tls"}, vars...)...)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		o, err := cfg.Options(natstest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		p, err := bridge.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}

	p := open("BRIDGE_TLS_CA=" + cert)
	m := redisMessage("tls", 1, redisNamespaces[0])
	if err := p.Publish(context.Background(), m); err != nil {
		t.Fatalf("publish over TLS: %v", err)
	}
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	reader := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}})
	defer reader.Close()
	xs := redisEntries(t, reader, "tls")
	if len(xs) != 1 || xs[0].Values["id"] != m.Event.ID || xs[0].Values["data"] != string(m.Body) {
		t.Errorf("entries over TLS: %v", xs)
	}

	untrusted := open()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := untrusted.Ready(ctx); err == nil || consumers.IsPause(err) {
		t.Errorf("Ready with a server the system's roots do not trust: %v, want a retryable error", err)
	}
}
