package bridge_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	"github.com/redis/go-redis/v9"
)

// The Redis benchmarks run the bridge as cmd/bridge wires it (bridge.New,
// default settings: BRIDGE_CONCURRENCY=16, outcome records on) on an
// embedded server with NATS_SYNC=2m, against the Redis server at
// EVENTMESH_TEST_REDIS, with events of about 1 KB. Run them with
//
//	EVENTMESH_TEST_REDIS=redis://127.0.0.1:6379/0 go test ./consumers/bridge -run '^$' -bench Redis -benchtime 3x
//
// Each iteration is one round; rates are medians over the rounds, latency
// percentiles are over every event of every round.

const (
	redisRateEvents   = 20_000 // events per round of BenchmarkRedisDeliveryRate
	redisConcurrency  = 16     // BRIDGE_CONCURRENCY's default
	redisLatencyRate  = 1_000  // events per second in BenchmarkRedisLatency
	redisLatencyFor   = 3 * time.Second
	redisBenchTrigger = "transport.messageReceived"
)

var redisBenchRound atomic.Int64

// redisBenchMessage is a messageReceived event with id and a Connector-shaped
// payload of about 1 KB.
func redisBenchMessage(id string) bridge.Message {
	data := fmt.Appendf(nil, `{"id":"MSG%s","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"%s","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX","recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i","relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`,
		id, strings.Repeat("x", 420))
	e := router.Event{ID: id, Namespace: redisBenchTrigger, Source: router.DefaultSource, Time: time.Now(),
		Origin: router.OriginWebhook, Data: data}
	return bridge.Message{Event: e, Body: bridge.Body(e)}
}

// redisBenchEnv is an embedded server with ENMESHED (NATS_SYNC=2m) and
// the Redis server.
type redisBenchEnv struct {
	js    jetstream.JetStream
	u     string
	admin *redis.Client
}

func newRedisBenchEnv(b *testing.B) *redisBenchEnv {
	u := redisTestURL(b)
	admin := redisAdmin(b, u)
	// MaxStore only bounds reservations: the runtime's own streams reserve
	// more than the test default of 1 GiB.
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m"; c.MaxStore = 4 << 30 })
	nc, err := srv.Connect() // in-process, as cmd/eventmesh connects to its embedded server
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := streams.NewJetStream(nc, natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 256 << 20, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(b)); err != nil {
		b.Fatal(err)
	}
	return &redisBenchEnv{js: js, u: u.String(), admin: admin}
}

// run starts the bridge on durable name with stream key key, starting at
// start; the returned stop cancels it, waits for it and deletes its durables.
func (e *redisBenchEnv) run(b *testing.B, name, key, start string, concurrency int) (stop func()) {
	cfg, err := env.ParseAsWithOptions[bridge.Config](env.Options{Environment: map[string]string{
		"BRIDGE_URL": e.u, "BRIDGE_REDIS_STREAM": key, "BRIDGE_DURABLE": name, "BRIDGE_START": start,
		"BRIDGE_CONCURRENCY": strconv.Itoa(concurrency)}})
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		b.Fatal(err)
	}
	br, err := bridge.New(e.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("bridge %s: %v", name, err)
			}
			for stream, durable := range map[string]string{streams.Events: name, streams.Advisories: name + "-advisories"} {
				e.js.DeleteConsumer(context.Background(), stream, durable)
			}
		})
	}
	b.Cleanup(stop)
	natstest.WaitFor(b, 10*time.Second, "the bridge ready", func() bool { return br.Ready(ctx) == nil })
	return stop
}

// publishAll publishes ms to ENMESHED and waits for every ack.
func (e *redisBenchEnv) publishAll(b *testing.B, ms []bridge.Message) {
	futs := make([]jetstream.PubAckFuture, 0, len(ms))
	for _, m := range ms {
		f, err := e.js.PublishMsgAsync(m.Event.Msg(subjects), jetstream.WithStallWait(time.Minute))
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
}

// redisReader is a consumer on the Redis side: XREAD BLOCK on one stream
// from its start, with a connection of its own, recording when each
// entry's id first arrived.
type redisReader struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced when entries arrived
	at      map[string]time.Time
	first   time.Time
	last    time.Time // of the latest new id
}

// read starts reading key until the benchmark ends; it returns once its
// connection is up.
func (e *redisBenchEnv) read(b *testing.B, key string) *redisReader {
	opt, _ := redis.ParseURL(e.u)
	c := redis.NewClient(opt)
	if err := c.Ping(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	r := &redisReader{changed: make(chan struct{}), at: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	b.Cleanup(func() { cancel(); <-exited; c.Close() })
	go func() {
		defer close(exited)
		last := "0"
		for ctx.Err() == nil {
			res, err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Count: 1000, Block: time.Second}).Result()
			now := time.Now()
			if err != nil {
				continue // redis.Nil: nothing within the block; ctx: ending
			}
			r.mu.Lock()
			for _, x := range res[0].Messages {
				last = x.ID
				id, _ := x.Values["id"].(string)
				if _, seen := r.at[id]; seen {
					continue
				}
				if len(r.at) == 0 {
					r.first = now
				}
				r.at[id], r.last = now, now
			}
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	return r
}

// wait waits until the reader has n distinct ids.
func (r *redisReader) wait(b *testing.B, n int, timeout time.Duration) {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got, changed := len(r.at), r.changed
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			b.Fatalf("the Redis reader got %d of %d entries within %s", got, n, timeout)
		}
	}
}

// arrived returns when id arrived.
func (r *redisReader) arrived(id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[id]
}

