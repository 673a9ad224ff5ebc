package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

var subjects = router.MustSubjects("enmeshed")

type rig struct {
	t   *testing.T
	js  jetstream.JetStream
	url string // the server's client URL, for processes with connections of their own
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, js: js, url: srv.ClientURL()}
}

// fastConfig is a runtime config with a fast retry schedule for tests.
func fastConfig() consumers.Config {
	return consumers.Config{Start: "all", AckWait: 2 * time.Second, MaxDeliver: 4, MaxAckPending: 100, Concurrency: 4,
		Backoff: consumers.Schedule{20 * time.Millisecond}, DrainTimeout: 10 * time.Second}
}

func (r *rig) publish(ns, id string) {
	r.t.Helper()
	e := router.Event{ID: id, Namespace: ns, Source: "test", Time: time.Now(), Origin: router.OriginWebhook, Data: []byte(`{"id":"` + id + `"}`)}
	if _, err := r.js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
		r.t.Fatal(err)
	}
}

// run starts a runtime and returns a stop function that waits for it.
func (r *rig) run(name string, cfg consumers.Config, h consumers.HandlerFunc) (stop func()) {
	r.t.Helper()
	rt, err := consumers.New(r.js, subjects, cfg, consumers.Options{Name: name, Filters: []string{subjects.Events()},
		DefaultStart: "all", Handler: h, Metrics: consumers.NewMetrics(prometheus.NewRegistry()), Log: natstest.Logger(r.t)})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	natstest.WaitFor(r.t, 10*time.Second, "runtime ready", func() bool {
		select {
		case err := <-done:
			r.t.Fatalf("runtime stopped: %v", err)
		default:
		}
		return rt.Ready(ctx) == nil
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("runtime: %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	return stop
}

func (r *rig) deadLetters(consumer string) []consumers.DeadLetter {
	r.t.Helper()
	dls, err := admin.ListDeadLetters(context.Background(), r.js, subjects, consumer, time.Time{})
	if err != nil {
		r.t.Fatal(err)
	}
	return dls
}

func TestRetryThenSuccess(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	attempts := map[string][]time.Time{}
	delivered := make(chan string, 10)
	r.run("retry", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
		mu.Lock()
		attempts[d.Event.ID] = append(attempts[d.Event.ID], time.Now())
		n := len(attempts[d.Event.ID])
		mu.Unlock()
		if n != d.Attempt {
			t.Errorf("attempt %d reported as %d", n, d.Attempt)
		}
		if n < 3 {
			return errors.New("receiver down")
		}
		delivered <- d.Event.ID
		return nil
	})
	r.publish("transport.messageReceived", "e1")
	select {
	case id := <-delivered:
		if id != "e1" {
			t.Fatal(id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not delivered")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts["e1"]) != 3 {
		t.Errorf("attempts = %d", len(attempts["e1"]))
	}
	// The schedule's delay (20ms ±20%) separates the attempts.
	for i := 1; i < len(attempts["e1"]); i++ {
		if gap := attempts["e1"][i].Sub(attempts["e1"][i-1]); gap < 15*time.Millisecond {
			t.Errorf("attempt %d came %s after the previous one", i+1, gap)
		}
	}
	if dls := r.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters: %v", dls)
	}
}

func TestRetryAfterIsRespected(t *testing.T) {
	r := newRig(t)
	var times []time.Time
	var mu sync.Mutex
	done := make(chan struct{})
	r.run("later", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == 1 {
			return consumers.Retry(errors.New("429"), 700*time.Millisecond)
		}
		if len(times) == 2 {
			close(done)
		}
		return nil
	})
	r.publish("transport.messageReceived", "e1")
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("no second attempt")
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := times[1].Sub(times[0]); gap < 700*time.Millisecond {
		t.Errorf("retried after %s, want ≥ 700ms", gap)
	}
}

func TestPermanentErrorDeadLetters(t *testing.T) {
	r := newRig(t)
	var calls atomic.Int32
	r.run("perm", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
		calls.Add(1)
		if d.Event.ID == "poison" {
			return consumers.Permanent(errors.New("receiver answered 400: bad payload"))
		}
		return nil
	})
	r.publish("transport.messageReceived", "poison")
	r.publish("transport.messageReceived", "fine")
	natstest.WaitFor(t, 10*time.Second, "dead letter", func() bool { return len(r.deadLetters("perm")) == 1 })
	dl := r.deadLetters("perm")[0]
	if dl.Event.ID != "poison" || dl.Consumer != "perm" || dl.Attempts != 1 || dl.StreamSeq != 1 ||
		dl.Subject != "enmeshed.transport.messageReceived" || !strings.Contains(dl.Reason, "400") {
		t.Errorf("dead letter = %+v", dl)
	}
	if calls.Load() != 2 {
		t.Errorf("handler calls = %d, want 2 (no retry of a permanent failure)", calls.Load())
	}
}

func TestLastAttemptDeadLetters(t *testing.T) {
	r := newRig(t)
	cfg := fastConfig()
	cfg.MaxDeliver = 3
	var calls atomic.Int32
	r.run("giveup", cfg, func(ctx context.Context, d consumers.Delivery) error {
		calls.Add(1)
		return fmt.Errorf("still down")
	})
	r.publish("transport.messageReceived", "e1")
	natstest.WaitFor(t, 10*time.Second, "dead letter", func() bool { return len(r.deadLetters("giveup")) == 1 })
	dl := r.deadLetters("giveup")[0]
	if dl.Attempts != 3 || !strings.Contains(dl.Reason, "after 3 attempts") {
		t.Errorf("dead letter = %+v", dl)
	}
	if calls.Load() != 3 {
		t.Errorf("calls = %d", calls.Load())
	}
}

// Events that exhaust MaxDeliver without a verdict (processes crashing on
// them) are dead-lettered from the captured max-deliveries advisory.
func TestCrashLoopDeadLetteredFromAdvisory(t *testing.T) {
	r := newRig(t)
	cfg := fastConfig()
	cfg.MaxDeliver, cfg.AckWait = 2, time.Second
	stop := r.run("crashy", cfg, func(ctx context.Context, d consumers.Delivery) error { return nil })
	stop() // the durable exists; now "processes" take the event and die without a verdict
	r.publish("transport.messageReceived", "crasher")
	ctx := context.Background()
	cons, err := r.js.Consumer(ctx, streams.Events, "crashy")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range batch.Messages() {
			n++ // taken and never settled, as by a process that crashed
		}
		if n != 1 {
			t.Fatalf("delivery %d: got %d messages", i, n)
		}
	}
	// After the second AckWait the server gives up on the event; it emits
	// the advisory when the next process pulls.
	r.run("crashy", cfg, func(ctx context.Context, d consumers.Delivery) error { return nil })
	natstest.WaitFor(t, 10*time.Second, "dead letter from advisory", func() bool { return len(r.deadLetters("crashy")) == 1 })
	dl := r.deadLetters("crashy")[0]
	if dl.Event.ID != "crasher" || !strings.Contains(dl.Reason, "no verdict after 2 deliveries") {
		t.Errorf("dead letter = %+v", dl)
	}
}

