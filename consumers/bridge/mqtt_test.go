package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// mqttBroker returns EVENTMESH_TEST_MQTT's URL, or skips the test.
func mqttBroker(t testing.TB) *url.URL {
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

// mqttPrefix is a topic prefix of the test's own.
func mqttPrefix(t testing.TB) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "eventmesh-test/" + hex.EncodeToString(b)
}

// mqttOptions are the options of a publisher to u with topic template
// topic and QoS qos.
func mqttOptions(t testing.TB, u *url.URL, topic string, qos int) Options {
	return Options{
		URL:     u,
		Format:  FormatEnmeshed,
		Config:  Config{MQTT: MQTTConfig{Topic: topic, QoS: qos}},
		Durable: "bridge-test",
		Log:     natstest.Logger(t),
	}
}

// openMQTTTest opens a publisher with o and closes it with the test.
func openMQTTTest(t testing.TB, o Options) Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// mqttEvent is event i of namespace ns; its data has white space, escapes
// and non-ASCII text that must arrive byte for byte.
func mqttEvent(i int, ns string) Message {
	e := router.Event{
		ID:            fmt.Sprintf("%032x", i+1),
		Namespace:     ns,
		Source:        "connector-a",
		Time:          time.Date(2026, 12, 2, 8, 0, 0, i, time.UTC),
		Origin:        router.OriginWebhook,
		Data:          fmt.Appendf(nil, `{"id":"MSG%d",  "content": {"text":"gr\u00fc\u00df dich – ü","n":[1, 2.50]}}`, i),
		CorrelationID: fmt.Sprintf("corr-%d", i),
	}
	if i%3 == 0 {
		e.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	}
	if i%5 == 4 {
		e.Data = nil // stored without data: the body is {}
	}
	return Message{Event: e, Body: Body(e)}
}

// mqttSubscriber is a QoS 1 subscriber on the broker at addr.
type mqttSubscriber struct {
	mu   sync.Mutex
	msgs []*paho.Publish
}

