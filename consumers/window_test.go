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
	r := newRig(t)
	cfg := fastConfig()
	cfg.AckWait, cfg.Concurrency, cfg.MaxAckPending = time.Second, 1, 10
	const n = 6
	var mu sync.Mutex
	handled := map[string][]int{}
	done := make(chan struct{})
	r.run("waiting", cfg, func(ctx context.Context, d consumers.Delivery) error {
		time.Sleep(400 * time.Millisecond)
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
		r.publish("transport.messageReceived", fmt.Sprintf("w%d", i))
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("not every event handled within 20 s")
	}
	// A redelivery would come after AckWait: wait that long for one.
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id, attempts := range handled {
		if len(attempts) != 1 || attempts[0] != 1 {
			t.Errorf("%s handled on deliveries %v, want once, on the first", id, attempts)
		}
	}
}
