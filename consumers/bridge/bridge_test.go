package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

var subjects = router.MustSubjects("enmeshed")

// mesh is a JetStream server with ENMESHED on a free port.
type mesh struct {
	t  *testing.T
	js jetstream.JetStream
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return &mesh{t: t, js: js}
}

// event publishes an event of namespace ns with data to ENMESHED.
func (m *mesh) event(ns, data string) router.Event {
	m.t.Helper()
	e := newEvent(ns, data)
	if _, err := m.js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
		m.t.Fatal(err)
	}
	return e
}

// eventAsync is event without waiting for ENMESHED's acknowledgement
// (js.PublishAsyncComplete waits for it).
func (m *mesh) eventAsync(ns, data string) router.Event {
	m.t.Helper()
	e := newEvent(ns, data)
	if _, err := m.js.PublishMsgAsync(e.Msg(subjects)); err != nil {
		m.t.Fatal(err)
	}
	return e
}

func newEvent(ns, data string) router.Event {
	e := router.Event{Namespace: ns, Source: "test", Time: time.Now().UTC(), Origin: router.OriginWebhook, Data: []byte(data)}
	e.ID = router.HashID(e.Source, e.Namespace, router.RandomKey())
	return e
}

// run starts b and waits until its durable exists; it stops with the test.
func run(t *testing.T, b *bridge.Bridge) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	})
	natstest.WaitFor(t, 10*time.Second, "the durable", func() bool { return b.DurableReady(ctx) == nil })
}

// fakePublisher is a Publisher in memory. It serves the tests of New's
// wiring that a broker cannot show: the Message the handler builds (its
// Key reaches no broker's wire), that a failed check holds fetching before
// the first publish, that a publish refused for a missing destination
// checks at once while the periodic check is an hour away. The real
// errors (unroutable, rejected credentials, a missing exchange) are shown
// end to end with real brokers (amqp_e2e_test.go, bridge_e2e_test.go).
type fakePublisher struct {
	mu       sync.Mutex
	got      []bridge.Message
	readyErr error
	pubErr   error
	calls    atomic.Int64
	closed   atomic.Bool
}

func (p *fakePublisher) Publish(_ context.Context, m bridge.Message) error {
	p.calls.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pubErr != nil {
		return p.pubErr
	}
	p.got = append(p.got, m)
	return nil
}

func (p *fakePublisher) Ready(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readyErr
}

func (p *fakePublisher) Close() error { p.closed.Store(true); return nil }

func (p *fakePublisher) set(readyErr, pubErr error) {
	p.mu.Lock()
	p.readyErr, p.pubErr = readyErr, pubErr
	p.mu.Unlock()
}

func (p *fakePublisher) messages() []bridge.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// fastVars are a bridge's settings for tests: from the first event, a fast
// retry schedule.
var fastVars = []string{"BRIDGE_URL=amqp://127.0.0.1:1/", "BRIDGE_START=all", "BRIDGE_BACKOFF=20ms", "BRIDGE_MAX_DELIVER=3", "BRIDGE_ACK_WAIT=5s"}

func newFake(t *testing.T, m *mesh, p bridge.Publisher, every time.Duration, vars ...string) (*bridge.Bridge, *natstest.LogBuffer, bridge.Config) {
	t.Helper()
	cfg := load(t, append(slices.Clone(fastVars), vars...)...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, buf := natstest.BufferLogger()
	b, err := bridge.NewWithPublisher(m.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), log, p, every)
	if err != nil {
		t.Fatal(err)
	}
	return b, buf, cfg
}