// subscribeMQTT subscribes to filter at QoS 1 on addr (host:port) with a
// clean session and returns the subscriber; it disconnects with the test.
func subscribeMQTT(t testing.TB, addr, filter string) *mqttSubscriber {
	t.Helper()
	s := &mqttSubscriber{}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.msgs = append(s.msgs, r.Packet)
			s.mu.Unlock()
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "sub-" + mqttPrefix(t)[len("eventmesh-test/"):], CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// received returns the messages received so far.
func (s *mqttSubscriber) received() []*paho.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// waitIDs waits until a message of every id in want arrived (the id is
// the ce-id or id user property) and returns how many messages carry each.
func (s *mqttSubscriber) waitIDs(t testing.TB, timeout time.Duration, want []string) map[string]int {
	t.Helper()
	var seen map[string]int
	natstest.WaitFor(t, timeout, fmt.Sprintf("%d events at the subscriber", len(want)), func() bool {
		seen = map[string]int{}
		for _, m := range s.received() {
			seen[mqttID(m)]++
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

// mqttID is the event id of a received message.
func mqttID(m *paho.Publish) string {
	if m.Properties == nil {
		return ""
	}
	if id := m.Properties.User.Get(router.HeaderID); id != "" {
		return id
	}
	return m.Properties.User.Get("id")
}

// publishAll publishes msgs from workers goroutines, each retrying an
// event after a retryable error as the runtime's schedule would (every
// 20 ms here), counting failed attempts in failed. It returns an error for
// a pause or when it took longer than 90 s.
func publishAll(p Publisher, msgs []Message, workers int, failed *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(msgs)); i = next.Add(1) - 1 {
				for {
					actx, acancel := context.WithTimeout(ctx, 10*time.Second)
					err := p.Publish(actx, msgs[i])
					acancel()
					if err == nil {
						break
					}
					failed.Add(1)
					if consumers.IsPause(err) || ctx.Err() != nil {
						errs <- fmt.Errorf("event %d: %w", i, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func ids(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Event.ID
	}
	return out
}

// flush publishes a last event on topic and waits for it, so every
// message published before it has reached the subscriber too (a broker
// forwards one connection's messages in order).
func flush(t testing.TB, p Publisher, s *mqttSubscriber, ns string) {
	t.Helper()
	m := mqttEvent(999_999, ns)
	if err := p.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	s.waitIDs(t, 10*time.Second, []string{m.Event.ID})
}

// A QoS 1 subscriber receives N events as N messages: the body is the
// event's data byte for byte ({} without data), the topic the template
// with the namespace's dots turned into /, the user properties the
// format's metadata, the content type application/json, no expiry.
func TestMQTTDeliversEachEventAsOneMessage(t *testing.T) {
	broker := mqttBroker(t)
	namespaces := []string{"transport.messageReceived", "consumption.relationshipEvent.REL00000000000000000", "runtime.started"}
	for _, tc := range []struct {
		format Format
		qos    int
	}{{FormatEnmeshed, 1}, {FormatEnmeshed, 2}, {FormatCloudEvents, 1}, {FormatCloudEvents, 2}} {
		t.Run(fmt.Sprintf("%s/qos%d", tc.format, tc.qos), func(t *testing.T) {
			prefix := mqttPrefix(t)
			sub := subscribeMQTT(t, broker.Host, prefix+"/#")
			o := mqttOptions(t, broker, prefix+"/{{trigger}}", tc.qos)
			o.Format = tc.format
			p := openMQTTTest(t, o)
			if err := p.Ready(context.Background()); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			const n = 300
			msgs := make([]Message, n)
			for i := range msgs {
				msgs[i] = mqttEvent(i, namespaces[i%len(namespaces)])
			}
			var failed atomic.Int64
			if err := publishAll(p, msgs, 16, &failed); err != nil || failed.Load() > 0 {
				t.Fatalf("%d publishes failed without a fault: %v", failed.Load(), err)
			}
			flush(t, p, sub, namespaces[0])
			got := sub.received()
			if len(got) != n+1 {
				t.Fatalf("subscriber received %d messages, want %d (and the flush)", len(got)-1, n)
			}
			byID := map[string]*paho.Publish{}
			for _, m := range got {
				byID[mqttID(m)] = m
			}
			for _, m := range msgs {
				e := m.Event
				r, ok := byID[e.ID]
				if !ok {
					t.Fatalf("event %s not received", e.ID)
				}
				if want := prefix + "/" + strings.ReplaceAll(e.Namespace, ".", "/"); r.Topic != want {
					t.Errorf("topic %q, want %q", r.Topic, want)
				}
				wantBody := string(e.Data)
				if e.Data == nil {
					wantBody = "{}"
				}
				if string(r.Payload) != wantBody {
					t.Errorf("event %s: body %q, want %q", e.ID, r.Payload, wantBody)
				}
				if r.QoS != 1 {
					t.Errorf("received at QoS %d, want 1 (the subscription's)", r.QoS)
				}
				if r.Properties.ContentType != "application/json" || r.Properties.MessageExpiry != nil {
					t.Errorf("content type %q, expiry %v; want application/json and none", r.Properties.ContentType, r.Properties.MessageExpiry)
				}
				if got, want := userProps(r), mqttWantProps(tc.format, e); !slices.Equal(got, want) {
					t.Errorf("event %s: user properties\n got %q\nwant %q", e.ID, got, want)
				}
			}
		})
	}
}

func userProps(m *paho.Publish) []string {
	var out []string
	for _, u := range m.Properties.User {
		out = append(out, u.Key+"="+u.Value)
	}
	return out
}

// mqttWantProps spells out the user properties of each format by hand.
func mqttWantProps(f Format, e router.Event) []string {
	ts := e.Time.UTC().Format(time.RFC3339Nano)
	if f == FormatCloudEvents {
		want := []string{"specversion=1.0", "id=" + e.ID, "type=" + e.Namespace, "source=connector-a", "time=" + ts, "correlationid=" + e.CorrelationID}
		if e.Traceparent != "" {
			want = append(want, "traceparent="+e.Traceparent)
		}
		return append(want, "eventmeshorigin=webhook")
	}
	want := []string{"ce-id=" + e.ID, "ce-type=" + e.Namespace, "ce-source=connector-a", "ce-time=" + ts, "ce-specversion=1.0", "eventmesh-origin=webhook", "x-correlation-id=" + e.CorrelationID}
	if e.Traceparent != "" {
		want = append(want, "traceparent="+e.Traceparent)
	}
	return want
}

// The connection cut mid-run and restored: publishes fail (retryable, not
// a pause) while it is down, the client reconnects in the background, and
// every event arrives; duplicates are counted.
func TestMQTTConnectionCutLosesNothing(t *testing.T) {
	broker := mqttBroker(t)
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			prefix := mqttPrefix(t)
			sub := subscribeMQTT(t, broker.Host, prefix+"/#")
			proxy := bridgetest.NewProxy(t, broker.Host)
			via := *broker
			via.Host = proxy.Addr()
			p := openMQTTTest(t, mqttOptions(t, &via, prefix+"/{{trigger}}", qos))

			const n = 1500
			msgs := make([]Message, n)
			for i := range msgs {
				msgs[i] = mqttEvent(i, "transport.messageReceived")
			}
			var failed atomic.Int64
			done := make(chan error)
			go func() { done <- publishAll(p, msgs, 16, &failed) }()

			natstest.WaitFor(t, 20*time.Second, "a third of the events at the subscriber", func() bool { return len(sub.received()) >= n/3 })
			proxy.Cut()
			natstest.WaitFor(t, 10*time.Second, "the publisher to notice the cut", func() bool {
				err := p.Ready(context.Background())
				if consumers.IsPause(err) {
					t.Fatalf("a cut connection pauses: %v", err)
				}
				return err != nil
			})
			natstest.WaitFor(t, 10*time.Second, "a publish refused while cut", func() bool { return failed.Load() > 0 })
			proxy.Restore()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			natstest.WaitFor(t, 10*time.Second, "the publisher to reconnect", func() bool { return p.Ready(context.Background()) == nil })
			seen := sub.waitIDs(t, 30*time.Second, ids(msgs))
			dups := 0
			for _, c := range seen {
				dups += c - 1
			}
			t.Logf("QoS %d: %d events, %d failed attempts during the cut, all received, %d duplicates", qos, n, failed.Load(), dups)
		})
	}
}

// A broker that is down when the bridge starts: Open succeeds, Ready and
// Publish fail with retryable errors, and once the broker is reachable the
// publisher connects by itself (no restart) and publishes.
func TestMQTTBrokerDownAtStartConnectsLater(t *testing.T) {
	broker := mqttBroker(t)
	prefix := mqttPrefix(t)
	sub := subscribeMQTT(t, broker.Host, prefix+"/#")
	proxy := bridgetest.NewProxy(t, broker.Host)
	proxy.Cut()
	via := *broker
	via.Host = proxy.Addr()
	p := openMQTTTest(t, mqttOptions(t, &via, prefix+"/{{trigger}}", 1))

	m := mqttEvent(1, "transport.messageSent")
	err := p.Ready(context.Background())
	if err == nil || consumers.IsPause(err) {
		t.Fatalf("Ready with the broker down: %v, want a retryable error", err)
	}
	if err := p.Publish(context.Background(), m); err == nil || consumers.IsPause(err) {
		t.Fatalf("Publish with the broker down: %v, want a retryable error", err)
	}
	proxy.Restore()
	natstest.WaitFor(t, 15*time.Second, "the publisher to connect", func() bool { return p.Ready(context.Background()) == nil })
	if err := p.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	sub.waitIDs(t, 10*time.Second, []string{m.Event.ID})
}

// Replicas on one durable get client ids of their own: publishing from
// both at once, neither takes the other's connection over, and every event
// of both arrives.
func TestMQTTConcurrentPublishers(t *testing.T) {
	broker := mqttBroker(t)
	prefix := mqttPrefix(t)
	sub := subscribeMQTT(t, broker.Host, prefix+"/#")
	o := mqttOptions(t, broker, prefix+"/{{trigger}}", 1)
	replicas := []Publisher{openMQTTTest(t, o), openMQTTTest(t, o), openMQTTTest(t, o)}
	var all []Message
	var wg sync.WaitGroup
	for r, p := range replicas {
		msgs := make([]Message, 200)
		for i := range msgs {
			msgs[i] = mqttEvent(r*1000+i, "transport.messageReceived")
		}
		all = append(all, msgs...)
		wg.Go(func() {
			var failed atomic.Int64
			if err := publishAll(p, msgs, 8, &failed); err != nil || failed.Load() > 0 {
				t.Errorf("replica %d: %d publishes failed: %v", r, failed.Load(), err)
			}
		})
	}
	wg.Wait()
	seen := sub.waitIDs(t, 20*time.Second, ids(all))
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s received %d times", id, c)
		}
	}
	for r, p := range replicas {
		if err := p.Ready(context.Background()); err != nil {
			t.Errorf("replica %d: %v", r, err)
		}
	}
}

// The topic: {{trigger}} is the namespace with its dots turned into /.
func TestMQTTTopic(t *testing.T) {
	for _, tc := range []struct{ template, ns, want string }{
		{"{{trigger}}", "transport.messageReceived", "transport/messageReceived"},
		{"acme/{{trigger}}", "transport.messageReceived", "acme/transport/messageReceived"},
		{"acme.events/{{trigger}}/in", "consumption.relationshipEvent.REL1", "acme.events/consumption/relationshipEvent/REL1/in"},
		{"all-events", "runtime.started", "all-events"},
	} {
		if got := (MQTTConfig{Topic: tc.template}).topic(tc.ns); got != tc.want {
			t.Errorf("%q with %q: %q, want %q", tc.template, tc.ns, got, tc.want)
		}
	}
}

// Bad MQTT settings are refused with the variable's name.
func TestMQTTConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    MQTTConfig
		want string
	}{
		{MQTTConfig{Topic: "{{trigger}}", QoS: 0}, "BRIDGE_MQTT_QOS"},
		{MQTTConfig{Topic: "{{trigger}}", QoS: 3}, "BRIDGE_MQTT_QOS"},
		{MQTTConfig{Topic: " ", QoS: 1}, "BRIDGE_MQTT_TOPIC"},
		{MQTTConfig{Topic: "acme/+/{{trigger}}", QoS: 1}, "BRIDGE_MQTT_TOPIC"},
		{MQTTConfig{Topic: "acme/#", QoS: 2}, "BRIDGE_MQTT_TOPIC"},
	} {
		err := tc.c.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.c, err, tc.want)
		}
	}
	if err := (MQTTConfig{Topic: "acme/{{trigger}}", QoS: 2}).validate(); err != nil {
		t.Errorf("a good config: %v", err)
	}
	_, err := Open(context.Background(), Options{URL: &url.URL{Scheme: "mqtt", Host: "127.0.0.1:1"}, Config: Config{MQTT: MQTTConfig{Topic: "x", QoS: 0}}})
	if err == nil || !strings.Contains(err.Error(), "BRIDGE_MQTT_QOS") {
		t.Errorf("Open with QoS 0: %v", err)
	}
}
