package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// newMQTTBridge runs the bridge (bridge.New, the real runtime) from m to
// the MQTT broker at addr, publishing below prefix, with a fast retry
// schedule and vars on top.
func newMQTTBridge(t *testing.T, m *mesh, addr, prefix string, vars ...string) *bridge.Bridge {
	t.Helper()
	cfg := load(t, append([]string{"BRIDGE_URL=mqtt://" + addr, "BRIDGE_MQTT_TOPIC=" + prefix + "/{{trigger}}",
		"BRIDGE_START=all", "BRIDGE_BACKOFF=50ms", "BRIDGE_MAX_DELIVER=1000", "BRIDGE_ACK_WAIT=10s"}, vars...)...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := bridge.New(m.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	run(t, b)
	return b
}

// Events stored in ENMESHED reach an MQTT subscriber through the whole
// bridge (durable, handler, publisher), each as one message with the data
// as its body on the namespace's topic, and are acknowledged on ENMESHED.
func TestMQTTEndToEnd(t *testing.T) {
	broker := bridgetest.MQTTURL(t)
	m := newMesh(t)
	prefix := bridgetest.MQTTPrefix()
	sub := bridgetest.SubscribeMQTT(t, broker.Host, prefix+"/#")
	b := newMQTTBridge(t, m, broker.Host, prefix, "BRIDGE_FORMAT=cloudevents", "BRIDGE_MQTT_QOS=2")

	var want []router.Event
	for i := range 100 {
		want = append(want, m.event("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%d", "content":"ü"}`, i)))
	}
	want = append(want, m.event("transport.messageSent", "")) // no data: the body is {}
	ids := make([]string, len(want))
	for i, e := range want {
		ids[i] = e.ID
	}
	seen := sub.WaitIDs(t, 20*time.Second, ids)
	got := map[string]string{}
	for _, r := range sub.Received() {
		got[bridgetest.MQTTEventID(r)] = r.Topic + " " + string(r.Payload) + " " + r.Properties.User.Get("type")
	}
	for _, e := range want {
		body := string(e.Data)
		if body == "" {
			body = "{}"
		}
		if w := prefix + "/transport/" + e.Namespace[len("transport."):] + " " + body + " " + e.Namespace; got[e.ID] != w {
			t.Errorf("event %s: got %q, want %q", e.ID, got[e.ID], w)
		}
		if seen[e.ID] != 1 {
			t.Errorf("event %s received %d times", e.ID, seen[e.ID])
		}
	}
	settledInfo(t, m, b.Name())
	if err := b.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

// The broker connection cut while the bridge delivers a backlog, then
// restored: the bridge stops being ready, reconnects by itself, and every
// stored event reaches the subscriber (duplicates counted, none lost); the
// durable settles with nothing pending.
func TestMQTTEndToEndConnectionCut(t *testing.T) {
	broker := bridgetest.MQTTURL(t)
	m := newMesh(t)
	prefix := bridgetest.MQTTPrefix()
	sub := bridgetest.SubscribeMQTT(t, broker.Host, prefix+"/#")
	proxy := bridgetest.NewProxy(t, broker.Host)

	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = m.event("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%d"}`, i)).ID
	}
	// Events fetched but not handled when the cut closes the gate are
	// handed back for BRIDGE_BREAKER_COOLDOWN: a short one keeps the test
	// short.
	b := newMQTTBridge(t, m, proxy.Addr(), prefix, "BRIDGE_BREAKER_COOLDOWN=1s")
	natstest.WaitFor(t, 20*time.Second, "a quarter of the events at the subscriber", func() bool { return len(sub.Received()) >= n/4 })
	proxy.Cut()
	natstest.WaitFor(t, 20*time.Second, "the bridge to be not ready", func() bool { return b.Ready(context.Background()) != nil })
	proxy.Restore()
	seen := sub.WaitIDs(t, 60*time.Second, ids)
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	settledInfo(t, m, b.Name())
	t.Logf("%d events through a cut connection: all delivered, %d duplicates", n, dups)
}
