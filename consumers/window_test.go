package consumers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
)

// Events fetched ahead wait for a worker behind slow handlers: the window
// holds four per worker, so with one worker and handlers taking 400 ms the
// last of a pull waits well past AckWait (1 s). They are signalled in
// progress while they wait, so none is redelivered: each is handled once,
// on its first delivery.
func TestWaitingEventsStayAlive(t *testing.T) {
	cfg := fastConfig()
	cfg.AckWait, cfg.Concurrency, cfg.MaxAckPending = time.Second, 1, 10
	handledOnceEach(t, "waiting", cfg, 6, 400*time.Millisecond, 20*time.Second)
}

// A handler running over two AckWaits (1 s) is kept alive by the window's
// ticker (there is no timer per attempt while the window holds the event):
// each event is handled once, on its first delivery.
func TestSlowHandlerStaysAlive(t *testing.T) {
	cfg := fastConfig()
	cfg.AckWait, cfg.Concurrency, cfg.MaxAckPending = time.Second, 2, 10
	handledOnceEach(t, "slow", cfg, 3, 2500*time.Millisecond, 30*time.Second)
}

// handledOnceEach runs a consumer with cfg whose handler takes handle, publishes
// n events, and checks that each was handled once, on its first delivery,
// all within within.
func handledOnceEach(t *testing.T, name string, cfg consumers.Config, n int, handle, within time.Duration) {
	r := newRig(t)
	var mu sync.Mutex
	handled := map[string][]int{}
	done := make(chan struct{})
	r.run(name, cfg, func(ctx context.Context, d consumers.Delivery) error {
		time.Sleep(handle)
		mu.Lock()
		defer mu.Unlock()
		handled[d.Event.ID] = append(handled[d.Event.ID], d.Attempt)
		if len(handled) == n {
			select {
			case <-done:
			default:
				close(done)
			}
		}
		return nil
	})
	for i := range n {
		r.publish("transport.messageReceived", fmt.Sprintf("%s%d", name, i))
	}
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("not every event handled within %s", within)
	}
	// A redelivery would come after AckWait: wait that long for one.
	time.Sleep(cfg.AckWait + 500*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id, attempts := range handled {
		if len(attempts) != 1 || attempts[0] != 1 {
			t.Errorf("%s handled on deliveries %v, want once, on the first", id, attempts)
		}
	}
}
