package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The benchmarks run the bridge as cmd/bridge wires it (bridge.New with
// the AMQP publisher) on an embedded server with NATS_SYNC=2m, delivering
// to a classic durable queue on the RabbitMQ of EVENTMESH_TEST_AMQP, which
// a consumer of the benchmark drains. BenchmarkAMQPDeliveryRate compares
// the bridge with a bare amqp091 client in the same run. Run them with
//
//	go test ./consumers/bridge -run '^$' -bench AMQP -benchtime 3x
//
// Rates are medians over the rounds; latency percentiles are over every
// event of every round.

const (
	amqpBenchEvents      = 10_000 // events per round of BenchmarkAMQPDeliveryRate
	amqpBenchConcurrency = 16     // BRIDGE_CONCURRENCY's default: the bridge's confirms in flight, and the bare client's
	amqpLatencyRate      = 1_000  // events per second in BenchmarkAMQPLatency
	amqpLatencyFor       = 3 * time.Second
	amqpBenchNamespace   = "transport.messageReceived"
)

var amqpBenchRound atomic.Int64

// amqpPayload is a Connector-shaped messageReceived data of about 1 KB.
func amqpPayload(id string) []byte {
	return fmt.Appendf(nil, `{"id":"MSG%s","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"%s","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX","recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i","relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`,
		id, strings.Repeat("x", 420))
}

func amqpBenchEvent(id string) router.Event {
	return router.Event{ID: id, Namespace: amqpBenchNamespace, Source: router.DefaultSource, Time: time.Now(),
		Origin: router.OriginWebhook, Data: amqpPayload(id)}
}

// amqpTally counts one round's messages at the queue consumer and closes
// done when want have arrived; with at set it records when each message id
// first arrived.
type amqpTally struct {
	want  int64
	count atomic.Int64
	done  chan struct{}
	mu    sync.Mutex
	at    map[string]time.Time
}

func (t *amqpTally) add(id string, arrived time.Time) {
	if t.at != nil {
		t.mu.Lock()
		_, seen := t.at[id]
		if !seen {
			t.at[id] = arrived
		}
		t.mu.Unlock()
		if seen {
			return
		}
	}
	if t.count.Add(1) == t.want {
		close(t.done)
	}
}

func (t *amqpTally) wait(b *testing.B, timeout time.Duration) {
	select {
	case <-t.done:
	case <-time.After(timeout):
		b.Fatalf("the queue got %d of %d messages within %s", t.count.Load(), t.want, timeout)
	}
}

// amqpBenchEnv is the mesh, the broker's exchange and queue, and the queue's
// consumer.
type amqpBenchEnv struct {
	js       jetstream.JetStream
	broker   *amqpBroker
	exchange string
	round    atomic.Pointer[amqpTally]
	metrics  *consumers.Metrics
}

func newAMQPBenchEnv(b *testing.B) *amqpBenchEnv {
	broker := newAMQPBroker(b)
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m" })
	nc, err := srv.Connect() // in-process, as cmd/eventmesh connects to its embedded server
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	log := natstest.Logger(b)
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		b.Fatal(err)
	}
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 256 << 20, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), log); err != nil {
		b.Fatal(err)
	}
	e := &amqpBenchEnv{js: js, broker: broker, exchange: broker.exchange("direct"), metrics: consumers.NewMetrics(prometheus.NewRegistry())}
	ds := broker.consume(broker.queue("", nil, e.exchange, amqpBenchNamespace))
	go func() {
		for d := range ds {
			arrived := time.Now()
			if t := e.round.Load(); t != nil {
				t.add(d.MessageId, arrived)
			}
		}
	}()
	return e
}

func (e *amqpBenchEnv) arm(want int, record bool) *amqpTally {
	t := &amqpTally{want: int64(want), done: make(chan struct{})}
	if record {
		t.at = make(map[string]time.Time, want)
	}
	e.round.Store(t)
	return t
}