func TestPauseAndResume(t *testing.T) {
	r := newRig(t)
	var gone atomic.Bool
	gone.Store(true)
	delivered := make(chan string, 10)
	r.run("pausing", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
		if gone.Load() {
			return consumers.Pause(errors.New("receiver answered 410 Gone"))
		}
		delivered <- d.Event.ID
		return nil
	})
	ctx := context.Background()
	r.publish("transport.messageReceived", "e1")
	natstest.WaitFor(t, 10*time.Second, "consumer paused on the server", func() bool {
		c, err := r.js.Consumer(ctx, streams.Events, "pausing")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.Paused
	})
	gone.Store(false)
	r.publish("transport.messageReceived", "e2")
	select {
	case id := <-delivered:
		t.Fatalf("%s delivered while paused", id)
	case <-time.After(1500 * time.Millisecond): // the absence of a delivery can only be shown by waiting
	}
	if err := consumers.ResumeConsumer(ctx, r.js, "pausing"); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case id := <-delivered:
			got[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("after resume got %v", got)
		}
	}
}

func TestTwoProcessesSplitTheWork(t *testing.T) {
	r := newRig(t)
	const n = 200
	var mu sync.Mutex
	seen := map[string]int{}
	byProc := [2]int{}
	for p := 0; p < 2; p++ {
		r.run("shared", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
			mu.Lock()
			seen[d.Event.ID]++
			byProc[p]++
			mu.Unlock()
			time.Sleep(time.Millisecond) // some work, so both processes get a share
			return nil
		})
	}
	for i := 0; i < n; i++ {
		r.publish("transport.messageReceived", fmt.Sprintf("e%d", i))
	}
	natstest.WaitFor(t, 20*time.Second, "all events", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	mu.Lock()
	defer mu.Unlock()
	if byProc[0] == 0 || byProc[1] == 0 {
		t.Errorf("work not split: %v", byProc)
	}
	t.Logf("split %v", byProc)
}

