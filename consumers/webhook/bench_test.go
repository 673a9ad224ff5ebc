package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The benchmarks run the webhook consumer as cmd/webhook wires it (the
// consumer runtime with the signing sender as its handler) against a local
// receiver, on an embedded server with NATS_SYNC=2m. BenchmarkDeliveryRate
// compares it with its ceiling, a bare HTTP client and server under the
// same concurrency, in the same run (machines are noisy; ratios within one
// run are not). Run them with
//
//	go test ./consumers/webhook -run '^$' -bench . -benchtime 3x
//
// Each iteration is one round; rates are medians over the rounds, latency
// percentiles are over every event of every round.

const (
	benchConcurrency = 64     // WEBHOOK_CONCURRENCY, and the bare client's goroutines
	rateEvents       = 20_000 // events per round of BenchmarkDeliveryRate
	latencyRate      = 1_000  // events per second in BenchmarkLatency
	latencyFor       = 3 * time.Second
	benchNamespace   = "transport.messageReceived"
)

var benchSubjects = router.MustSubjects("enmeshed")

// benchSecret is a fixed signing secret (32 bytes): receivers in production
// verify signatures, so every request is signed here too.
var benchSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("eventmesh-bench-secret-32-bytes!"))

// benchRound numbers rounds across benchmark runs, for distinct durable names
// and event ids.
var benchRound atomic.Int64

// payload1K is a Connector-shaped messageReceived data of about 1 KB with
// message id msg.
func payload1K(msg string) []byte {
	return fmt.Appendf(nil, `{"id":"MSG%s","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"%s","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX","recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i","relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`,
		msg, strings.Repeat("x", 420))
}

// benchEvent returns a messageReceived event with id (no '.': it is signed as
// webhook-id) and a 1 KB payload of its own.
func benchEvent(id string) router.Event {
	return router.Event{ID: id, Namespace: benchNamespace, Source: router.DefaultSource, Time: time.Now(),
		Origin: router.OriginWebhook, Data: payload1K(id)}
}

// tally counts one round's requests at the receiver and closes done when
// want have arrived. With at set it records when each webhook-id first
// arrived and counts distinct ids only.
type tally struct {
	want  int64
	count atomic.Int64
	done  chan struct{}
	first atomic.Int64 // unix nanoseconds of the first request, 0 before it
	last  time.Time    // of the request that completed the tally
	mu    sync.Mutex
	at    map[string]time.Time
}

func (t *tally) add(id string, arrived time.Time) {
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
	t.first.CompareAndSwap(0, arrived.UnixNano())
	if t.count.Add(1) == t.want {
		t.last = arrived
		close(t.done)
	}
}

// benchReceiver is the webhook endpoint of the benchmarks, and the bare server
// of the ceiling: it drains each body and answers 204.
type benchReceiver struct {
	*httptest.Server
	round atomic.Pointer[tally]
}

func newBenchReceiver(b *testing.B) *benchReceiver {
	r := &benchReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		arrived := time.Now()
		io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusNoContent)
		if t := r.round.Load(); t != nil {
			t.add(req.Header.Get(webhook.HeaderID), arrived)
		}
	}))
	b.Cleanup(r.Close)
	return r
}

// arm starts counting a round of want requests (recording arrival times if
// record is set).
func (r *benchReceiver) arm(want int, record bool) *tally {
	t := &tally{want: int64(want), done: make(chan struct{})}
	if record {
		t.at = make(map[string]time.Time, want)
	}
	r.round.Store(t)
	return t
}

// wait waits for the round to complete, failing the benchmark after
// timeout or when the consumer c (nil for the bare client) stops.
func (t *tally) wait(b *testing.B, timeout time.Duration, c *benchConsumer) {
	var exited chan struct{}
	if c != nil {
		exited = c.exited
	}
	select {
	case <-t.done:
	case <-exited:
		b.Fatalf("consumer stopped after %d of %d requests: %v", t.count.Load(), t.want, c.err)
	case <-time.After(timeout):
		b.Fatalf("receiver got %d of %d requests within %s", t.count.Load(), t.want, timeout)
	}
}

type benchEnv struct {
	js      jetstream.JetStream
	recv    *benchReceiver
	sender  *webhook.Sender
	cfg     webhook.Config
	metrics *consumers.Metrics
	log     *slog.Logger
}