func TestBridgeHandsEventsToThePublisher(t *testing.T) {
	m := newMesh(t)
	p := &fakePublisher{}
	b, _, _ := newFake(t, m, p, time.Hour, "BRIDGE_TRIGGERS=transport.*")
	run(t, b)
	withPeer := m.event("transport.messageReceived", `{"id":"MSG1","isOwn":false,"createdBy":"did:e:peer-a"}`)
	noData := m.event("transport.messageSent", "")
	m.event("consumption.incomingRequestReceived", `{"id":"REQ1"}`) // outside BRIDGE_TRIGGERS
	natstest.WaitFor(t, 10*time.Second, "2 messages", func() bool { return len(p.messages()) >= 2 })
	got := map[string]bridge.Message{}
	for _, msg := range p.messages() {
		got[msg.Event.ID] = msg
	}
	if g := got[withPeer.ID]; string(g.Body) != string(withPeer.Data) || g.Key() != "did:e:peer-a" || g.Event.Namespace != withPeer.Namespace {
		t.Errorf("event with data: body %s key %q namespace %q; want the data, did:e:peer-a, %s", g.Body, g.Key(), g.Event.Namespace, withPeer.Namespace)
	}
	if g := got[noData.ID]; string(g.Body) != "{}" || g.Key() != "" {
		t.Errorf("an event without data: body %q key %q; want {} (as the Connector sends), no key", g.Body, g.Key())
	}
	if err := b.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}
	info := settledInfo(t, m, b.Name())
	if info.NumAckPending != 0 || info.NumPending != 0 || len(p.messages()) != 2 {
		t.Errorf("after settling: %d pending, %d unacknowledged, %d published; want 0, 0, 2 (the consumption event is not bridged)",
			info.NumPending, info.NumAckPending, len(p.messages()))
	}
}

// settledInfo waits until the durable has nothing pending or unacknowledged.
func settledInfo(t *testing.T, m *mesh, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	natstest.WaitFor(t, 15*time.Second, "the durable settled", func() bool {
		var err error
		info, err = consumerInfo(m, durable)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	return info
}

// consumerInfo is the durable's state on the server.
func consumerInfo(m *mesh, durable string) (*jetstream.ConsumerInfo, error) {
	c, err := m.js.Consumer(context.Background(), streams.Events, durable)
	if err != nil {
		return nil, err
	}
	return c.Info(context.Background())
}

func TestBridgeNotReadyFetchesNothing(t *testing.T) {
	m := newMesh(t)
	missing := fmt.Errorf("BRIDGE_AMQP_EXCHANGE %q does not exist: %w", "gone", bridge.ErrMissingDestination)
	p := &fakePublisher{readyErr: missing}
	b, logs, _ := newFake(t, m, p, 100*time.Millisecond)
	run(t, b)
	e := m.event("transport.messageReceived", `{"id":"MSG1"}`)
	natstest.WaitFor(t, 10*time.Second, "the log naming the variable", func() bool {
		return strings.Contains(logs.String(), "broker not ready") && strings.Contains(logs.String(), "BRIDGE_AMQP_EXCHANGE")
	})
	if err := b.Ready(context.Background()); err == nil || !errors.Is(err, bridge.ErrMissingDestination) {
		t.Errorf("Ready while the exchange is missing: %v", err)
	}
	// Nothing is fetched: that needs a window, a few rechecks long.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if n := p.calls.Load(); n != 0 {
			t.Fatalf("%d publishes while not ready", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := m.js.Consumer(context.Background(), streams.Events, b.Name())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(context.Background()); err != nil || info.Delivered.Consumer != 0 {
		t.Fatalf("delivered while not ready: %+v, %v", info, err)
	}
	p.set(nil, nil)
	natstest.WaitFor(t, 10*time.Second, "the event, once ready", func() bool { return len(p.messages()) == 1 })
	if got := p.messages()[0].Event.ID; got != e.ID {
		t.Errorf("published %s, want %s", got, e.ID)
	}
	if err := b.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

// A publish refused for a missing destination checks the broker at once:
// with the periodic check an hour away, only that shows the bridge unready.
func TestBridgeMissingDestinationOnPublishRechecks(t *testing.T) {
	m := newMesh(t)
	p := &fakePublisher{}
	b, logs, _ := newFake(t, m, p, time.Hour)
	run(t, b)
	natstest.WaitFor(t, 10*time.Second, "ready", func() bool { return b.Ready(context.Background()) == nil })
	missing := fmt.Errorf("BRIDGE_AMQP_EXCHANGE %q: %w", "gone", bridge.ErrMissingDestination)
	p.set(missing, missing)
	m.event("transport.messageReceived", `{"id":"MSG1"}`)
	natstest.WaitFor(t, 10*time.Second, "not ready after the refused publish", func() bool {
		return b.Ready(context.Background()) != nil && strings.Contains(logs.String(), "BRIDGE_AMQP_EXCHANGE")
	})
	if err := b.DurableReady(context.Background()); err != nil {
		t.Errorf("the durable's readiness follows the broker's: %v", err)
	}
}
