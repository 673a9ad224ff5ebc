package consumers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Each process of a durable publishes its state under <durable>.<instance>
// in ENMESHED_CONSUMERS, which the runtime creates: a graceful stop
// deletes the key at once; a process that dies without cleaning up (here:
// its connection cut, as a SIGKILL would) drops out when the bucket's TTL
// expires its key.
func TestProcessStatePublishedAndExpires(t *testing.T) {
	srv := natstest.Start(t)
	admin := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := router.MustSubjects(router.DefaultPrefix)
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(ctx, admin, streams.EventsStream(s, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	const heartbeat = 200 * time.Millisecond // the bucket's TTL: 800ms
	start := func(js jetstream.JetStream) (rt *Runtime, stop func() error) {
		cfg := Config{Start: "all", AckWait: 2 * time.Second, MaxDeliver: 3, MaxAckPending: 10, Concurrency: 1,
			Backoff: Schedule{time.Second}, DrainTimeout: time.Second, BreakerThreshold: 5, BreakerCooldown: time.Second}
		rt, err := New(js, s, cfg, Options{Name: "presence", Filters: []string{s.Events()}, DefaultStart: "all",
			Handler: HandlerFunc(func(context.Context, Delivery) error { return nil }),
			Metrics: NewMetrics(prometheus.NewRegistry()), Log: natstest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		rt.presence.heartbeat = heartbeat
		rctx, stopRun := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- rt.Run(rctx) }()
		return rt, func() error { stopRun(); return <-done }
	}
	states := func() map[string]ProcessState {
		t.Helper()
		all, err := ProcessStates(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		byInstance := map[string]ProcessState{}
		for _, p := range all["presence"] {
			byInstance[p.Instance] = p
		}
		return byInstance
	}

	killedConn := natstest.Connect(t, srv.ClientURL())
	killed, stopKilled := start(natstest.JetStream(t, killedConn))
	graceful, stopGraceful := start(admin)
	natstest.WaitFor(t, 10*time.Second, "both processes' states", func() bool { return len(states()) == 2 })
	p := states()[graceful.presence.instance]
	if p.Durable != "presence" || p.Breaker != BreakerClosed || p.InFlight != 0 || p.HeartbeatSeconds != heartbeat.Seconds() ||
		p.Started.IsZero() || p.Updated.IsZero() || p.BreakerSince.IsZero() || p.PID == 0 {
		t.Errorf("state %+v", p)
	}
	bucket, err := admin.KeyValue(ctx, streams.ConsumersBucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := bucket.Status(ctx); err != nil || st.TTL() != 4*heartbeat || st.History() != 1 {
		t.Fatalf("bucket: %v %+v", err, st)
	}
	// Refreshed every heartbeat.
	first := p.Updated
	natstest.WaitFor(t, 5*time.Second, "a heartbeat", func() bool { return states()[graceful.presence.instance].Updated.After(first) })

	// A graceful stop deletes the key.
	if err := stopGraceful(); err != nil {
		t.Fatal(err)
	}
	if got := states(); len(got) != 1 {
		t.Errorf("after a graceful stop: %+v", got)
	}
	if _, err := bucket.Get(ctx, StateKey("presence", graceful.presence.instance)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("graceful stop: key %v", err)
	}

	// Cut off without cleaning up: the key stays until the TTL expires it.
	killedConn.Close()
	key := StateKey("presence", killed.presence.instance)
	if _, err := bucket.Get(ctx, key); err != nil {
		t.Fatalf("killed process's key gone at once: %v", err)
	}
	killedAt := time.Now()
	natstest.WaitFor(t, 10*time.Second, "the killed process's key to expire", func() bool {
		_, err := bucket.Get(ctx, key)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	if d := time.Since(killedAt); d > 4*heartbeat+3*time.Second {
		t.Errorf("expired after %s, TTL %s", d, 4*heartbeat)
	}
	if got := states(); len(got) != 0 {
		t.Errorf("after expiry: %+v", got)
	}
	stopKilled() // its connection is closed: it may end with an error
}