func newBenchEnv(b *testing.B) *benchEnv {
	// MaxStore only bounds reservations: the runtime's own streams
	// (ENMESHED_DLQ, ENMESHED_ADVISORIES, ENMESHED_OUTCOMES) reserve more
	// than the test default of 1 GiB.
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m"; c.MaxStore = 4 << 30 })
	// In-process, as cmd/eventmesh connects to its embedded server.
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
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 512 << 20, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(benchSubjects, sc), log); err != nil {
		b.Fatal(err)
	}
	recv := newBenchReceiver(b)
	cfg := webhook.Config{URL: recv.URL + "/hooks", Secret: benchSecret, Format: webhook.FormatEnmeshed, Triggers: "**",
		Timeout: 10 * time.Second, APIKeyHeader: "X-API-KEY", RateBurst: 1, RetryableStatus: []int{408, 425}}
	sender, err := webhook.NewSender(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{js: js, recv: recv, sender: sender, cfg: cfg,
		metrics: consumers.NewMetrics(prometheus.NewRegistry()), log: log}
}

// benchConsumer is a running webhook consumer.
type benchConsumer struct {
	*consumers.Runtime
	exited chan struct{} // closed when Run has returned
	err    error         // what Run returned, once exited is closed
	// stop cancels the consumer, waits for Run to return and deletes its
	// durables.
	stop func()
}

// run starts the webhook consumer on the durable name, wired as
// cmd/webhook wires it.
func (e *benchEnv) run(b *testing.B, name, start string) *benchConsumer {
	return e.runWith(b, name, start, consumers.Options{})
}

// runWith is run with the runtime options of extra that are set (only
// NoOutcomes is taken).
func (e *benchEnv) runWith(b *testing.B, name, start string, extra consumers.Options) *benchConsumer {
	cfg := consumers.Config{Start: start, AckWait: 30 * time.Second, MaxDeliver: 10, MaxAckPending: 2 * benchConcurrency,
		Concurrency: benchConcurrency, Backoff: consumers.Schedule{50 * time.Millisecond}, Jitter: 0.2,
		BreakerThreshold: 5, BreakerFailureRatio: 0.5, BreakerMinEvents: 20, BreakerWindow: time.Minute,
		BreakerCooldown: time.Second, DrainTimeout: 10 * time.Second}
	if err := cfg.Validate("WEBHOOK_"); err != nil {
		b.Fatal(err)
	}
	patterns, err := e.cfg.TriggerPatterns()
	if err != nil {
		b.Fatal(err)
	}
	filters, exact := patterns.FilterSubjects(benchSubjects.Prefix())
	o := consumers.Options{Name: name, Filters: filters, DefaultStart: "new", Handler: e.sender.Handler(),
		Metrics: e.metrics, Log: e.log, NoOutcomes: extra.NoOutcomes}
	if !exact {
		o.Match = patterns.Match
	}
	rt, err := consumers.New(e.js, benchSubjects, cfg, o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &benchConsumer{Runtime: rt, exited: make(chan struct{})}
	go func() { c.err = rt.Run(ctx); close(c.exited) }()
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			cancel()
			<-c.exited
			if c.err != nil {
				b.Errorf("runtime %s: %v", name, c.err)
			}
			e.deleteDurables(b, name)
		})
	}
	b.Cleanup(c.stop)
	return c
}

// deleteDurables deletes the durables of the consumer name: fresh durables
// every round, not the old ones left for the server to track.
func (e *benchEnv) deleteDurables(b *testing.B, name string) {
	for stream, durable := range map[string]string{streams.Events: name, streams.Advisories: name + "-advisories"} {
		err := e.js.DeleteConsumer(context.Background(), stream, durable)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			b.Errorf("delete durable %s: %v", durable, err)
		}
	}
}

