package consumers_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

// A closed gate holds fetching: nothing reaches the handler (nor is
// delivered by the server) until it opens, also when it closes while the
// runtime consumes.
func TestGateHoldsFetching(t *testing.T) {
	r := newRig(t)
	gate := consumers.NewGate()
	gate.Close()
	var handled atomic.Int64
	rt, err := consumers.New(r.js, subjects, fastConfig(), consumers.Options{Name: "gated", Filters: []string{subjects.Events()},
		DefaultStart: "all", Gate: gate, Metrics: consumers.NewMetrics(prometheus.NewRegistry()), Log: natstest.Logger(t),
		Handler: consumers.HandlerFunc(func(context.Context, consumers.Delivery) error { handled.Add(1); return nil })})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	natstest.WaitFor(t, 10*time.Second, "runtime ready", func() bool { return rt.Ready(ctx) == nil })

	held := func(want int64) {
		t.Helper()
		// Nothing must happen: that takes a window. Pulls expire every 5 s
		// and the retry schedule is 20 ms, so 1.5 s shows a leak.
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if n := handled.Load(); n != want {
				t.Fatalf("handled %d events while the gate was closed, want %d", n, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range 3 {
		r.publish("transport.messageReceived", fmt.Sprintf("g%d", i))
	}
	held(0)
	info, err := mustConsumer(t, r.js, "gated").Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 0 {
		t.Fatalf("the server delivered %d messages while the gate was closed", info.Delivered.Consumer)
	}
	gate.Open()
	natstest.WaitFor(t, 10*time.Second, "3 events handled once the gate opened", func() bool { return handled.Load() == 3 })

	// Closed while consuming.
	gate.Close()
	for i := range 3 {
		r.publish("transport.messageReceived", fmt.Sprintf("h%d", i))
	}
	held(3)
	gate.Open()
	natstest.WaitFor(t, 10*time.Second, "6 events handled once the gate opened again", func() bool { return handled.Load() == 6 })
}

// Events fetched before the gate closed are handed back for a prompt
// redelivery, not for the circuit breaker's cool-down: a broker connection
// restored after a short cut delivers them again within seconds.
func TestGateHandsBackWithoutCooldown(t *testing.T) {
	r := newRig(t)
	gate := consumers.NewGate()
	cfg := fastConfig()
	cfg.Concurrency = 1
	cfg.BreakerThreshold, cfg.BreakerCooldown, cfg.BreakerFailureRatio, cfg.BreakerMinEvents, cfg.BreakerWindow = 5, time.Minute, 0.5, 20, time.Minute
	first, release := make(chan struct{}), make(chan struct{})
	var handled atomic.Int64
	rt, err := consumers.New(r.js, subjects, cfg, consumers.Options{Name: "gated", Filters: []string{subjects.Events()},
		DefaultStart: "all", Gate: gate, Metrics: consumers.NewMetrics(prometheus.NewRegistry()), Log: natstest.Logger(t),
		Handler: consumers.HandlerFunc(func(_ context.Context, d consumers.Delivery) error {
			if d.Event.ID == "k0" && d.Attempt == 1 {
				close(first)
				<-release
			}
			handled.Add(1)
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := range 5 {
		r.publish("transport.messageReceived", fmt.Sprintf("k%d", i))
	}
	<-first // k0 in the handler; the others fetched behind it
	natstest.WaitFor(t, 10*time.Second, "events fetched behind the busy handler", func() bool {
		info, err := mustConsumer(t, r.js, "gated").Info(ctx)
		return err == nil && info.Delivered.Consumer >= 2
	})
	gate.Close()
	close(release)
	// The events fetched behind k0 meet the closed gate and are handed
	// back (or had passed it before, and are handled).
	natstest.WaitFor(t, 10*time.Second, "k0 handled", func() bool { return handled.Load() >= 1 })
	gate.Open()
	start := time.Now()
	natstest.WaitFor(t, 10*time.Second, "all 5 events handled soon after the gate opened (not after the 1-minute cool-down)",
		func() bool { return handled.Load() == 5 })
	t.Logf("handled within %s of the gate opening", time.Since(start).Round(time.Millisecond))
}
