package consumers_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// BenchmarkDrain measures what the consumer runtime itself costs per event:
// the runtime with its defaults (16 in flight, outcome records on) and a
// handler that returns at once, draining drainEvents preloaded 1 KB events
// (NATS_SYNC=2m), against a bare loop on a durable of the same
// configuration (the same filter subjects, ack wait and max ack pending)
// that pulls as many at a time as the runtime's window holds (four per
// worker) and acknowledges each message from 16 goroutines. Rates from start to
// the durable's ack floor reaching the last event; CPU per event is the
// benchmark process's (both include the embedded server's share). Medians
// of b.N rounds in alternating order:
//
//	go test ./consumers -run '^$' -bench Drain -benchtime 3x
func BenchmarkDrain(b *testing.B) {
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m" })
	js := natstest.JetStream(b, natstest.Connect(b, srv.ClientURL()))
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 256 << 20, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(b)); err != nil {
		b.Fatal(err)
	}
	data := []byte(fmt.Sprintf(`{"peer":"did:e:example","content":%q}`, string(make([]byte, 900))))
	futs := make([]jetstream.PubAckFuture, 0, drainEvents)
	for i := range drainEvents {
		e := router.Event{ID: fmt.Sprintf("drain-%06d", i), Namespace: "transport.messageReceived", Source: "bench",
			Time: time.Now(), Origin: router.OriginWebhook, Data: data}
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
	cfg := consumers.Config{Start: "all", AckWait: 30 * time.Second, MaxDeliver: 10, MaxAckPending: 1000, Concurrency: 16,
		Backoff: consumers.Schedule{5 * time.Second}, DrainTimeout: 30 * time.Second, BreakerThreshold: 5,
		BreakerFailureRatio: 0.5, BreakerMinEvents: 20, BreakerWindow: time.Minute, BreakerCooldown: 30 * time.Second}
	round := 0
	runtime := func() (float64, float64) {
		round++
		name := fmt.Sprintf("drain-rt-%d", round)
		rt, err := consumers.New(js, subjects, cfg, consumers.Options{Name: name, Filters: []string{subjects.Events()},
			DefaultStart: "all", Handler: consumers.HandlerFunc(func(context.Context, consumers.Delivery) error { return nil }),
			Metrics: consumers.NewMetrics(prometheus.NewRegistry()), Log: natstest.Logger(b)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start, cpu := time.Now(), cpuTime()
		go func() { done <- rt.Run(ctx) }()
		rate, perEvent := drained(b, js, name, start, cpu)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return rate, perEvent
	}
	bare := func() (float64, float64) {
		round++
		name := fmt.Sprintf("drain-bare-%d", round)
		start, cpu := time.Now(), cpuTime()
		cons, err := js.CreateOrUpdateConsumer(context.Background(), streams.Events, jetstream.ConsumerConfig{
			Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending,
			MaxDeliver: cfg.MaxDeliver, DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubjects: []string{subjects.Events(), subjects.Replays(name)}})
		if err != nil {
			b.Fatal(err)
		}
		work := make(chan jetstream.Msg)
		var wg sync.WaitGroup
		for range cfg.Concurrency {
			wg.Go(func() {
				for m := range work {
					m.Ack()
				}
			})
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { work <- m }, jetstream.PullMaxMessages(4*cfg.Concurrency))
		if err != nil {
			b.Fatal(err)
		}
		rate, perEvent := drained(b, js, name, start, cpu)
		cc.Drain()
		<-cc.Closed()
		close(work)
		wg.Wait()
		return rate, perEvent
	}
	var rtRates, rtCPU, bareRates, bareCPU []float64
	b.ResetTimer()
	for i := range b.N {
		for j := range 2 {
			if (i+j)%2 == 0 {
				r, c := runtime()
				rtRates, rtCPU = append(rtRates, r), append(rtCPU, c)
			} else {
				r, c := bare()
				bareRates, bareCPU = append(bareRates, r), append(bareCPU, c)
			}
		}
	}
	b.StopTimer()
	med := func(xs []float64) float64 { s := slices.Clone(xs); slices.Sort(s); return s[len(s)/2] }
	b.ReportMetric(med(rtRates), "runtime_events/s")
	b.ReportMetric(med(bareRates), "bare_events/s")
	b.ReportMetric(med(rtRates)/med(bareRates), "ratio")
	b.ReportMetric(med(rtCPU), "runtime_cpu_µs/event")
	b.ReportMetric(med(bareCPU), "bare_cpu_µs/event")
	b.Logf("runtime %v events/s %v µs; bare %v events/s %v µs", rtRates, rtCPU, bareRates, bareCPU)
}

const drainEvents = 20_000

// drained waits until durable name acknowledged every preloaded event and
// returns events per second and CPU µs per event since start and cpu.
func drained(b *testing.B, js jetstream.JetStream, name string, start time.Time, cpu time.Duration) (float64, float64) {
	deadline := start.Add(3 * time.Minute)
	for {
		if c, err := js.Consumer(context.Background(), streams.Events, name); err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= drainEvents {
				return drainEvents / time.Since(start).Seconds(), float64((cpuTime() - cpu).Microseconds()) / drainEvents
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not acknowledge every event in 3 minutes", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
