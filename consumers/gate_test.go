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
