package bridge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// startMosquitto starts a mosquitto process of the test's own (the
// machine's shared broker is never reconfigured) with listeners on free
// loopback ports and the configuration conf returns for its directory and
// ports; it returns the listeners' host:port and stops with the test. The
// test skips when the mosquitto binary is missing.
func startMosquitto(t *testing.T, listeners int, conf func(dir string, ports []int) string) []string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("mosquitto is not installed: skipping the tests that need a broker of their own")
		}
	}
	dir := t.TempDir()
	ports := make([]int, listeners)
	addrs := make([]string, listeners)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	// user root: mosquitto started as root otherwise drops to the
	// mosquitto user, who cannot read the test's directory.
	text := "user root\npersistence false\nlog_dest stderr\nper_listener_settings false\n" + conf(dir, ports)
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var log natstest.LogBuffer
	cmd := exec.Command(bin, "-c", path)
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto's log:\n%s", log.String())
		}
	})
	for _, a := range addrs {
		natstest.WaitFor(t, 10*time.Second, "mosquitto listening on "+a, func() bool {
			select {
			case <-exited:
				t.Fatalf("mosquitto exited:\n%s", log.String())
			default:
			}
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return addrs
}

// mosquittoWithPasswords is a private broker that admits only user bridge
// with password secret, and lets it write below allowed/ only (its ACL).
func mosquittoWithPasswords(t *testing.T) string {
	return startMosquitto(t, 1, func(dir string, ports []int) string {
		pw := filepath.Join(dir, "passwd")
		if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, "bridge", "s3cret-pw").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		acl := filepath.Join(dir, "acl")
		if err := os.WriteFile(acl, []byte("user bridge\ntopic readwrite allowed/#\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s\nlistener %d 127.0.0.1\n", pw, acl, ports[0])
	})[0]
}

// Rejected credentials pause the consumer (Ready and Publish return a
// pause), logged loudly without the password; the right ones publish.
func TestMQTTRejectedCredentialsPause(t *testing.T) {
	addr := mosquittoWithPasswords(t)
	for _, tc := range []struct {
		name string
		user *url.Userinfo
		want string
	}{
		// Mosquitto 2.0 answers not authorized (0x87) where MQTT 5 has
		// bad user name or password (0x86); both pause.
		{"wrong password", url.UserPassword("bridge", "wrong-pw-0xdead"), "the broker refused the connection"},
		{"unknown user", url.UserPassword("nobody", "wrong-pw-0xdead"), "the broker refused the connection"},
		{"anonymous", nil, "the broker refused the connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := natstest.BufferLogger()
			o := mqttOptions(t, &url.URL{Scheme: "mqtt", Host: addr, User: tc.user}, "allowed/{{trigger}}", 1)
			o.Log = log
			p := openMQTTTest(t, o)
			err := p.Ready(context.Background())
			if !consumers.IsPause(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ready: %v; want a pause saying %s", err, tc.want)
			}
			err = p.Publish(context.Background(), mqttEvent(1, "transport.messageReceived"))
			if !consumers.IsPause(err) || !strings.Contains(err.Error(), "BRIDGE_URL") {
				t.Fatalf("Publish: %v; want a pause naming BRIDGE_URL", err)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "refused the bridge's credentials") {
				t.Errorf("no loud log of the refusal:\n%s", logs.String())
			}
			if strings.Contains(logs.String()+err.Error(), "wrong-pw-0xdead") {
				t.Errorf("the password is in the log or the error:\n%s\n%v", logs.String(), err)
			}
		})
	}
	t.Run("right password", func(t *testing.T) {
		p := openMQTTTest(t, mqttOptions(t, &url.URL{Scheme: "mqtt", Host: addr, User: url.UserPassword("bridge", "s3cret-pw")}, "allowed/{{trigger}}", 1))
		if err := p.Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(context.Background(), mqttEvent(1, "transport.messageReceived")); err != nil {
			t.Fatal(err)
		}
	})
}

// A topic the broker's ACL does not let the bridge write to: the PUBACK
// (QoS 1) or PUBREC (QoS 2) says not authorized and the consumer pauses;
// the connection stays up and allowed topics still work.
func TestMQTTNotAuthorizedTopicPauses(t *testing.T) {
	addr := mosquittoWithPasswords(t)
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			u := &url.URL{Scheme: "mqtt", Host: addr, User: url.UserPassword("bridge", "s3cret-pw")}
			denied := openMQTTTest(t, mqttOptions(t, u, "denied/{{trigger}}", qos))
			allowed := openMQTTTest(t, mqttOptions(t, u, "allowed/{{trigger}}", qos))
			err := denied.Publish(context.Background(), mqttEvent(1, "transport.messageReceived"))
			if !consumers.IsPause(err) || !strings.Contains(err.Error(), "not authorized (0x87)") || !strings.Contains(err.Error(), "denied/transport/messageReceived") {
				t.Fatalf("publish to a denied topic: %v; want a pause saying not authorized (0x87) and the topic", err)
			}
			if err := denied.Ready(context.Background()); err != nil {
				t.Errorf("Ready after a refused publish: %v", err)
			}
			if err := allowed.Publish(context.Background(), mqttEvent(2, "transport.messageReceived")); err != nil {
				t.Errorf("publish to an allowed topic: %v", err)
			}
		})
	}
}

// mqtts:// with Options.TLS: the publisher verifies the broker's
// certificate against the CA given and publishes over TLS; without that CA
// the handshake fails (a retryable error, not a pause).
func TestMQTTOverTLS(t *testing.T) {
	var pool *x509.CertPool
	addrs := startMosquitto(t, 2, func(dir string, ports []int) string {
		pool = writeTestCertificates(t, dir)
		return fmt.Sprintf("allow_anonymous true\nlistener %d 127.0.0.1\nlistener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n",
			ports[0], ports[1], filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	})
	plain, secure := addrs[0], addrs[1]
	prefix := mqttPrefix(t)
	sub := subscribeMQTT(t, plain, prefix+"/#")

	o := mqttOptions(t, &url.URL{Scheme: "mqtts", Host: secure}, prefix+"/{{trigger}}", 1)
	o.TLS = &tls.Config{RootCAs: pool}
	p := openMQTTTest(t, o)
	m := mqttEvent(7, "transport.messageReceived")
	if err := p.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	sub.waitIDs(t, 10*time.Second, []string{m.Event.ID})

	o.TLS = nil // the system's CAs do not know the test's
	untrusting := openMQTTTest(t, o)
	err := untrusting.Ready(context.Background())
	if err == nil || consumers.IsPause(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Ready without the CA: %v; want a retryable certificate error", err)
	}
}

// writeTestCertificates writes ca.pem and a certificate for 127.0.0.1
// signed by it (server.pem, server-key.pem) to dir and returns the CA as a
// pool.
func writeTestCertificates(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "eventmesh test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem":     {Type: "CERTIFICATE", Bytes: leafDER},
		"server-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}
