package bridgetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// MQTTURL returns EVENTMESH_TEST_MQTT's URL, or skips the test.
func MQTTURL(t testing.TB) *url.URL {
	t.Helper()
	raw := os.Getenv("EVENTMESH_TEST_MQTT")
	if raw == "" {
		t.Skip("EVENTMESH_TEST_MQTT is not set: skipping the MQTT tests (set it to mqtt://127.0.0.1:1883)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_MQTT: %v", err)
	}
	return u
}

// MQTTPrefix returns a topic prefix of the caller's own.
func MQTTPrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "eventmesh-test/" + hex.EncodeToString(b)
}

// MQTTSubscriber is a QoS 1 subscriber with a clean session: a consumer on
// the broker side.
type MQTTSubscriber struct {
	mu   sync.Mutex
	msgs []*paho.Publish
	at   []time.Time
}

// SubscribeMQTT subscribes to filter at QoS 1 on the broker at addr
// (host:port); it disconnects with the test.
func SubscribeMQTT(t testing.TB, addr, filter string) *MQTTSubscriber {
	t.Helper()
	s := &MQTTSubscriber{}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			now := time.Now()
			s.mu.Lock()
			s.msgs = append(s.msgs, r.Packet)
			s.at = append(s.at, now)
			s.mu.Unlock()
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "sub-" + MQTTPrefix()[len("eventmesh-test/"):], CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Received returns the messages received so far.
func (s *MQTTSubscriber) Received() []*paho.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// ReceivedAt returns when each message of Received arrived.
func (s *MQTTSubscriber) ReceivedAt() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at)
}

// WaitIDs waits until a message of every event id in want arrived and
// returns how many messages carry each id.
func (s *MQTTSubscriber) WaitIDs(t testing.TB, timeout time.Duration, want []string) map[string]int {
	t.Helper()
	var seen map[string]int
	natstest.WaitFor(t, timeout, fmt.Sprintf("%d events at the subscriber", len(want)), func() bool {
		seen = map[string]int{}
		for _, m := range s.Received() {
			seen[MQTTEventID(m)]++
		}
		for _, id := range want {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	return seen
}

// MQTTEventID is the event id of a message the bridge published: its
// ce-id user property (enmeshed format) or id (cloudevents).
func MQTTEventID(m *paho.Publish) string {
	if m.Properties == nil {
		return ""
	}
	if id := m.Properties.User.Get(router.HeaderID); id != "" {
		return id
	}
	return m.Properties.User.Get("id")
}

// Mosquitto is a mosquitto process of a test's own.
type Mosquitto struct {
	Addrs []string // the listeners' host:port

	bin, conf string
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *natstest.LogBuffer
}

// StartMosquitto starts a mosquitto process of the test's own (the
// machine's shared broker is never reconfigured) with listeners on free
// loopback ports and the configuration conf returns for its directory and
// ports (persistence off); it stops with the test. The test skips when
// mosquitto is not installed.
func StartMosquitto(t testing.TB, listeners int, conf func(dir string, ports []int) string) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("mosquitto is not installed: skipping the tests that need a broker of their own")
		}
	}
	dir := t.TempDir()
	ports := natstest.FreePorts(t, listeners)
	m := &Mosquitto{bin: bin, conf: filepath.Join(dir, "mosquitto.conf"), log: &natstest.LogBuffer{}}
	for _, p := range ports {
		m.Addrs = append(m.Addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	// user root: mosquitto started as root otherwise drops to the
	// mosquitto user, who cannot read the test's directory.
	text := "user root\npersistence false\nlog_dest stderr\nper_listener_settings false\n" + conf(dir, ports)
	if err := os.WriteFile(m.conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start(t)
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("mosquitto's log:\n%s", m.log.String())
		}
	})
	return m
}

// Freeze stops the broker process (SIGSTOP): connections stay open and
// nothing answers, until Restart.
func (m *Mosquitto) Freeze(t testing.TB) {
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Restart kills the broker and starts it again on the same ports. Without
// persistence it comes back without any session.
func (m *Mosquitto) Restart(t testing.TB) {
	t.Helper()
	m.kill()
	m.start(t)
}

func (m *Mosquitto) kill() {
	m.cmd.Process.Kill()
	<-m.exited
}

// start starts the process and waits until every listener accepts.
func (m *Mosquitto) start(t testing.TB) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.Stderr = m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	m.exited = exited
	go func(cmd *exec.Cmd) { cmd.Wait(); close(exited) }(m.cmd)
	for _, a := range m.Addrs {
		natstest.WaitFor(t, 10*time.Second, "mosquitto listening on "+a, func() bool {
			select {
			case <-exited:
				t.Fatalf("mosquitto exited:\n%s", m.log.String())
			default:
			}
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
}

// MosquittoWithPassword starts a private broker (StartMosquitto) that
// admits only the user bridge with the password s3cret-pw, and lets it
// write below allowed/ only (its ACL); it returns the broker's host:port.
func MosquittoWithPassword(t testing.TB) string {
	t.Helper()
	return StartMosquitto(t, 1, func(dir string, ports []int) string {
		pw := filepath.Join(dir, "passwd")
		if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, "bridge", "s3cret-pw").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		acl := filepath.Join(dir, "acl")
		if err := os.WriteFile(acl, []byte("user bridge\ntopic readwrite allowed/#\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s\nlistener %d 127.0.0.1\n", pw, acl, ports[0])
	}).Addrs[0]
}
