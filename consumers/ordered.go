package consumers

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// keyedQueues runs per-key order: one queue per key, at most one event of
// a key in a handler at a time, at most concurrency keys at once.
type keyedQueues struct {
	r      *Runtime
	ctx    context.Context // the handlers' context
	mu     sync.Mutex
	queues map[string][]jetstream.Msg // present while the key is being worked on
	heads  map[string]jetstream.Msg   // the event of each key in its handler or retry wait
	slots  chan struct{}
	wg     sync.WaitGroup
	done   chan struct{} // closed by wait: ends keepAlive
}

func newKeyedQueues(r *Runtime, ctx context.Context, concurrency int) *keyedQueues {
	k := &keyedQueues{r: r, ctx: ctx, queues: map[string][]jetstream.Msg{}, heads: map[string]jetstream.Msg{},
		slots: make(chan struct{}, concurrency), done: make(chan struct{})}
	go k.keepAlive()
	return k
}

// keepAlive signals progress for every event this process holds: each
// key's head (between attempts that retry in place, whose waits may each be
// shorter than the keep-alive interval) and the events queued behind it.
// Without it the server redelivers them after AckWait: a second copy of an
// event, spent attempts, a dead letter "crashed" after MaxDeliver, or a
// standby process handling them out of order.
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
		for key, q := range k.queues {
			if h := k.heads[key]; h != nil {
				waiting = append(waiting, h)
			}
			waiting = append(waiting, q...)
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
		if h := k.heads[key]; h != nil && streamSeq(h) == seq {
			k.mu.Unlock()
			return
		}
		for i, m := range q {
			if streamSeq(m) == seq {
				q[i] = msg
				k.mu.Unlock()
				return
			}
		}
		k.queues[key] = append(q, msg)
		k.mu.Unlock()
		return
	}
	k.queues[key], k.heads[key] = nil, msg
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
	d := Delivery{Subject: msg.Subject(), StreamSeq: streamSeq(msg)}
	d.Event.Data = msg.Data()
	if key := k.r.opt.OrderKey(d); key != "" {
		return "k:" + key, d.StreamSeq
	}
	// No key: no ordering constraint.
	return "seq:" + strconv.FormatUint(d.StreamSeq, 10), d.StreamSeq
}

// streamSeq is msg's sequence in the stream (0 without metadata).
func streamSeq(msg jetstream.Msg) uint64 {
	if md, err := msg.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
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
			k.mu.Lock()
			q := k.queues[key]
			delete(k.queues, key)
			delete(k.heads, key)
			k.mu.Unlock()
			for _, m := range q {
				m.Nak()
			}
			return
		}
		k.mu.Lock()
		q := k.queues[key]
		if len(q) == 0 {
			delete(k.queues, key)
			delete(k.heads, key)
			k.mu.Unlock()
			return
		}
		msg, k.queues[key] = q[0], q[1:]
		k.heads[key] = msg
		k.mu.Unlock()
	}
}

// release hands msg and the rest of its key's queue back to the server in
// order, for the next active process.
func (k *keyedQueues) release(key string, msg jetstream.Msg) {
	k.mu.Lock()
	q := k.queues[key]
	delete(k.queues, key)
	delete(k.heads, key)
	k.mu.Unlock()
	msg.Nak()
	for _, m := range q {
		m.Nak()
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
		err := r.attempt(ctx, msg, d)
		if err == nil || IsPermanent(err) || IsPause(err) || d.Attempt >= r.cfg.MaxDeliver {
			r.settle(ctx, msg, d, err)
			return IsPause(err)
		}
		delay := r.retryDelay(err, d.Attempt)
		r.log.Warn("attempt failed; retrying in place to keep the key's order", "subject", d.Subject,
			"stream_seq", d.StreamSeq, "num_delivered", d.Attempt, "event_id", d.Event.ID, "err", err, "retry_in", delay.Round(time.Millisecond))
		r.opt.Metrics.count(r.opt.Metrics.retried, r.opt.Name, d.Event.Namespace)
		r.record(d, ResultRetried, err)
		if !r.waitInProgress(msg, delay) {
			msg.Nak() // shutting down: the next process takes over, in order
			return false
		}
		d.Attempt++
	}
}

// waitInProgress waits d while keeping msg alive; false on shutdown.
func (r *Runtime) waitInProgress(msg jetstream.Msg, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(r.keepAliveEvery())
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return true
		case <-tick.C:
			msg.InProgress()
		case <-r.stopping:
			return false
		}
	}
}
