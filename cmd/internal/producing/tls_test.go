package producing_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial
// into dir and returns its paths and the parsed certificate.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "eventmesh test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.Rename(keyFile+".tmp", keyFile)
	os.Rename(certFile+".tmp", certFile)
	return certFile, keyFile, cert
}

func testProducerConfig() producing.Config {
	return producing.Config{
		Prefix:    streams.PrefixConfig{Prefix: "enmeshed"},
		Stream:    streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute, WarnRatio: 0.8},
		Publish:   producer.PublisherConfig{Timeout: 2 * time.Second, Attempts: 3},
		Ingest:    producer.IngestConfig{Addr: "127.0.0.1:0", APIKeyHeader: "X-API-KEY", ConnectorID: "enmeshed-connector"},
		Sync:      producer.SyncConfig{Interval: 30 * time.Second},
		Connector: connector.Config{APIKeyHeader: "X-API-KEY", BasePath: "/api/core/v1", Timeout: 10 * time.Second, Attempts: 3},
	}
}

// Ingest over TLS: HTTPS works with the certificate, plain HTTP does not,
// and a renewed certificate is served without a restart.
func TestIngestTLS(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.ClientURL())
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, 1)
	c := testProducerConfig()
	c.Ingest.TLSCert, c.Ingest.TLSKey = certFile, keyFile
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := producing.Start(context.Background(), c, nc, prometheus.NewRegistry(), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	client := func(c *x509.Certificate) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(c)
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	body := `{"trigger":"transport.messageReceived","data":{"id":"MSGtls"}}`
	resp, err := client(cert).Post("https://"+p.HTTP.Addr()+"/events", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Post("http://"+p.HTTP.Addr()+"/events", "application/json", strings.NewReader(body)); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP was served")
	}
	// Renew: a new certificate is picked up by the next handshake.
	_, _, renewed := writeCert(t, dir, 2)
	os.Chtimes(certFile, time.Now().Add(time.Second), time.Now().Add(time.Second))
	conn, err := tls.Dial("tcp", p.HTTP.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("served serial %v after renewal, want %v", got, renewed.SerialNumber)
	}
	bad := testProducerConfig()
	bad.Ingest.TLSCert = certFile
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "INGEST_TLS_KEY") {
		t.Errorf("cert without key: %v", err)
	}
}