// SIGTERM-style stop while handlers run: they finish and settle; nothing
// is redelivered to the next process.
func TestGracefulDrain(t *testing.T) {
	r := newRig(t)
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	var handled atomic.Int32
	stop := r.run("drain", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
		started <- struct{}{}
		<-release
		handled.Add(1)
		return nil
	})
	for i := 0; i < 4; i++ {
		r.publish("transport.messageReceived", fmt.Sprintf("e%d", i))
	}
	for i := 0; i < 4; i++ {
		<-started
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	close(release)
	<-stopped
	if handled.Load() != 4 {
		t.Fatalf("handled %d", handled.Load())
	}
	// Acks reach the server's ack queue apart from API requests: give them
	// a moment (no process pulls any more, so an ack that was never sent
	// keeps NumAckPending above 0 however long this waits).
	cons := mustConsumer(t, r.js, "drain")
	var info *jetstream.ConsumerInfo
	natstest.WaitFor(t, 10*time.Second, "acks settled", func() bool {
		var err error
		info, err = cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0
	})
	if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("after drain: ack pending %d, pending %d, redelivered %d", info.NumAckPending, info.NumPending, info.NumRedelivered)
	}
}

// An operator deletes the durable while the consumer runs: the runtime
// notices (the server ends its pulls), sets the durable up again and goes
// on, instead of idling while it reports ready.
func TestDurableDeletedWhileRunning(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	r.run("deleted", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		seen[d.Event.ID] = true
		return nil
	})
	r.publish("transport.messageReceived", "before")
	natstest.WaitFor(t, 10*time.Second, "the first event", func() bool { mu.Lock(); defer mu.Unlock(); return seen["before"] })
	if err := r.js.DeleteConsumer(context.Background(), streams.Events, "deleted"); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 20*time.Second, "the durable set up again", func() bool {
		_, err := r.js.Consumer(context.Background(), streams.Events, "deleted")
		return err == nil
	})
	r.publish("transport.messageReceived", "after")
	natstest.WaitFor(t, 20*time.Second, "an event after the deletion", func() bool { mu.Lock(); defer mu.Unlock(); return seen["after"] })
}

func TestStartCannotChange(t *testing.T) {
	r := newRig(t)
	stop := r.run("fixed", fastConfig(), func(ctx context.Context, d consumers.Delivery) error { return nil })
	stop()
	cfg := fastConfig()
	cfg.Start = "new"
	rt, _ := consumers.New(r.js, subjects, cfg, consumers.Options{Name: "fixed", Filters: []string{subjects.Events()},
		Handler: consumers.HandlerFunc(func(context.Context, consumers.Delivery) error { return nil }), Log: natstest.Logger(t)})
	err := rt.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start cannot change") {
		t.Errorf("err = %v", err)
	}
}

