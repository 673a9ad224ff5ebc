package consumers

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// orderedGroup is the priority group of a durable in per-key order mode.
const orderedGroup = "ordered"

// keyedQueues runs per-key order: one queue per key, at most one event of
// a key in a handler at a time, at most concurrency keys at once.
type keyedQueues struct {
	r      *Runtime
	ctx    context.Context // the handlers' context
	mu     sync.Mutex
	queues map[string][]held // while a key is worked on: its head (in the handler or waiting to retry) first
	slots  chan struct{}
	wg     sync.WaitGroup
	done   chan struct{} // closed by wait: ends keepAlive
}

// held is an event this process holds, with its stream sequence.
type held struct {
	msg jetstream.Msg
	seq uint64
}

func newKeyedQueues(r *Runtime, ctx context.Context, concurrency int) *keyedQueues {
	k := &keyedQueues{r: r, ctx: ctx, queues: map[string][]held{}, slots: make(chan struct{}, concurrency),
		done: make(chan struct{})}
	go k.keepAlive()
	return k
}

// keepAlive signals progress for every event this process holds: each
// key's head (in its handler or waiting to retry in place) and the events
// queued behind it. Without it the server redelivers them after AckWait:
// a second copy of an event, spent attempts, a dead letter "crashed" after
// MaxDeliver, or a standby process handling them out of order.
func (k *keyedQueues) keepAlive() {
	t := time.NewTicker(k.r.keepAliveEvery())
	defer t.Stop()
	var waiting []jetstream.Msg
	for {
		select {
		case <-k.done:
			return
		case <-t.C:
		}
		waiting = waiting[:0]
		k.mu.Lock()
		for _, q := range k.queues {
			for _, h := range q {
				waiting = append(waiting, h.msg)
			}
		}
		k.mu.Unlock()
		for _, m := range waiting {
			m.InProgress() // an event settled meanwhile answers with an error: nothing to do
		}
	}
}

// dispatch queues msg behind earlier events of its key, or starts its key.
// It blocks (and so holds fetching) while every slot is busy.
func (k *keyedQueues) dispatch(msg jetstream.Msg) {
	key, seq := k.keyOf(msg)
	k.mu.Lock()
	if q, busy := k.queues[key]; busy {
		// A redelivery of an event this process holds is not a second
		// event: one of the head is dropped (the head's verdict settles
		// the stream sequence), one of a queued event replaces it.
		for i := range q {
			if q[i].seq == seq {
				if i > 0 {
					q[i].msg = msg
				}
				k.mu.Unlock()
				return
			}
		}
		k.queues[key] = append(q, held{msg, seq})
		k.mu.Unlock()
		return
	}
	k.queues[key] = []held{{msg, seq}}
	k.mu.Unlock()
	select {
	case k.slots <- struct{}{}:
	case <-k.r.stopping:
		k.release(key, msg)
		return
	}
	k.wg.Add(1)
	go k.run(key, msg)
}

// keyOf returns msg's order key and stream sequence.
func (k *keyedQueues) keyOf(msg jetstream.Msg) (string, uint64) {
	d := Delivery{Subject: msg.Subject()}
	if md, err := msg.Metadata(); err == nil {
		d.StreamSeq = md.Sequence.Stream
	}
	d.Event.Data = msg.Data()
	if key := k.r.opt.OrderKey(d); key != "" {
		return "k:" + key, d.StreamSeq
	}
	// No key: no ordering constraint.
	return "seq:" + strconv.FormatUint(d.StreamSeq, 10), d.StreamSeq
}

func (k *keyedQueues) run(key string, msg jetstream.Msg) {
	defer k.wg.Done()
	defer func() { <-k.slots }()
	for {
		select {
		case <-k.r.stopping:
			k.release(key, msg)
			return
		default:
		}
		if paused := k.r.processInOrder(k.ctx, msg); paused {
			// The consumer is paused: hand the rest of the key back in
			// order rather than let it overtake the event just released.
			k.giveBack(k.take(key)...)
			return
		}
		k.mu.Lock()
		q := k.queues[key][1:] // the head is done
		if len(q) == 0 {
			delete(k.queues, key)
			k.mu.Unlock()
			return
		}
		k.queues[key], msg = q, q[0].msg
		k.mu.Unlock()
	}
}

// take ends the work on key and returns the events queued behind its head.
func (k *keyedQueues) take(key string) []held {
	k.mu.Lock()
	defer k.mu.Unlock()
	q := k.queues[key]
	delete(k.queues, key)
	if len(q) == 0 {
		return nil
	}
	return q[1:]
}

// release hands msg and the rest of its key's queue back to the server in
// order, for the next active process.
func (k *keyedQueues) release(key string, msg jetstream.Msg) {
	q := k.take(key)
	k.r.giveBack(k.ctx, 0, msg)
	k.giveBack(q...)
}

// giveBack hands the events q held back to the server, in order, at once.
func (k *keyedQueues) giveBack(q ...held) {
	for _, h := range q {
		k.r.giveBack(k.ctx, 0, h.msg)
	}
}

// wait waits for the keys being worked on, after fetching stopped.
func (k *keyedQueues) wait() { k.wg.Wait(); close(k.done) }

// processInOrder handles msg, retrying in place: a NakWithDelay would let
// later events of the key overtake it. The attempt budget is still
// MaxDeliver (server deliveries plus retries in place), and the event stays
// unacknowledged on the server while it waits, so a crash hands it to the
// next process instead of forgetting it. It reports whether the event
// paused the consumer.
func (r *Runtime) processInOrder(ctx context.Context, msg jetstream.Msg) (paused bool) {
	d, ok := r.prepare(ctx, msg)
	if !ok {
		return false
	}
	for {
		v := r.decide(r.handle(ctx, d), d) // keyedQueues keeps msg alive
		r.carryOut(ctx, msg, d, v)
		if v.fate != retryInPlace {
			return v.fate == pause
		}
		if !r.waitOrStop(v.delay) {
			r.giveBack(ctx, 0, msg) // shutting down: the next process takes over, in order
			return false
		}
		d.Attempt++
	}
}

// waitOrStop waits d; false on shutdown. (keyedQueues keeps the waiting
// event alive.)
func (r *Runtime) waitOrStop(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stopping:
		return false
	}
}

// handOver lifts this process's pin after a graceful stop, so a standby
// takes over at once instead of after PinnedTTL (which is what a crash
// costs). It unpins only if the pin is still ours: unpinning another
// process would only make the group switch for nothing.
func (r *Runtime) handOver() {
	pin, _ := r.pinID.Load().(string)
	if pin == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	info, err := r.cons.Info(ctx)
	if err != nil {
		r.log.Warn("pin hand-over: consumer info", "err", err)
		return
	}
	for _, g := range info.PriorityGroups {
		if g.Group != orderedGroup || g.PinnedClientID != pin {
			continue
		}
		if err := r.events.UnpinConsumer(ctx, r.opt.Name, orderedGroup); err != nil {
			r.log.Warn("pin hand-over: unpin", "err", err)
			return
		}
		r.log.Info("pin handed over: a standby process takes over")
	}
}