// publishAll publishes events with async publishes and waits for every ack.
func (e *benchEnv) publishAll(b *testing.B, events []router.Event) {
	futs := make([]jetstream.PubAckFuture, 0, len(events))
	for _, ev := range events {
		f, err := e.js.PublishMsgAsync(ev.Msg(benchSubjects), jetstream.WithStallWait(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
	}
	waitAcks(b, futs)
}

func waitAcks(b *testing.B, futs []jetstream.PubAckFuture) {
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
}

// senderClient returns an http.Client with the transport settings of
// webhook.NewSender: net/http's default transport, cloned, with up to 256
// idle connections (128 per host).
func senderClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 128
	return &http.Client{Transport: tr}
}

// parallel runs n calls of f spread over workers goroutines and returns
// calls per second.
func parallel(b *testing.B, n, workers int, f func(i int) error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkDeliveryRate: the webhook consumer draining a backlog of 20,000
// events (a fresh durable starting at "all" each round, 64 in parallel) to
// a receiver that answers 204, against the ceiling: 64 goroutines POSTing
// the same bodies to the same receiver through a client with the sender's
// transport settings. The consumer's time runs from starting the runtime
// (durable creation included) to the receiver's last request.
func BenchmarkDeliveryRate(b *testing.B) {
	e := newBenchEnv(b)
	r := benchRound.Add(1)
	events := make([]router.Event, rateEvents)
	bodies := make([][]byte, rateEvents)
	for i := range events {
		events[i] = benchEvent(fmt.Sprintf("rate-%d-%06d", r, i))
		// The body the sender builds in the enmeshed format.
		bodies[i] = fmt.Appendf(nil, `{"trigger":%q,"data":%s}`, benchNamespace, events[i].Data)
	}
	e.publishAll(b, events)
	client := senderClient()
	defer client.CloseIdleConnections()

	var ours, steady, bare []float64
	b.ResetTimer()
	for range b.N {
		t := e.recv.arm(rateEvents, false)
		bare = append(bare, parallel(b, rateEvents, benchConcurrency, func(i int) error {
			resp, err := client.Post(e.recv.URL+"/hooks", "application/json", bytes.NewReader(bodies[i]))
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}))
		t.wait(b, 10*time.Second, nil)

		t = e.recv.arm(rateEvents, false)
		start := time.Now()
		c := e.run(b, fmt.Sprintf("rate-%d", benchRound.Add(1)), "all")
		t.wait(b, 5*time.Minute, c)
		ours = append(ours, rateEvents/time.Since(start).Seconds())
		// The same run from its first delivery to its last: without the
		// durable's creation and the first fetch.
		steady = append(steady, (rateEvents-1)/t.last.Sub(time.Unix(0, t.first.Load())).Seconds())
		c.stop()
	}
	b.StopTimer()
	b.ReportMetric(median(bare), "bare-req/s")
	b.ReportMetric(median(ours), "ours-events/s")
	b.ReportMetric(median(ours)/median(bare), "ratio")
	b.ReportMetric(median(steady)/median(bare), "ratio-first-to-last")
}

// BenchmarkOutcomeCost: what durable outcome records cost the delivery
// rate. As BenchmarkDeliveryRate's consumer run, once with outcome records
// (each event acknowledged only after the batch holding its record is
// stored) and once without (NoOutcomes), each round on a fresh durable
// draining the same backlog of 20,000 events, the order alternating
// between rounds; ratio is outcomes-on over outcomes-off.
func BenchmarkOutcomeCost(b *testing.B) {
	e := newBenchEnv(b)
	r := benchRound.Add(1)
	events := make([]router.Event, rateEvents)
	for i := range events {
		events[i] = benchEvent(fmt.Sprintf("cost-%d-%06d", r, i))
	}
	e.publishAll(b, events)

	rate := func(noOutcomes bool) float64 {
		t := e.recv.arm(rateEvents, false)
		start := time.Now()
		c := e.runWith(b, fmt.Sprintf("cost-%d", benchRound.Add(1)), "all", consumers.Options{NoOutcomes: noOutcomes})
		t.wait(b, 5*time.Minute, c)
		got := rateEvents / time.Since(start).Seconds()
		c.stop()
		return got
	}
	var on, off []float64
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			on = append(on, rate(false))
			off = append(off, rate(true))
		} else {
			off = append(off, rate(true))
			on = append(on, rate(false))
		}
	}
	b.StopTimer()
	b.ReportMetric(median(on), "outcomes-events/s")
	b.ReportMetric(median(off), "no-outcomes-events/s")
	b.ReportMetric(median(on)/median(off), "ratio")
}

// BenchmarkLatency: events published at a steady 1,000/s for 3 s to a
// running webhook consumer (64 in parallel); the latency of an event runs
// from handing it to the NATS client to its request reaching the receiver.
func BenchmarkLatency(b *testing.B) {
	e := newBenchEnv(b)
	c := e.run(b, fmt.Sprintf("latency-%d", benchRound.Add(1)), "new")
	natstest.WaitFor(b, 10*time.Second, "runtime ready", func() bool { return c.Ready(context.Background()) == nil })
	n := int(latencyRate * latencyFor.Seconds())
	interval := time.Second / latencyRate

	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		r := benchRound.Add(1)
		t := e.recv.arm(n, true)
		ids := make([]string, 0, n)
		sent := make([]time.Time, 0, n)
		futs := make([]jetstream.PubAckFuture, 0, n)
		// A late tick publishes every event that is due, so the rate holds
		// on average even when the scheduler is busy.
		tick := time.NewTicker(interval)
		start := time.Now()
		for i := 0; i < n; {
			<-tick.C
			due := min(n, int(time.Since(start)/interval))
			for ; i < due; i++ {
				ev := benchEvent(fmt.Sprintf("lat-%d-%05d", r, i))
				m := ev.Msg(benchSubjects)
				ids = append(ids, ev.ID)
				sent = append(sent, time.Now())
				f, err := e.js.PublishMsgAsync(m)
				if err != nil {
					b.Fatal(err)
				}
				futs = append(futs, f)
			}
		}
		tick.Stop()
		waitAcks(b, futs)
		t.wait(b, time.Minute, c)
		for i, id := range ids {
			lat = append(lat, t.at[id].Sub(sent[i]))
		}
	}
	b.StopTimer()
	c.stop()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(quantile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(quantile(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
