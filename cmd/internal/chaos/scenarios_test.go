package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// The webhook consumer and the archiver are SIGKILLed in turn, again and
// again while events arrive, and restarted: events they held unacked come
// again after WEBHOOK_ACK_WAIT, so every event is delivered (some twice)
// and archived.
func TestKillConsumers(t *testing.T) {
	skipShort(t)
	events, rate, kills := size(300, 20000), size(150.0, 400.0), size(4, 40)
	srv := startNATS(t)
	m := startMesh(t, topology{natsURL: srv.ClientURL(), archiver: true})
	m.recv.SetDelay(30 * time.Millisecond) // deliveries in flight when the kill comes
	load := m.load(events, rate)
	load.Start(context.Background())
	for k := 1; k <= kills; k++ {
		atAccepted(t, load, k*events/(kills+1))
		victim := m.webhooks[0]
		if k%2 == 0 {
			victim = m.archiver
		}
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // down for a moment: events pile up
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stats := load.Wait()
	// And a graceful restart (SIGTERM: drain, then exit 0).
	if err := m.webhooks[0].Restart(); err != nil {
		t.Error(err)
	}
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	rep := m.settle(js, load, time.Minute)
	t.Logf("killed the webhook consumer %d times and the archiver %d times; load: %s", m.webhooks[0].Kills(), m.archiver.Kills(), stats)
	if rep.DeadLettered > 0 {
		t.Errorf("%d events dead-lettered: kills must cost redeliveries, not dead letters", rep.DeadLettered)
	}
	// No outcome record is lost: an event is acknowledged only once its
	// record is stored, so every event the receiver got (all of them
	// acknowledged now) has a delivered record, kills or not.
	if missing := withoutDelivered(t, js, m.recv.Deliveries()); len(missing) > 0 {
		t.Errorf("%d of %d delivered events have no %s outcome record of %s, e.g. %s", len(missing), len(m.recv.Deliveries()),
			consumers.ResultDelivered, durable, missing[0])
	}
}

// The bridge is SIGKILLed again and again while events arrive, and
// restarted, publishing into a Redis stream (EVENTMESH_TEST_REDIS): events
// it published but had not acknowledged come again after BRIDGE_ACK_WAIT,
// so every event arrives, some twice (the report counts them).
func TestKillBridge(t *testing.T) {
	skipShort(t)
	killBridge(t, redisBridge(t, brokerURL(t, "EVENTMESH_TEST_REDIS", "redis://127.0.0.1:6379/0")), "entries in the Redis stream")
}

// TestKillBridge with RabbitMQ (EVENTMESH_TEST_AMQP): an exchange and a
// queue of the test's own; the bridge acknowledges an event once the
// broker confirmed its message.
func TestKillBridgeAMQP(t *testing.T) {
	skipShort(t)
	killBridge(t, amqpBridge(t, brokerURL(t, "EVENTMESH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")), "messages in the queue")
}

// TestKillBridge with an MQTT broker (EVENTMESH_TEST_MQTT) at QoS 1: a
// topic prefix of the test's own; the bridge acknowledges an event after
// the broker's PUBACK.
func TestKillBridgeMQTT(t *testing.T) {
	skipShort(t)
	killBridge(t, mqttBridge(t, brokerURL(t, "EVENTMESH_TEST_MQTT", "mqtt://127.0.0.1:1883")), "messages at the subscriber")
}

// killBridge runs the mesh with the bridge publishing into target, kills
// the bridge again and again while events arrive, restarts it, and
// accounts for every event at target's sink; extra names its duplicates
// in the log.
func killBridge(t *testing.T, target *bridgeTarget, extra string) {
	t.Helper()
	events, rate, kills := size(300, 20000), size(150.0, 400.0), size(4, 40)
	srv := startNATS(t)
	m := startMesh(t, topology{natsURL: srv.ClientURL(), bridge: target})
	load := m.load(events, rate)
	load.Start(context.Background())
	for k := 1; k <= kills; k++ {
		atAccepted(t, load, k*events/(kills+1))
		if err := m.bridge.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // down for a moment: events pile up
		if err := m.bridge.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stats := load.Wait()
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	rep := m.settle(js, load, time.Minute)
	t.Logf("killed the bridge %d times; %d events arrived twice or more (%d extra %s); load: %s",
		m.bridge.Kills(), rep.DuplicatedEvents, rep.Duplicates, extra, stats)
	if rep.DeadLettered > 0 {
		t.Errorf("%d events dead-lettered: kills must cost redeliveries, not dead letters", rep.DeadLettered)
	}
	if m.bridge.Kills() != kills {
		t.Errorf("the bridge was killed %d times, want %d", m.bridge.Kills(), kills)
	}
	// A consumer that stopped reading shows as lost events; its error says why.
	if err := target.sink.Err(); err != nil {
		t.Logf("the broker-side consumer's last error: %v", err)
	}
}

// withoutDelivered returns the ids of delivered that have no delivered
// outcome record of the webhook durable in ENMESHED_OUTCOMES.
func withoutDelivered(t *testing.T, js jetstream.JetStream, delivered map[string]int) []string {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, streams.Outcomes)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	info := st.CachedInfo()
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		os, err := consumers.DecodeOutcomes(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range os {
			if o.Consumer == durable && o.Result == consumers.ResultDelivered {
				recorded[o.EventID] = true
			}
		}
	}
	var missing []string
	for id := range delivered {
		if !recorded[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return missing
}

// The nats-server stops (cleanly, store flushed) in the middle of the load
// and comes back on the same store and port. While it is down ingest
// answers 503 and the load generator retries; the producer and consumers
// reconnect on their own.
func TestNATSRestart(t *testing.T) {
	skipShort(t)
	events, rate, restarts := size(300, 15000), size(150.0, 300.0), size(1, 8)
	down := size(2500*time.Millisecond, 3*time.Second)
	cfg := natstest.Config(t)
	cfg.Sync = "always"
	cfg.Listen = freeAddr(t) // fixed, so clients find the server again
	srv := natstest.StartWith(t, cfg)
	url := srv.ClientURL()
	// Ingest gives up on a publish after 2 attempts of 500ms: it answers
	// 503 well within the outage.
	m := startMesh(t, topology{natsURL: url, archiver: true, producerEnv: []string{"PUBLISH_TIMEOUT=500ms", "PUBLISH_ATTEMPTS=2"}})
	load := m.load(events, rate)
	load.Start(context.Background())
	for k := 1; k <= restarts; k++ {
		atAccepted(t, load, k*events/(restarts+1))
		before := load.Stats()
		srv.Shutdown()
		time.Sleep(down)
		during := load.Stats()
		srv = natstest.StartWith(t, cfg)
		t.Logf("restart %d: server down %s after %d acks; meanwhile %d acks, %d 503s retried, %d connection errors retried",
			k, down, before.Accepted, during.Accepted-before.Accepted, during.Retried5xx-before.Retried5xx, during.RetriedNet-before.RetriedNet)
	}
	stats := load.Wait()
	if stats.Status[503] == 0 {
		t.Errorf("ingest never answered 503 while the server was down: %s", stats)
	}
	js := natstest.JetStream(t, natstest.Connect(t, url))
	rep := m.settle(js, load, time.Minute)
	t.Logf("load: %s", stats)
	if rep.DeadLettered > 0 {
		t.Errorf("%d events dead-lettered", rep.DeadLettered)
	}
}

// The receiver fails 30 % of requests at random, answers slowly, and goes
// away for a while (connection refused; in the soak also 503 outages).
// JetStream's retry schedule and the circuit breaker carry every event
// through within WEBHOOK_MAX_DELIVER.
func TestReceiverFaults(t *testing.T) {
	skipShort(t)
	events, rate, outages := size(300, 15000), size(150.0, 300.0), size(1, 10)
	srv := startNATS(t)
	// The soak's outages come every few seconds: an unlucky event may meet
	// two of them, and breaker-open releases count as deliveries too.
	m := startMesh(t, topology{natsURL: srv.ClientURL(), webhookEnv: []string{"WEBHOOK_MAX_DELIVER=" + size("20", "40")}})
	m.recv.SetErrorRate(0.3)
	m.recv.SetDelay(2 * time.Millisecond)
	load := m.load(events, rate)
	load.Start(context.Background())
	for k := 1; k <= outages; k++ {
		atAccepted(t, load, k*events/(outages+1))
		mode := harness.OutageRefuse
		if k%2 == 0 {
			mode = harness.OutageUnavailable
		}
		if err := m.recv.Outage(mode, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		natstest.WaitFor(t, 10*time.Second, "the receiver back up", func() bool { return !m.recv.IsDown() })
		if err := m.recv.Err(); err != nil {
			t.Fatal(err)
		}
	}
	load.Wait()
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	rep := m.settle(js, load, 2*time.Minute)
	s := m.recv.Stats()
	t.Logf("receiver: %d requests, %d failed on purpose (%.0f %% of those answered while up), %d outages",
		s.Requests, s.Injected500, 100*float64(s.Injected500)/float64(max(s.Injected500+s.Delivered, 1)), s.OutageWindows)
	if rep.DeadLettered > 0 {
		t.Errorf("%d events dead-lettered: the retry budget (WEBHOOK_MAX_DELIVER=%s, 1s apart after the first few) should outlast 2s outages", rep.DeadLettered, size("20", "40"))
	}
}

// A few poison events are always answered 400: each is dead-lettered with
// the receiver's answer as the reason, after one attempt, and every other
// event is delivered.
func TestPoisonEvent(t *testing.T) {
	skipShort(t)
	events, rate := size(300, 15000), size(150.0, 300.0)
	srv := startNATS(t)
	m := startMesh(t, topology{natsURL: srv.ClientURL()})
	load := m.load(events, rate)
	poison := map[string]bool{}
	for i := 7; i < events; i += size(97, 997) {
		poison[load.Event(i).ID()] = true
	}
	m.recv.SetPoison(func(id string) bool { return poison[id] })
	load.Start(context.Background())
	load.Wait()
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	rep := m.settle(js, load, time.Minute)
	var want []string
	for id := range poison {
		want = append(want, id)
	}
	slices.Sort(want)
	if !slices.Equal(rep.DeadIDs, want) {
		t.Errorf("dead-lettered %v, want the poison events %v", rep.DeadIDs, want)
	}
	for reason := range rep.DeadReasons {
		if !strings.Contains(reason, "400") {
			t.Errorf("dead-letter reason %q does not give the receiver's 400", reason)
		}
	}
	if rep.Delivered != rep.Accepted-len(poison) {
		t.Errorf("delivered %d of %d non-poison events", rep.Delivered, rep.Accepted-len(poison))
	}
	if s := m.recv.Stats(); s.Poisoned != len(poison) {
		t.Errorf("poison events were tried %d times, want once each (%d): a 400 is permanent", s.Poisoned, len(poison))
	}
}

// In a 3-node cluster (STREAM_REPLICAS=3, WEBHOOK_REPLICAS=3), the node
// leading ENMESHED is killed in the middle of the load. The stream and the
// durables elect new leaders on the survivors; nothing acknowledged is
// lost.
func TestClusterLeaderKilled(t *testing.T) {
	skipShort(t)
	events, rate := size(300, 15000), size(150.0, 300.0)
	c := natstest.StartCluster(t, 3)
	m := startMesh(t, topology{natsURL: c.URLs(), streamReplicas: 3, replicas: 3, archiver: true})
	load := m.load(events, rate)
	load.Start(context.Background())
	atAccepted(t, load, events/3)
	var leader *server.Server
	natstest.WaitFor(t, 30*time.Second, "a stream leader", func() bool { leader = c.StreamLeader(streams.Events); return leader != nil })
	// The consumer runtime's own streams (dead letters, advisories,
	// outcomes) have the consumers' replicas: say where their leaders were.
	placement := map[string]string{}
	for _, s := range c.Servers {
		for _, name := range []string{streams.DLQ, streams.Advisories, streams.Outcomes} {
			if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, name) {
				placement[name] = s.Name()
			}
		}
	}
	killAt := time.Now()
	c.Kill(leader)
	var elected *server.Server // kept: a second election may follow at once
	natstest.WaitFor(t, 30*time.Second, "a new stream leader", func() bool { elected = c.StreamLeader(streams.Events); return elected != nil })
	t.Logf("killed %s, leader of %s, after %d acks; new leader %s after %s; side stream leaders were on %v",
		leader.Name(), streams.Events, load.Accepted(), elected.Name(), time.Since(killAt).Round(time.Millisecond), placement)
	// The soak goes on moving the leadership between the survivors.
	nc := natstest.Connect(t, c.Alive()[0].ClientURL())
	moved := 0
	for k := 1; k <= size(0, 10); k++ {
		atAccepted(t, load, events/3+k*(events*2/3)/12)
		old := c.StreamLeader(streams.Events)
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+streams.Events, nil, 5*time.Second); err != nil {
			t.Logf("stepdown %d: %v", k, err)
			continue
		}
		natstest.WaitFor(t, 30*time.Second, "a new stream leader", func() bool {
			l := c.StreamLeader(streams.Events)
			return l != nil && l != old
		})
		moved++
	}
	if moved > 0 {
		t.Logf("then moved the leadership of %s %d times between the survivors", streams.Events, moved)
	}
	stats := load.Wait()
	js := natstest.JetStream(t, natstest.Connect(t, c.Alive()[0].ClientURL()))
	rep := m.settle(js, load, 2*time.Minute)
	t.Logf("load: %s", stats)
	if rep.StoredTwice > 0 {
		t.Errorf("%d events stored twice despite their Nats-Msg-Id", rep.StoredTwice)
	}
}

// Two webhook processes share one durable and split the events; one is
// SIGKILLed (in the soak: each in turn, again and again, and restarted).
// The other takes over, and what the dead one held unacked is redelivered
// after WEBHOOK_ACK_WAIT.
func TestTwoWebhooksOneKilled(t *testing.T) {
	skipShort(t)
	events, rate, kills := size(300, 15000), size(150.0, 300.0), size(1, 20)
	srv := startNATS(t)
	m := startMesh(t, topology{natsURL: srv.ClientURL(), webhooks: []string{"a", "b"}})
	m.recv.SetDelay(30 * time.Millisecond) // deliveries in flight when the kill comes
	load := m.load(events, rate)
	load.Start(context.Background())
	for k := 1; k <= kills; k++ {
		atAccepted(t, load, k*events/(kills+1))
		victim := m.webhooks[(k-1)%2]
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		if soak() {
			time.Sleep(500 * time.Millisecond)
			if err := victim.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	load.Wait()
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	m.settle(js, load, time.Minute)
	per := m.recv.ByHeader()
	t.Logf("deliveries per process: %v", per)
	if per["a"] == 0 || per["b"] == 0 {
		t.Errorf("the two processes did not split the work: %v", per)
	}
}

// The stream is small (STREAM_MAX_BYTES=1MiB) and the load larger: once
// it is full, ingest answers 503 (DiscardNew) instead of dropping stored
// events. Everything stored stays (first sequence 1, no gaps) and is
// delivered and archived.
func TestStreamFull(t *testing.T) {
	skipShort(t)
	// About 4 KB per event: some 250 fit in 1 MiB (the soak: 2,000 in 8 MiB).
	events, maxBytes := size(400, 3000), size("1MiB", "8MiB")
	srv := startNATS(t)
	m := startMesh(t, topology{natsURL: srv.ClientURL(), maxBytes: maxBytes, archiver: true})
	run := "StreamFull"
	load := &harness.LoadGen{URL: m.ingest, Events: events, Clients: 8,
		Event: func(i int) harness.Event { return harness.MessageReceived(run, i, 3000) },
		// A full stream stays full: a second attempt shows it, more would
		// only wait.
		MaxAttempts: 2, MinBackoff: 20 * time.Millisecond}
	load.Start(context.Background())
	stats := load.Wait()
	if stats.Status[503] == 0 || stats.GaveUp == 0 {
		t.Fatalf("the stream never filled up: %s", stats)
	}
	if len(stats.Errors) > 0 {
		t.Logf("a refused event: %s", stats.Errors[0])
		if !strings.Contains(stats.Errors[0], "unavailable") {
			t.Errorf("a refusal without the error code unavailable: %s", stats.Errors[0])
		}
	}
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx := context.Background()
	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	full := st.CachedInfo().State
	// Still full a moment later: one more event is refused and nothing moves.
	more := &harness.LoadGen{URL: m.ingest, Events: 1, MaxAttempts: 1,
		Event: func(int) harness.Event { return harness.MessageReceived(run+"more", 0, 3000) }}
	more.Start(ctx)
	if s := more.Wait(); s.Status[503] != 1 {
		t.Errorf("another event into the full stream: %s", s)
	}
	rep := m.settle(js, load, time.Minute)
	after := rep.Stream
	if after.FirstSeq != 1 || after.Msgs != after.LastSeq || after.Msgs != full.Msgs || after.LastSeq != full.LastSeq {
		t.Errorf("stored events moved: full at %+v, after delivery %+v (want first seq 1, no gaps, nothing dropped)", full, after)
	}
	if rep.Stored != rep.Accepted || uint64(rep.Accepted+rep.StoredUnacked) != after.Msgs {
		t.Errorf("%d accepted, %d of them stored, %d stored unacknowledged, stream holds %d", rep.Accepted, rep.Stored, rep.StoredUnacked, after.Msgs)
	}
	t.Logf("stream full at %d events, %s of %s", full.Msgs, fmt.Sprint(full.Bytes), maxBytes)
}
