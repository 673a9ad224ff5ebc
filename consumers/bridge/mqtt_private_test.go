package bridge

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// Rejected credentials pause the consumer (Ready and Publish return a
// pause), logged loudly without the password; the right ones publish.
func TestMQTTRejectedCredentialsPause(t *testing.T) {
	addr := bridgetest.MosquittoWithPassword(t)
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
	addr := bridgetest.MosquittoWithPassword(t)
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

// mqtts:// with the TLS configuration of BRIDGE_TLS_CA: the publisher
// verifies the broker's certificate against that CA and publishes over
// TLS; without the CA the handshake fails (a retryable error, not a pause).
func TestMQTTOverTLS(t *testing.T) {
	cert, key := bridgetest.WriteCert(t) // self-signed: its own CA
	addrs := bridgetest.StartMosquitto(t, 2, func(dir string, ports []int) string {
		return fmt.Sprintf("allow_anonymous true\nlistener %d 127.0.0.1\nlistener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n",
			ports[0], ports[1], cert, cert, key)
	}).Addrs
	plain, secure := addrs[0], addrs[1]
	prefix := bridgetest.MQTTPrefix()
	sub := bridgetest.SubscribeMQTT(t, plain, prefix+"/#")

	c := Config{URL: "mqtts://" + secure, TLSCA: cert} // BRIDGE_TLS_CA
	tlsConfig, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	o := mqttOptions(t, &url.URL{Scheme: "mqtts", Host: secure}, prefix+"/{{trigger}}", 1)
	o.TLS = tlsConfig
	p := openMQTTTest(t, o)
	m := mqttEvent(7, "transport.messageReceived")
	if err := p.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	sub.WaitIDs(t, 10*time.Second, []string{m.Event.ID})

	o.TLS = nil // the system's CAs do not know the test's
	untrusting := openMQTTTest(t, o)
	err = untrusting.Ready(context.Background())
	if err == nil || consumers.IsPause(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Ready without the CA: %v; want a retryable certificate error", err)
	}
}

// A broker restart (no persistence: the session is gone) while a publish
// waits for its PUBACK: the publish gets an answer (never a hang, never a
// pause), the publisher reconnects by itself, without a process restart,
// and publishing goes on.
func TestMQTTBrokerRestart(t *testing.T) {
	broker := bridgetest.StartMosquitto(t, 1, func(_ string, ports []int) string {
		return fmt.Sprintf("allow_anonymous true\nlistener %d 127.0.0.1\n", ports[0])
	})
	prefix := bridgetest.MQTTPrefix()
	p := openMQTTTest(t, mqttOptions(t, &url.URL{Scheme: "mqtt", Host: broker.Addrs[0]}, prefix+"/{{trigger}}", 1))
	if err := p.Publish(context.Background(), mqttEvent(0, "transport.messageReceived")); err != nil {
		t.Fatal(err)
	}

	broker.Freeze(t) // the next PUBLISH goes out, its PUBACK never comes
	answered := make(chan error, 1)
	go func() { answered <- p.Publish(context.Background(), mqttEvent(1, "transport.messageReceived")) }()
	broker.Restart(t)
	select {
	case err := <-answered:
		if consumers.IsPause(err) {
			t.Fatalf("a publish across a broker restart: %v; want success or a retryable error", err)
		}
		t.Logf("the publish across the restart: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a publish across a broker restart got no answer within 20 s")
	}
	natstest.WaitFor(t, 15*time.Second, "the publisher to reconnect", func() bool { return p.Ready(context.Background()) == nil })
	sub := bridgetest.SubscribeMQTT(t, broker.Addrs[0], prefix+"/#")
	m := mqttEvent(2, "transport.messageReceived")
	if err := p.Publish(context.Background(), m); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	sub.WaitIDs(t, 10*time.Second, []string{m.Event.ID})
}
