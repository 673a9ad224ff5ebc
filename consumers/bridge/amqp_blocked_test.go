package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
)

// RabbitMQ's flow control, on a node of the test's own (an alarm on the
// machine's shared broker would block everyone's publishers): a memory
// alarm blocks the bridge's connection at its first publish. The bridge
// says why in Ready, logs it once, fetches nothing more, and holds the
// publishes the broker has not read past their deadline (BRIDGE_ACK_WAIT)
// and past what MAX_DELIVER attempts of it would take; once the alarm
// clears, every event arrives exactly once, none retried, none
// dead-lettered.
func TestAMQPBridgeBlockedByAlarm(t *testing.T) {
	amqpTestURL(t) // a test of the RabbitMQ suite: runs with EVENTMESH_TEST_AMQP only
	node := bridgetest.StartRabbitMQ(t)
	conn, err := amqp.Dial(node.URL.String())
	if err != nil {
		t.Fatalf("connect to the private node: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	b := &amqpBroker{t: t, url: node.URL, conn: conn}
	x := b.exchange("direct")
	q := b.queue("", nil, x, "transport.messageReceived")
	m := newMesh(t)
	const ackWait, maxDeliver = 2 * time.Second, 3
	vars := []string{"BRIDGE_AMQP_EXCHANGE=" + x, fmt.Sprintf("BRIDGE_ACK_WAIT=%s", ackWait),
		fmt.Sprintf("BRIDGE_MAX_DELIVER=%d", maxDeliver), "BRIDGE_DRAIN_TIMEOUT=1s"}
	br, logs := newAMQPBridge(t, m, b, vars...)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
			<-done
		}
	})
	natstest.WaitFor(t, 10*time.Second, "the bridge ready", func() bool { return br.Ready(context.Background()) == nil })
	sent := map[string]bool{}
	event := func(i int) {
		sent[m.event("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%d"}`, i)).ID] = true
	}
	event(0)
	natstest.WaitFor(t, 10*time.Second, "the first event in the queue", func() bool { return queued(t, b, q) == 1 })

	node.MemoryAlarm(t)
	// RabbitMQ blocks a connection when it publishes under the alarm: these
	// are in flight when it does.
	const inFlight, during = 8, 8
	// All at once, so that the bridge fetches them together.
	for i := range inFlight {
		e := m.eventAsync("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%d"}`, 1+i))
		sent[e.ID] = true
	}
	select {
	case <-m.js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("ENMESHED did not acknowledge the events within 10 s")
	}
	natstest.WaitFor(t, 20*time.Second, "Ready saying the broker blocks", func() bool {
		err := br.Ready(context.Background())
		return errors.Is(err, bridge.ErrBlocked) && strings.Contains(err.Error(), "low on memory")
	})
	for i := range during {
		event(1 + inFlight + i)
	}
	// The alarm lasts longer than the publishes' deadline times MAX_DELIVER:
	// publishes that gave up at their deadline would have been retried and
	// dead-lettered by the end. Throughout, the events fetched before the
	// block stay in flight, the rest (the block closed the gate at the
	// first publish) unfetched, and nothing fails.
	var before *jetstream.ConsumerInfo
	hold := time.Now().Add(maxDeliver*ackWait + 2*time.Second)
	for time.Now().Before(hold) {
		info, err := consumerInfo(m, br.Name())
		if err != nil {
			t.Fatal(err)
		}
		if before == nil {
			before = info
		}
		if info.NumPending < during || info.NumPending != before.NumPending || info.NumAckPending != before.NumAckPending ||
			info.NumRedelivered != 0 || strings.Contains(logs.String(), "attempt failed") {
			t.Fatalf("while the broker blocks: %d events unfetched (want %d, at least %d), %d in flight (want %d), %d redelivered; log:\n%s",
				info.NumPending, before.NumPending, during, info.NumAckPending, before.NumAckPending, info.NumRedelivered, logs.String())
		}
		time.Sleep(200 * time.Millisecond) // sampling a state that must hold for a while
	}
	t.Logf("while blocked: %d events in flight, %d unfetched", before.NumAckPending, before.NumPending)
	if n := queued(t, b, q); n != 1 {
		t.Fatalf("%d messages in the queue while the broker blocks; want 1, the one before the alarm", n)
	}

	node.ClearMemoryAlarm(t)
	natstest.WaitFor(t, 20*time.Second, "the bridge ready again", func() bool { return br.Ready(context.Background()) == nil })
	info := settledInfo(t, m, br.Name())
	if info.NumRedelivered != 0 {
		t.Errorf("%d events redelivered: blocked publishes were given up or handed back", info.NumRedelivered)
	}
	dls, err := admin.ListDeadLetters(context.Background(), m.js, subjects, br.Name(), time.Time{})
	if err != nil || len(dls) != 0 {
		t.Errorf("dead letters: %d (%v); want none", len(dls), err)
	}
	// Every event once: the durable settled, so every publish was confirmed.
	got := map[string]int{}
	b.must("get the queue's messages", func(ch *amqp.Channel) error {
		for {
			d, ok, err := ch.Get(q, true)
			if err != nil || !ok {
				return err
			}
			got[d.MessageId]++
		}
	})
	for id, n := range got {
		if !sent[id] || n != 1 {
			t.Errorf("message %s: %d copies (sent: %v)", id, n, sent[id])
		}
	}
	if len(got) != len(sent) {
		t.Errorf("%d distinct events in the queue, want %d", len(got), len(sent))
	}

	text := logs.String()
	if n := strings.Count(text, "broker blocks publishing: fetching nothing"); n != 1 || !strings.Contains(text, "level=WARN msg=\"broker blocks publishing") {
		t.Errorf("%d warnings of the block; want 1 at WARN. Log:\n%s", n, text)
	}
	if strings.Contains(text, node.URL.String()) {
		t.Errorf("the log shows BRIDGE_URL with its password:\n%s", text)
	}

	// Shutting down while the broker blocks: the held publish is given up
	// at the drain timeout, the connection closes without waiting for the
	// broker's answer, and the event stays on ENMESHED for the next process.
	node.MemoryAlarm(t)
	last := m.event("transport.messageReceived", `{"id":"LAST"}`)
	natstest.WaitFor(t, 20*time.Second, "Ready saying the broker blocks again", func() bool {
		return errors.Is(br.Ready(context.Background()), bridge.ErrBlocked)
	})
	stop()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the bridge stopped with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the bridge did not stop within 60 s while the broker blocks")
	}
	node.ClearMemoryAlarm(t)
	startAMQPBridge(t, m, b, vars...)
	natstest.WaitFor(t, 20*time.Second, "the last event in the queue", func() bool {
		found := false
		b.must("get the queue's messages", func(ch *amqp.Channel) error {
			for {
				d, ok, err := ch.Get(q, true)
				if err != nil || !ok {
					return err
				}
				found = found || d.MessageId == last.ID
			}
		})
		return found
	})
}

// queued is the number of messages ready in queue q.
func queued(t *testing.T, b *amqpBroker, q string) int {
	t.Helper()
	var n int
	b.must("inspect the queue", func(ch *amqp.Channel) error {
		qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		n = qi.Messages
		return err
	})
	return n
}
