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

	envparse "github.com/caarlos0/env/v11"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// The delivery-rate benchmarks of Pub/Sub and Kafka (BenchmarkKafkaDeliveryRate,
// BenchmarkPubSubDeliveryRate with -tags pubsub): the bridge as cmd/bridge
// wires it (bridge.New, BRIDGE_CONCURRENCY 16) draining a backlog of
// pkBenchEvents events preloaded into ENMESHED (NATS_SYNC=2m, in-process
// connection), timed from starting it to its durable having every event
// acknowledged (each acknowledged after the broker's confirm); against a
// bare client of the same library publishing the same bodies, keys and
// headers with the same confirms, 16 goroutines each waiting for its own;
// and the publisher alone (bridge.Open, 16 goroutines calling Publish), to
// tell the runtime's share of a gap from the publisher's. The order of the
// three alternates between rounds; each round reports its rates and the
// ratios (target: bridge ≥ 0.5 × bare). The brokers are the in-process
// fakes of the tests (kfake, pstest):
//
//	go test ./consumers/bridge -run '^$' -bench 'KafkaDeliveryRate' -benchtime 3x
//	go test -tags pubsub ./consumers/bridge -run '^$' -bench 'PubSubDeliveryRate' -benchtime 3x
const (
	pkBenchEvents      = 20_000
	pkBenchConcurrency = 16
)

var pkBenchRound atomic.Int64

// pkBench is a preloaded ENMESHED and the same events as messages.
type pkBench struct {
	js   jetstream.JetStream
	msgs []bridge.Message
}

func newPKBench(b *testing.B) *pkBench {
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m" })
	nc, err := srv.Connect()
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
	p := &pkBench{js: js}
	futs := make([]jetstream.PubAckFuture, 0, pkBenchEvents)
	for i := range pkBenchEvents {
		e := amqpBenchEvent(fmt.Sprintf("pk-%06d", i)) // the AMQP benchmark's Connector message
		p.msgs = append(p.msgs, bridge.Message{Event: e, Body: bridge.Body(e)})
		f, err := js.PublishMsgAsync(e.Msg(subjects), jetstream.WithStallWait(time.Minute))
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
	return p
}

// bridgeRate runs the bridge with vars on a fresh durable from the first
// event and returns events per second until every event is acknowledged.
func (p *pkBench) bridgeRate(b *testing.B, vars ...string) float64 {
	name := fmt.Sprintf("bench-pk-%d", pkBenchRound.Add(1))
	env := map[string]string{"BRIDGE_DURABLE": name, "BRIDGE_START": "all", "BRIDGE_CONCURRENCY": fmt.Sprint(pkBenchConcurrency)}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg, err := envparse.ParseAsWithOptions[bridge.Config](envparse.Options{Environment: env})
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	br, err := bridge.New(p.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("bridge: %v", err)
		}
		for stream, durable := range map[string]string{streams.Events: name, streams.Advisories: name + "-advisories"} {
			if err := p.js.DeleteConsumer(context.Background(), stream, durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.Errorf("delete durable %s: %v", durable, err)
			}
		}
	}()
	deadline := start.Add(3 * time.Minute)
	for {
		if c, err := p.js.Consumer(ctx, streams.Events, name); err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(pkBenchEvents) {
				return float64(pkBenchEvents) / time.Since(start).Seconds()
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("the bridge did not acknowledge every event in 3 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parallel runs f for each message over pkBenchConcurrency goroutines and
// returns calls per second; the first error fails b.
func (p *pkBench) parallel(b *testing.B, f func(m bridge.Message) error) float64 {
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range pkBenchConcurrency {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(p.msgs); i = int(next.Add(1)) - 1 {
				if err := f(p.msgs[i]); err != nil {
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
	return float64(len(p.msgs)) / time.Since(start).Seconds()
}

// rates runs b.N rounds of the bridge (with vars), the bare client and
// the publisher alone, in alternating order, and reports the medians.
func (p *pkBench) rates(b *testing.B, pub bridge.Publisher, bare func(m bridge.Message) error, vars ...string) {
	var bridgeRates, bareRates, pubRates []float64
	runs := []func(){
		func() { bridgeRates = append(bridgeRates, p.bridgeRate(b, vars...)) },
		func() { bareRates = append(bareRates, p.parallel(b, bare)) },
		func() {
			pubRates = append(pubRates, p.parallel(b, func(m bridge.Message) error {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return pub.Publish(ctx, m)
			}))
		},
	}
	b.ResetTimer()
	for i := range b.N {
		for j := range runs {
			runs[(i+j)%len(runs)]()
		}
	}
	b.StopTimer()
	med := func(xs []float64) float64 { s := slices.Clone(xs); slices.Sort(s); return s[len(s)/2] }
	br, ba, pu := med(bridgeRates), med(bareRates), med(pubRates)
	b.ReportMetric(br, "bridge_events/s")
	b.ReportMetric(ba, "bare_events/s")
	b.ReportMetric(pu, "publisher_events/s")
	b.ReportMetric(br/ba, "ratio")
	b.ReportMetric(pu/ba, "publisher-ratio")
	b.Logf("bridge %v, bare %v, publisher %v events/s", bridgeRates, bareRates, pubRates)
}