// run starts the bridge on a durable of its own starting at start; the
// returned function stops it and deletes its durables.
func (e *amqpBenchEnv) run(b *testing.B, start string, concurrency int) (*bridge.Bridge, func()) {
	name := fmt.Sprintf("bench-%d", amqpBenchRound.Add(1))
	vars := map[string]string{"BRIDGE_URL": e.broker.url.String(), "BRIDGE_AMQP_EXCHANGE": e.exchange,
		"BRIDGE_DURABLE": name, "BRIDGE_START": start, "BRIDGE_CONCURRENCY": fmt.Sprint(concurrency)}
	cfg, err := env.ParseAsWithOptions[bridge.Config](env.Options{Environment: vars})
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		b.Fatal(err)
	}
	br, err := bridge.New(e.js, subjects, cfg, e.metrics, natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("bridge: %v", err)
			}
			for stream, durable := range map[string]string{streams.Events: name, streams.Advisories: name + "-advisories"} {
				if err := e.js.DeleteConsumer(context.Background(), stream, durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
					b.Errorf("delete durable %s: %v", durable, err)
				}
			}
		})
	}
	b.Cleanup(stop)
	return br, stop
}

// BenchmarkAMQPDeliveryRate: the bridge draining a backlog of 10,000
// events (a fresh durable starting at "all" each round, 16 in flight) into
// a classic durable queue, against a bare amqp091 client: one channel in
// confirm mode, 16 goroutines publishing the same bodies and headers
// mandatory and persistent, each waiting for its confirm. The bridge's time
// runs from starting it (durable creation and connecting included) to the
// queue's last message. publisher-ratio is the AMQP publisher alone
// (bridge.Open, 16 goroutines calling Publish) against the same bare
// client: the part of the gap that is not the runtime's. The order
// alternates between rounds.
func BenchmarkAMQPDeliveryRate(b *testing.B) {
	e := newAMQPBenchEnv(b)
	r := amqpBenchRound.Add(1)
	events := make([]router.Event, amqpBenchEvents)
	pubs := make([]amqp.Publishing, amqpBenchEvents)
	futs := make([]jetstream.PubAckFuture, 0, len(events))
	for i := range events {
		events[i] = amqpBenchEvent(fmt.Sprintf("rate-%d-%06d", r, i))
		h := amqp.Table{}
		for _, f := range bridge.Metadata(events[i]) {
			h[f.Name] = f.Value
		}
		pubs[i] = amqp.Publishing{Headers: h, DeliveryMode: amqp.Persistent, MessageId: events[i].ID,
			ContentType: router.DataContentType, Timestamp: events[i].Time, Body: events[i].Data}
		f, err := e.js.PublishMsgAsync(events[i].Msg(subjects), jetstream.WithStallWait(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	conn, err := amqp.Dial(e.broker.url.String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		b.Fatal(err)
	}

	barePublish := func() float64 {
		t := e.arm(amqpBenchEvents, false)
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Value
		start := time.Now()
		for range amqpBenchConcurrency {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < amqpBenchEvents; i = int(next.Add(1)) - 1 {
					dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), e.exchange, amqpBenchNamespace, true, false, pubs[i])
					if err == nil && !dc.Wait() {
						err = errors.New("negative confirm")
					}
					if err != nil {
						failed.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			b.Fatal(err)
		}
		t.wait(b, time.Minute)
		return amqpBenchEvents / time.Since(start).Seconds()
	}
	pub := openTestAMQP(b, e.broker.url, bridge.AMQPConfig{Exchange: e.exchange}, bridge.FormatEnmeshed, nil)
	publisherAlone := func() float64 {
		t := e.arm(amqpBenchEvents, false)
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Value
		for range amqpBenchConcurrency {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < amqpBenchEvents; i = int(next.Add(1)) - 1 {
					if err := pub.Publish(context.Background(), amqpMessage(events[i])); err != nil {
						failed.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			b.Fatal(err)
		}
		t.wait(b, time.Minute)
		return amqpBenchEvents / time.Since(start).Seconds()
	}
	bridgeDrain := func() float64 {
		t := e.arm(amqpBenchEvents, false)
		start := time.Now()
		_, stop := e.run(b, "all", amqpBenchConcurrency)
		t.wait(b, 5*time.Minute)
		rate := amqpBenchEvents / time.Since(start).Seconds()
		stop()
		return rate
	}

	// The order alternates between rounds, so that neither side always
	// runs on a warmer broker.
	var ours, alone, bare []float64
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			bare = append(bare, barePublish())
			alone = append(alone, publisherAlone())
			ours = append(ours, bridgeDrain())
		} else {
			ours = append(ours, bridgeDrain())
			alone = append(alone, publisherAlone())
			bare = append(bare, barePublish())
		}
	}
	b.StopTimer()
	b.ReportMetric(amqpMedian(bare), "bare-msgs/s")
	b.ReportMetric(amqpMedian(ours), "bridge-events/s")
	b.ReportMetric(amqpMedian(ours)/amqpMedian(bare), "ratio")
	b.ReportMetric(amqpMedian(alone)/amqpMedian(bare), "publisher-ratio")
}

// BenchmarkAMQPLatency: events published to ENMESHED at a steady 1,000/s
// for 3 s to a running bridge; an event's latency runs from JetStream's
// ack of its publish to its arrival at the queue's consumer. For scale, in
// the same round, a bare amqp091 client publishes as many messages at the
// same rate straight to the exchange (latency from the publish call to the
// queue's consumer): what the broker and the machine alone take. It runs
// with BRIDGE_CONCURRENCY at its default, 16, and at 64: each of those
// publishes waits for its confirm, and a confirm of a persistent message
// waits for the broker's disk.
func BenchmarkAMQPLatency(b *testing.B) {
	for _, c := range []int{amqpBenchConcurrency, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) { amqpLatency(b, c) })
	}
}

func amqpLatency(b *testing.B, concurrency int) {
	e := newAMQPBenchEnv(b)
	br, stop := e.run(b, "new", concurrency)
	natstest.WaitFor(b, 10*time.Second, "the bridge ready", func() bool { return br.Ready(context.Background()) == nil })
	n := int(amqpLatencyRate * amqpLatencyFor.Seconds())
	conn, err := amqp.Dial(e.broker.url.String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		b.Fatal(err)
	}

	var lat, bare []time.Duration
	b.ResetTimer()
	for range b.N {
		r := amqpBenchRound.Add(1)
		lat = append(lat, e.steady(b, n, func(i int) (string, error) {
			ev := amqpBenchEvent(fmt.Sprintf("lat-%d-%05d", r, i))
			_, err := e.js.PublishMsg(context.Background(), ev.Msg(subjects))
			return ev.ID, err
		})...)
		bare = append(bare, e.steady(b, n, func(i int) (string, error) {
			id := fmt.Sprintf("bare-%d-%05d", r, i)
			_, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), e.exchange, amqpBenchNamespace, true, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: id, ContentType: router.DataContentType, Body: amqpPayload(id)})
			return id, err
		})...)
	}
	b.StopTimer()
	stop()
	slices.Sort(lat)
	slices.Sort(bare)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(amqpQuantile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(amqpQuantile(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(amqpQuantile(bare, 0.99)), "bare-p99-ms")
}

// steady calls publish for n messages at amqpLatencyRate and returns each
// one's time from publish's return to its arrival at the queue's consumer.
func (e *amqpBenchEnv) steady(b *testing.B, n int, publish func(i int) (id string, err error)) []time.Duration {
	interval := time.Second / amqpLatencyRate
	t := e.arm(n, true)
	ids := make([]string, 0, n)
	sent := make([]time.Time, 0, n)
	// A late tick publishes every message that is due, so the rate holds
	// on average even when the scheduler is busy.
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for i := 0; i < n; {
		<-tick.C
		for due := min(n, int(time.Since(start)/interval)); i < due; i++ {
			id, err := publish(i)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
			sent = append(sent, time.Now())
		}
	}
	t.wait(b, time.Minute)
	t.mu.Lock()
	defer t.mu.Unlock()
	lat := make([]time.Duration, 0, n)
	for i, id := range ids {
		lat = append(lat, t.at[id].Sub(sent[i]))
	}
	return lat
}

func amqpMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// amqpQuantile returns the q-quantile of sorted (nearest rank).
func amqpQuantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