// The breaker, for a per-event handler and for a batch handler (the
// archiver's): after three events failed nothing is handled for the
// cool-down, then one event is fetched as a probe; recovery delivers all.
func TestCircuitBreaker(t *testing.T) {
	for _, batch := range []bool{false, true} {
		name := map[bool]string{false: "handler", true: "batch"}[batch]
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			cfg := fastConfig()
			cfg.Concurrency, cfg.BreakerThreshold, cfg.BreakerCooldown, cfg.MaxDeliver = 1, 3, 800*time.Millisecond, 100
			// Three distinct events failing open it.
			cfg.BreakerFailureRatio, cfg.BreakerMinEvents, cfg.BreakerWindow = 0.5, 3, time.Minute
			durable := "breaker-" + name
			var mu sync.Mutex
			var calls []time.Time
			var healthy atomic.Bool
			attempt := func(ctx context.Context) error {
				mu.Lock()
				calls = append(calls, time.Now())
				n := len(calls)
				mu.Unlock()
				if n == 3 {
					// Let the next event reach this process (and pass the
					// breaker, still closed) while the tripping attempt
					// runs: it waits for the worker and must not run after
					// the trip. (Polled without t: this is a worker goroutine.)
					for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
						cons, err := r.js.Consumer(ctx, streams.Events, durable)
						if err != nil {
							continue
						}
						if info, err := cons.Info(ctx); err == nil && info.Delivered.Consumer >= 4 {
							break
						}
					}
				}
				if healthy.Load() {
					return nil
				}
				return errors.New("down")
			}
			opts := consumers.Options{Name: durable, Filters: []string{subjects.Events()}, DefaultStart: "all",
				Metrics: consumers.NewMetrics(prometheus.NewRegistry()), Log: natstest.Logger(t)}
			if batch {
				opts.BatchSize, opts.BatchLinger = 1, time.Millisecond
				opts.BatchHandler = func(ctx context.Context, ds []consumers.Delivery) error { return attempt(ctx) }
			} else {
				opts.Handler = consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error { return attempt(ctx) })
			}
			rt, err := consumers.New(r.js, subjects, cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			start(t, rt)
			for i := 0; i < 5; i++ {
				r.publish("transport.messageReceived", fmt.Sprintf("e%d", i))
			}
			natstest.WaitFor(t, 10*time.Second, "breaker trips", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) >= 3 })
			mu.Lock()
			third := calls[2]
			mu.Unlock()
			// The fourth attempt is the probe, after the cool-down.
			natstest.WaitFor(t, 10*time.Second, "probe", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) >= 4 })
			mu.Lock()
			gap := calls[3].Sub(third)
			mu.Unlock()
			if gap < 700*time.Millisecond {
				t.Errorf("probe came %s after the third failure, want ≥ the 800ms cool-down", gap)
			}
			healthy.Store(true)
			settled(t, r.js, durable, 20*time.Second) // all delivered after recovery
		})
	}
}

