package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
)

// End to end through the runtime: events published to ENMESHED, the bridge
// as cmd/bridge wires it (bridge.New with the AMQP publisher of
// BRIDGE_URL), received by a queue on RabbitMQ.

// startAMQPBridge runs the bridge on m with a fast retry schedule (3
// attempts) and the settings vars; it stops with the test.
func startAMQPBridge(t *testing.T, m *mesh, b *amqpBroker, vars ...string) (*bridge.Bridge, *natstest.LogBuffer) {
	t.Helper()
	br, buf := newAMQPBridge(t, m, b, vars...)
	run(t, br)
	return br, buf
}

// newAMQPBridge is startAMQPBridge without starting the bridge.
func newAMQPBridge(t *testing.T, m *mesh, b *amqpBroker, vars ...string) (*bridge.Bridge, *natstest.LogBuffer) {
	t.Helper()
	cfg := load(t, append(slices.Concat(fastVars, []string{"BRIDGE_URL=" + b.url.String()}), vars...)...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, buf := natstest.BufferLogger()
	br, err := bridge.New(m.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), log)
	if err != nil {
		t.Fatal(err)
	}
	return br, buf
}

// Events on ENMESHED arrive in a queue bound to the exchange, one message
// each with the data as body and the namespace as routing key; events no
// queue takes are retried, then dead-lettered as unroutable; the durable
// has nothing left pending.
func TestAMQPBridgeEndToEnd(t *testing.T) {
	b := newAMQPBroker(t)
	x := b.exchange("direct")
	ds := b.consume(b.queue("", nil, x, "transport.messageReceived"))
	m := newMesh(t)
	br, _ := startAMQPBridge(t, m, b, "BRIDGE_AMQP_EXCHANGE="+x)
	natstest.WaitFor(t, 10*time.Second, "the bridge ready", func() bool { return br.Ready(context.Background()) == nil })

	const n = 60
	sent := map[string]router.Event{}
	var unroutable []string
	for i := range n + 2 {
		if i%30 == 29 { // no queue is bound to this key
			unroutable = append(unroutable, m.event("consumption.incomingRequestReceived", fmt.Sprintf(`{"id":"REQ%d"}`, i)).ID)
			continue
		}
		e := m.event("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%d","isOwn":false}`, i))
		sent[e.ID] = e
	}
	for _, d := range amqpReceive(t, ds, len(sent), 20*time.Second) {
		e, ok := sent[d.MessageId]
		if !ok {
			t.Fatalf("message %q: no event sent, or a second copy", d.MessageId)
		}
		delete(sent, d.MessageId)
		if !bytes.Equal(d.Body, e.Data) || d.RoutingKey != e.Namespace || d.DeliveryMode != amqp.Persistent || d.Headers["ce-id"] != e.ID {
			t.Errorf("event %s: key %q, mode %d, body %q, headers %v", e.ID, d.RoutingKey, d.DeliveryMode, d.Body, d.Headers)
		}
	}

	var dls []consumers.DeadLetter
	natstest.WaitFor(t, 20*time.Second, "the unroutable events dead-lettered", func() bool {
		var err error
		dls, err = admin.ListDeadLetters(context.Background(), m.js, subjects, br.Name(), time.Time{})
		return err == nil && len(dls) == len(unroutable)
	})
	for _, dl := range dls {
		if !slices.Contains(unroutable, dl.Event.ID) || !strings.Contains(dl.Reason, "unroutable") || dl.Attempts != 3 {
			t.Errorf("dead letter: event %s, reason %q, %d attempts; want one of %v, unroutable, 3", dl.Event.ID, dl.Reason, dl.Attempts, unroutable)
		}
	}
	if info := settledInfo(t, m, br.Name()); info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("the durable: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
	}
	if err := br.Ready(context.Background()); err != nil {
		t.Errorf("Ready after unroutable events: %v", err)
	}
}

// A missing exchange: the bridge is not ready, logs the variable and
// fetches nothing; once the owner creates it, every event arrives.
func TestAMQPBridgeMissingExchange(t *testing.T) {
	b := newAMQPBroker(t)
	x := b.name("x") // created later
	m := newMesh(t)
	br, logs := startAMQPBridge(t, m, b, "BRIDGE_AMQP_EXCHANGE="+x)
	e := m.event("transport.messageReceived", `{"id":"MSG1"}`)
	natstest.WaitFor(t, 10*time.Second, "a log naming BRIDGE_AMQP_EXCHANGE", func() bool {
		return strings.Contains(logs.String(), "BRIDGE_AMQP_EXCHANGE")
	})
	if err := br.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "BRIDGE_AMQP_EXCHANGE") {
		t.Fatalf("Ready with the exchange missing: %v", err)
	}
	b.must("declare exchange", func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(x, "direct", true, false, false, false, nil)
	})
	t.Cleanup(func() { b.do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) }) })
	ds := b.consume(b.queue("", nil, x, "transport.messageReceived"))
	// The bridge checks every bridge.RecheckEvery.
	d := amqpReceive(t, ds, 1, 3*bridge.RecheckEvery)[0]
	if d.MessageId != e.ID {
		t.Fatalf("received %s, want %s", d.MessageId, e.ID)
	}
	if info := settledInfo(t, m, br.Name()); info.NumRedelivered != 0 {
		t.Errorf("%d redeliveries: the event was fetched while the exchange was missing", info.NumRedelivered)
	}
}