// redisFields is the entry the bridge writes for m (enmeshed format), for
// the bare client to write the same.
func redisFields(m bridge.Message) []any {
	vs := []any{"id", m.Event.ID, "trigger", m.Event.Namespace, "data", m.Body}
	for _, f := range bridge.Metadata(m.Event) {
		vs = append(vs, f.Name, f.Value)
	}
	return vs
}

// BenchmarkRedisDeliveryRate: the bridge draining a backlog of 20,000
// events from ENMESHED into a Redis stream (a fresh durable starting at
// "all" each round), against a bare go-redis client doing the same XADDs
// (the same fields and bodies) from as many goroutines as the bridge has
// handlers (BRIDGE_CONCURRENCY: 16, its default, and 64), one XADD in
// flight on each. Both rounds end when a reader on the Redis side has
// XREAD every entry; the bridge's time includes creating its durable.
// Besides the rates, the CPU time per event of this process (its side of
// the work, the embedded NATS server included), which a busy machine
// bends less than the rates.
func BenchmarkRedisDeliveryRate(b *testing.B) {
	for _, c := range []int{redisConcurrency, 64} {
		b.Run(fmt.Sprintf("concurrency-%d", c), func(b *testing.B) { benchmarkRedisDeliveryRate(b, c) })
	}
}

func benchmarkRedisDeliveryRate(b *testing.B, concurrency int) {
	e := newRedisBenchEnv(b)
	prefix := redisPrefix(b, e.admin)
	r := redisBenchRound.Add(1)
	ms := make([]bridge.Message, redisRateEvents)
	for i := range ms {
		ms[i] = redisBenchMessage(fmt.Sprintf("rate-%d-%06d", r, i))
	}
	e.publishAll(b, ms)
	opt, _ := redis.ParseURL(e.u)
	bare := redis.NewClient(opt)
	defer bare.Close()

	var ours, steady, bares, oursCPU, bareCPU []float64
	b.ResetTimer()
	for range b.N {
		round := redisBenchRound.Add(1)
		key := fmt.Sprintf("%s:bare-%d", prefix, round)
		rd := e.read(b, key)
		start, cpu := time.Now(), processCPU()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < len(ms); i = int(next.Add(1)) - 1 {
					if err := bare.XAdd(context.Background(), &redis.XAddArgs{Stream: key, Values: redisFields(ms[i])}).Err(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		rd.wait(b, redisRateEvents, time.Minute)
		bares = append(bares, redisRateEvents/rd.last.Sub(start).Seconds())
		bareCPU = append(bareCPU, float64((processCPU()-cpu).Microseconds())/redisRateEvents)
		e.admin.Del(context.Background(), key)

		key = fmt.Sprintf("%s:bridge-%d", prefix, round)
		rd = e.read(b, key)
		start, cpu = time.Now(), processCPU()
		stop := e.run(b, fmt.Sprintf("bench-rate-%d", round), key, "all", concurrency)
		rd.wait(b, redisRateEvents, 5*time.Minute)
		oursCPU = append(oursCPU, float64((processCPU()-cpu).Microseconds())/redisRateEvents)
		ours = append(ours, redisRateEvents/rd.last.Sub(start).Seconds())
		steady = append(steady, (redisRateEvents-1)/rd.last.Sub(rd.first).Seconds())
		stop()
		e.admin.Del(context.Background(), key)
	}
	b.StopTimer()
	b.ReportMetric(redisMedian(bares), "bare-xadd/s")
	b.ReportMetric(redisMedian(ours), "ours-events/s")
	b.ReportMetric(redisMedian(ours)/redisMedian(bares), "ratio")
	b.ReportMetric(redisMedian(steady)/redisMedian(bares), "ratio-first-to-last")
	b.ReportMetric(redisMedian(bareCPU), "bare-cpu-µs/event")
	b.ReportMetric(redisMedian(oursCPU), "ours-cpu-µs/event")
}

// processCPU is the CPU time (user and system) this process has used: the
// benchmark's side of the work (the embedded NATS server included), Redis's
// own aside.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRedisLatency: events published to ENMESHED at a steady 1,000
// per second for 3 s; latency from JetStream's ack of each publish (the
// synchronous publish returning) to an XREAD BLOCK reader receiving the
// entry.
func BenchmarkRedisLatency(b *testing.B) {
	e := newRedisBenchEnv(b)
	prefix := redisPrefix(b, e.admin)
	key := prefix + ":latency"
	e.run(b, fmt.Sprintf("bench-latency-%d", redisBenchRound.Add(1)), key, "new", redisConcurrency)
	rd := e.read(b, key)
	n := int(redisLatencyRate * redisLatencyFor.Seconds())
	interval := time.Second / redisLatencyRate

	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		r := redisBenchRound.Add(1)
		ids := make([]string, 0, n)
		acked := make([]time.Time, 0, n)
		before := len(lat)
		// A late tick publishes every event that is due, so the rate holds
		// on average even when the scheduler is busy.
		tick := time.NewTicker(interval)
		start := time.Now()
		for i := 0; i < n; {
			<-tick.C
			due := min(n, int(time.Since(start)/interval))
			for ; i < due; i++ {
				m := redisBenchMessage(fmt.Sprintf("lat-%d-%05d", r, i))
				if _, err := e.js.PublishMsg(context.Background(), m.Event.Msg(subjects)); err != nil {
					b.Fatal(err)
				}
				ids = append(ids, m.Event.ID)
				acked = append(acked, time.Now())
			}
		}
		tick.Stop()
		rd.wait(b, before+n, time.Minute)
		for i, id := range ids {
			lat = append(lat, rd.arrived(id).Sub(acked[i]))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(redisQuantile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(redisQuantile(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// redisQuantile returns the q-quantile of sorted (nearest rank).
func redisQuantile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func redisMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