// settled waits until durable name has nothing pending or unacknowledged
// and returns its info.
func settled(t *testing.T, js jetstream.JetStream, name string, timeout time.Duration) *jetstream.ConsumerInfo {
	t.Helper()
	cons := mustConsumer(t, js, name)
	var info *jetstream.ConsumerInfo
	natstest.WaitFor(t, timeout, "all acknowledged", func() bool {
		var err error
		info, err = cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	return info
}

// start runs rt until the test ends.
func start(t *testing.T, rt *consumers.Runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func mustConsumer(t *testing.T, js jetstream.JetStream, name string) jetstream.Consumer {
	t.Helper()
	c, err := js.Consumer(context.Background(), streams.Events, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Per-key order under retries: events of one key are handled in stream
// order even when one of them fails twice; other keys go on meanwhile.
func TestPerKeyOrderUnderRetries(t *testing.T) {
	r := newRig(t)
	cfg := fastConfig()
	cfg.MaxDeliver = 400
	cfg.Backoff = consumers.Schedule{50 * time.Millisecond}
	const perKey = 5
	var mu sync.Mutex
	order := map[string][]int{}
	var finished []string
	failures := map[string]int{"A-0": 2}
	others := 0 // B and C events handled
	rt, err := consumers.New(r.js, subjects, cfg, consumers.Options{Name: "ordered", Filters: []string{subjects.Events()},
		DefaultStart: "all", Log: natstest.Logger(t), Metrics: consumers.NewMetrics(prometheus.NewRegistry()),
		OrderKey: func(d consumers.Delivery) string { return router.OrderKey(d.Event.Data) },
		Handler: consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			// A-0 fails twice, and then until every B and C event is
			// handled: if the other keys waited for A's retries, nothing
			// would finish.
			if failures[d.Event.ID] > 0 || (d.Event.ID == "A-0" && others < 2*perKey) {
				failures[d.Event.ID]--
				return errors.New("receiver down")
			}
			var key string
			var n int
			fmt.Sscanf(strings.Replace(d.Event.ID, "-", " ", 1), "%s %d", &key, &n)
			if key != "A" {
				others++
			}
			order[key] = append(order[key], n)
			finished = append(finished, d.Event.ID)
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	for i := 0; i < perKey; i++ {
		for _, key := range []string{"A", "B", "C"} {
			id := fmt.Sprintf("%s-%d", key, i)
			e := router.Event{ID: id, Namespace: "transport.messageReceived", Source: "t", Time: time.Now(),
				Data: []byte(`{"id":"` + id + `","isOwn":false,"createdBy":"peer-` + key + `"}`)}
			if _, err := r.js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
				t.Fatal(err)
			}
		}
	}
	natstest.WaitFor(t, 20*time.Second, "all events (B and C must not wait for A-0's retries)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(finished) == 3*perKey
	})
	mu.Lock()
	defer mu.Unlock()
	for key, seq := range order {
		for i, n := range seq {
			if n != i {
				t.Errorf("key %s handled out of order: %v", key, seq)
				break
			}
		}
	}
}

// Events waiting behind a key's head that retries in place for several
// AckWaits are kept alive: not redelivered meanwhile, handled once each,
// nothing dead-lettered.
func TestPerKeyOrderQueuedEventsStayAlive(t *testing.T) {
	r := newRig(t)
	cfg := fastConfig()
	cfg.AckWait, cfg.MaxDeliver, cfg.Backoff = time.Second, 50, consumers.Schedule{200 * time.Millisecond}
	var mu sync.Mutex
	calls := map[string]int{}
	var first time.Time
	rt, err := consumers.New(r.js, subjects, cfg, consumers.Options{Name: "alive", Filters: []string{subjects.Events()},
		DefaultStart: "all", Log: natstest.Logger(t), Metrics: consumers.NewMetrics(prometheus.NewRegistry()),
		OrderKey: func(d consumers.Delivery) string { return router.OrderKey(d.Event.Data) },
		Handler: consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			calls[d.Event.ID]++
			if d.Event.ID == "A-0" {
				if first.IsZero() {
					first = time.Now()
				}
				if time.Since(first) < 3500*time.Millisecond { // the head fails for over three AckWaits
					return errors.New("receiver down")
				}
			}
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("A-%d", i)
		e := router.Event{ID: id, Namespace: "transport.messageReceived", Source: "t", Time: time.Now(),
			Data: []byte(`{"id":"` + id + `","isOwn":false,"createdBy":"peer-A"}`)}
		if _, err := r.js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, 30*time.Second, "the key's last event", func() bool { mu.Lock(); defer mu.Unlock(); return calls["A-2"] > 0 })
	info := settled(t, r.js, "alive", 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	// Retries in place are not deliveries: three events, three deliveries.
	if calls["A-1"] != 1 || calls["A-2"] != 1 || info.Delivered.Consumer != 3 {
		t.Errorf("queued events handled %d and %d times, %d deliveries of 3 events; want once each, no redelivery",
			calls["A-1"], calls["A-2"], info.Delivered.Consumer)
	}
	if n := len(r.deadLetters("alive")); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// In per-key order mode one process of the durable is active; another
// stands by and gets nothing while the first one runs.
func TestPerKeyOrderOneActiveProcess(t *testing.T) {
	r := newRig(t)
	var counts [2]atomic.Int32
	for p := 0; p < 2; p++ {
		rt, err := consumers.New(r.js, subjects, fastConfig(), consumers.Options{Name: "pinned", Filters: []string{subjects.Events()},
			DefaultStart: "all", Log: natstest.Logger(t), OrderKey: func(d consumers.Delivery) string { return router.OrderKey(d.Event.Data) },
			Handler: consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error { counts[p].Add(1); return nil })})
		if err != nil {
			t.Fatal(err)
		}
		start(t, rt)
		natstest.WaitFor(t, 10*time.Second, "ready", func() bool { return rt.Ready(context.Background()) == nil })
	}
	for i := 0; i < 40; i++ {
		r.publish("transport.messageReceived", fmt.Sprintf("e%d", i))
	}
	natstest.WaitFor(t, 20*time.Second, "all events", func() bool { return counts[0].Load()+counts[1].Load() == 40 })
	if counts[0].Load() != 0 && counts[1].Load() != 0 {
		t.Errorf("both processes handled events: %d and %d", counts[0].Load(), counts[1].Load())
	}
}

// In per-key order mode a standby takes over when the active process goes:
// at once when it stops gracefully (it hands its pin over), and after
// PinnedTTL when it crashes (its connection is gone, its pin stays until
// the server lets it expire). Each process has a connection of its own, as
// separate processes would.
func TestPerKeyOrderTakeover(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "graceful", true: "crash"}[crash], func(t *testing.T) {
			if crash && testing.Short() {
				t.Skip("waits out PinnedTTL (15 s)")
			}
			r := newRig(t)
			type proc struct {
				nc     *nats.Conn
				count  atomic.Int32
				cancel context.CancelFunc
				done   chan struct{}
			}
			var procs [2]*proc
			for i := range procs {
				p := &proc{nc: natstest.Connect(t, r.url), done: make(chan struct{})}
				procs[i] = p
				rt, err := consumers.New(natstest.JetStream(t, p.nc), subjects, fastConfig(), consumers.Options{Name: "takeover",
					Filters: []string{subjects.Events()}, DefaultStart: "all", Log: natstest.Logger(t),
					OrderKey: func(d consumers.Delivery) string { return router.OrderKey(d.Event.Data) },
					Handler:  consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error { p.count.Add(1); return nil })})
				if err != nil {
					t.Fatal(err)
				}
				var ctx context.Context
				ctx, p.cancel = context.WithCancel(context.Background())
				go func() { rt.Run(ctx); close(p.done) }()
				t.Cleanup(func() { p.cancel(); <-p.done })
				natstest.WaitFor(t, 10*time.Second, "ready", func() bool { return rt.Ready(ctx) == nil })
			}
			for i := 0; i < 20; i++ {
				r.publish("transport.messageReceived", fmt.Sprintf("a%d", i))
			}
			natstest.WaitFor(t, 10*time.Second, "first events", func() bool { return procs[0].count.Load()+procs[1].count.Load() == 20 })
			active, standby := procs[0], procs[1]
			if active.count.Load() == 0 {
				active, standby = standby, active
			}
			if standby.count.Load() != 0 {
				t.Fatalf("both processes handled events: %d and %d", active.count.Load(), standby.count.Load())
			}
			// Acknowledged before the crash (an ack waits for its
			// event's outcome record): else the standby handles them
			// again, rightly.
			settled(t, r.js, "takeover", 10*time.Second)
			stopped := time.Now()
			if crash {
				active.nc.Close() // gone without a word; its runtime cannot reach the server any more
			} else {
				active.cancel()
				<-active.done
			}
			for i := 0; i < 20; i++ {
				r.publish("transport.messageReceived", fmt.Sprintf("b%d", i))
			}
			// A graceful stop must not wait out the 15 s PinnedTTL; a crash does.
			limit := 10 * time.Second
			if crash {
				limit = 60 * time.Second
			}
			natstest.WaitFor(t, limit, "standby takes over", func() bool { return standby.count.Load() == 20 })
			took := time.Since(stopped)
			t.Logf("standby took over after %v", took.Round(time.Millisecond))
			// The pin expires PinnedTTL (15 s) after the crashed
			// process's last pull, which is at most PullExpiry (5 s) old.
			if crash && took < 9*time.Second {
				t.Errorf("took over after %v, before the crashed process's pin could expire: two processes were active", took)
			}
			if active.count.Load() != 20 {
				t.Errorf("the stopped process handled %d events after it stopped", active.count.Load()-20)
			}
		})
	}
}

// Each settled attempt yields an outcome record, batched into few messages.
func TestOutcomesPublished(t *testing.T) {
	r := newRig(t)
	var calls sync.Map
	// Published before the runtime starts, so the test does not depend on
	// how fast publishes are compared with the batcher's flush interval.
	for i := 0; i < 20; i++ {
		r.publish("transport.messageReceived", fmt.Sprintf("ok%d", i))
	}
	r.publish("transport.messageReceived", "flaky")
	r.publish("transport.messageReceived", "poison")
	stop := r.run("outc", fastConfig(), func(ctx context.Context, d consumers.Delivery) error {
		n, _ := calls.LoadOrStore(d.Event.ID, new(atomic.Int32))
		if n.(*atomic.Int32).Add(1) <= 2 && d.Event.ID == "flaky" {
			return errors.New("down")
		}
		if d.Event.ID == "poison" {
			return consumers.Permanent(errors.New("400"))
		}
		return nil
	})
	natstest.WaitFor(t, 10*time.Second, "dead letter", func() bool { return len(r.deadLetters("outc")) == 1 })
	natstest.WaitFor(t, 10*time.Second, "flaky delivered", func() bool {
		n, ok := calls.Load("flaky")
		return ok && n.(*atomic.Int32).Load() == 3
	})
	stop() // the final flush happens on stop
	results := map[string]int{}
	msgs := eachOutcomeMsg(t, r, func(subject string, os []consumers.Outcome) {
		if subject != "enmeshed-outcome.outc" {
			t.Errorf("subject %s", subject)
		}
		for _, o := range os {
			results[o.EventID+"/"+o.Result]++
			if o.Consumer != "outc" || o.Attempt < 1 || o.Time.IsZero() {
				t.Errorf("outcome %+v", o)
			}
		}
	})
	if results["flaky/retried"] != 2 || results["flaky/delivered"] != 1 || results["poison/dead_lettered"] != 1 || results["ok7/delivered"] != 1 {
		t.Errorf("outcomes %v", results)
	}
	if msgs > 8 {
		t.Errorf("%d outcome messages for 24 outcomes: not batched", msgs)
	}
}

// A batch write slower than AckWait (a slow database) is kept alive: the
// server does not redeliver the batch's events under it.
func TestBatchHandlerSlowWriteKeptAlive(t *testing.T) {
	r := newRig(t)
	cfg := fastConfig()
	cfg.AckWait = time.Second
	var calls atomic.Int32
	rt, err := consumers.New(r.js, subjects, cfg, consumers.Options{Name: "slowdb", Filters: []string{subjects.Events()},
		DefaultStart: "all", Log: natstest.Logger(t), NoOutcomes: true, BatchSize: 10, BatchLinger: 200 * time.Millisecond,
		BatchHandler: func(ctx context.Context, ds []consumers.Delivery) error {
			calls.Add(1)
			time.Sleep(2500 * time.Millisecond) // the slow write under test, over two AckWaits
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		r.publish("transport.messageReceived", fmt.Sprintf("e%d", i))
	}
	start(t, rt)
	natstest.WaitFor(t, 10*time.Second, "ready", func() bool { return rt.Ready(context.Background()) == nil })
	info := settled(t, r.js, "slowdb", 20*time.Second)
	if info.Delivered.Consumer != 10 || calls.Load() != 1 {
		t.Errorf("%d deliveries of 10 events in %d writes; want 10 in 1 (no redelivery under the write)", info.Delivered.Consumer, calls.Load())
	}
}

func TestBatchHandler(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var sizes []int
	seen := map[string]int{}
	failOnce := true
	rt, err := consumers.New(r.js, subjects, fastConfig(), consumers.Options{Name: "batcher", Filters: []string{subjects.Events()},
		DefaultStart: "all", Log: natstest.Logger(t), NoOutcomes: true, BatchSize: 50,
		BatchHandler: func(ctx context.Context, ds []consumers.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			if failOnce {
				failOnce = false
				return errors.New("database busy")
			}
			sizes = append(sizes, len(ds))
			for _, d := range ds {
				seen[d.Event.ID]++
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		r.publish("transport.messageReceived", fmt.Sprintf("e%d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	natstest.WaitFor(t, 20*time.Second, "all events", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 200 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	big := 0
	for _, n := range sizes {
		if n > 50 {
			t.Errorf("batch of %d > BatchSize", n)
		}
		if n > 1 {
			big++
		}
	}
	if big == 0 {
		t.Errorf("no batching: %v", sizes)
	}
	if _, err := r.js.Stream(context.Background(), streams.Outcomes); err == nil {
		t.Error("NoOutcomes still created ENMESHED_OUTCOMES")
	}
}
