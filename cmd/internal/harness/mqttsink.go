package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/eventmesh/eventmesh/router"
)

// MQTTSink is the broker-side consumer of a bridge run on an MQTT broker:
// a QoS 1 subscriber to Prefix/# (the bridge's BRIDGE_MQTT_TOPIC then
// starts with Prefix). Its session holds the subscription from
// NewMQTTSink on, so nothing the bridge publishes under Prefix while the
// sink is connected is missed. It counts messages by their ce-id user
// property (id in the cloudevents format).
type MQTTSink struct {
	tally
	// Prefix is the topic prefix of the sink's own.
	Prefix string
	client *paho.Client
}

// NewMQTTSink subscribes on the broker of rawURL (mqtt://[user:pass@]host:port)
// to a fresh topic prefix under base, until Close.
func NewMQTTSink(rawURL, base string) (*MQTTSink, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "mqtt" {
		return nil, fmt.Errorf("mqtt sink: scheme %q: want mqtt", u.Scheme)
	}
	var r [6]byte
	rand.Read(r[:])
	suffix := hex.EncodeToString(r[:])
	s := &MQTTSink{Prefix: base + "/" + suffix}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	s.client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			s.add(mqttEventID(r.Packet), time.Now())
			return true, nil // paho sends the PUBACK
		}},
		OnClientError: func(err error) { s.fail(fmt.Errorf("mqtt sink: %w", err)) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			s.fail(fmt.Errorf("mqtt sink: the broker disconnected it (reason %d)", d.ReasonCode))
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: "eventmesh-sink-" + suffix, CleanStart: true, KeepAlive: 30}
	if u.User != nil {
		cp.Username, cp.UsernameFlag = u.User.Username(), true
		cp.Password, cp.PasswordFlag = passwordOf(u)
	}
	ca, err := s.client.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("mqtt sink: connect refused (reason %d)", ca.ReasonCode)
	}
	sa, err := s.client.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Prefix + "/#", QoS: 1}}})
	if err == nil && (len(sa.Reasons) != 1 || sa.Reasons[0] != 1) {
		err = errors.New("mqtt sink: QoS 1 subscription not granted")
	}
	if err != nil {
		s.client.Disconnect(&paho.Disconnect{})
		return nil, err
	}
	return s, nil
}

func passwordOf(u *url.URL) ([]byte, bool) {
	p, ok := u.User.Password()
	return []byte(p), ok
}

// mqttEventID is the event id of a message the bridge published: its
// ce-id user property (enmeshed format) or id (cloudevents).
func mqttEventID(m *paho.Publish) string {
	if m.Properties == nil {
		return ""
	}
	if id := m.Properties.User.Get(router.HeaderID); id != "" {
		return id
	}
	return m.Properties.User.Get("id")
}

// Close disconnects; the clean session ends with it.
func (s *MQTTSink) Close() {
	s.client.Disconnect(&paho.Disconnect{})
}
