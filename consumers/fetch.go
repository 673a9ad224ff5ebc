package consumers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
)

// consume runs the fetch loop: Consume with a worker pool while the
// circuit breaker is closed; while it is open, nothing is fetched for the
// cool-down, then one event is fetched as a probe. While the gate (if any)
// is closed, nothing is fetched at all.
func (r *Runtime) consume(ctx context.Context) error {
	// With a window, the work queue has room for all of it: handing an
	// event over never blocks the fetch.
	work := make(chan jetstream.Msg, r.window.capacity())
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	drain := r.startWorkers(ctx, hctx, cancelHandlers, work)
	defer drain()

	var keyed *keyedQueues
	if r.opt.OrderKey != nil {
		keyed = newKeyedQueues(r, hctx, r.cfg.Concurrency)
		defer keyed.wait()
	}
	for ctx.Err() == nil {
		gateChanged, held := r.gateHeld()
		if held {
			select {
			case <-ctx.Done():
			case <-gateChanged:
			}
			continue
		}
		if open, rest := r.coolDown(ctx, hctx); open {
			r.dispatch(ctx, work, rest...) // what the probe fetched besides, once it closed the breaker
			continue
		}
		deliver := func(msg jetstream.Msg) {
			if ctx.Err() != nil {
				r.release(ctx, msg) // shutting down: at once
				return
			}
			if !r.admit(ctx, msg) {
				return
			}
			if keyed != nil {
				if pin := msg.Headers().Get(router.HeaderPinID); pin != "" && pin != r.pinID.Load() {
					r.pinID.Store(pin) // only on a change: a Store boxes the string
				}
				keyed.dispatch(msg)
				return
			}
			r.dispatch(ctx, work, msg)
		}
		var cc fetching
		var err error
		if r.window != nil {
			cc = r.fetchWindow(ctx, deliver)
		} else {
			cc, err = r.cons.Consume(deliver, r.consumeOpts(ctx)...)
		}
		if err != nil {
			r.log.Error("consume failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		lost := false
		select {
		case <-ctx.Done():
		case <-r.breaker.trip:
		case <-gateChanged: // closed: stop fetching (or a blink: fetch again)
		case <-cc.Closed():
			// Ended by the server, not by us: the durable was deleted
			// (nats consumer rm, the stream re-created) or refused a pull.
			lost = ctx.Err() == nil
		case <-r.lost:
			lost = ctx.Err() == nil
		}
		cc.Drain()
		<-cc.Closed()
		if lost {
			if err := r.setUpAgain(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// gateHeld reports whether the gate holds fetching now, with a channel
// closed at the gate's next change (nil, never closed, without a gate).
func (r *Runtime) gateHeld() (changed <-chan struct{}, held bool) {
	if r.opt.Gate == nil {
		return nil, false
	}
	open, changed := r.opt.Gate.state()
	return changed, !open
}

// startWorkers starts what handles the messages the fetch loop puts on
// work: Concurrency workers, or one batcher. The returned drain stops
// them: no more dispatch, in-flight handlers get DrainTimeout, then
// cancelHandlers ends their context (ctx is the fetch loop's, hctx the
// handlers').
func (r *Runtime) startWorkers(ctx, hctx context.Context, cancelHandlers context.CancelFunc, work chan jetstream.Msg) (drain func()) {
	var workers sync.WaitGroup
	if r.opt.BatchHandler != nil {
		workers.Go(func() { r.batches(ctx, hctx, work) })
	} else {
		for range r.cfg.Concurrency {
			workers.Go(func() {
				for msg := range work {
					// Shutting down, msg waited in the queue: released at
					// once. The breaker may have tripped (or the gate
					// closed) while msg waited for a worker: it let msg
					// through, but msg must not run.
					if ctx.Err() == nil && r.admits() {
						r.process(hctx, msg)
					} else {
						r.window.done(msg) // before the nak
						r.release(ctx, msg)
					}
					r.window.leave(msg)
				}
			})
		}
	}
	stopAlive := func() {}
	if r.window != nil {
		var alive context.Context
		alive, stopAlive = context.WithCancel(context.Background())
		go r.window.keepAlive(alive, r.keepAliveEvery())
	}
	return func() {
		close(work)
		defer stopAlive()
		done := make(chan struct{})
		go func() { workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(r.cfg.DrainTimeout):
			r.log.Warn("drain timeout: cancelling handlers still running (their events are redelivered)")
			cancelHandlers()
			<-done
		}
	}
}

// dispatch hands msgs to the workers, or back to the server when ctx (the
// fetch loop's) ends first.
func (r *Runtime) dispatch(ctx context.Context, work chan<- jetstream.Msg, msgs ...jetstream.Msg) {
	for _, msg := range msgs {
		r.window.enter(msg)
		select {
		case work <- msg:
		case <-ctx.Done():
			r.window.leave(msg)
			r.giveBack(ctx, 0, msg)
		}
	}
}

// fetching is what the fetch loop holds while events come: jetstream's
// ConsumeContext, or a windowFetch.
type fetching interface {
	Drain()
	Closed() <-chan struct{}
}

func (r *Runtime) consumeOpts(ctx context.Context) []jetstream.PullConsumeOpt {
	limit := jetstream.PullConsumeOpt(jetstream.PullMaxMessages(r.cfg.Concurrency))
	if r.opt.BatchHandler != nil {
		// The next batch arrives while one is written; every pull is
		// bounded by bytes too, or big events would buffer twice the
		// batch size of them (PullMaxBytes alone would not bound the count).
		limit = jetstream.PullMaxMessagesWithBytesLimit(2*r.batchSize(), r.batchBytes())
	}
	opts := []jetstream.PullConsumeOpt{
		limit,
		// Short pull requests: after a pause is lifted (by any process) a
		// new request reaches the server within seconds.
		jetstream.PullExpiry(5 * time.Second),
		// A pull the server lost is noticed after two missed heartbeats:
		// keep that short, or a consumer can sit idle with work waiting.
		jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil {
				r.log.Warn("consume", "err", err)
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				r.signalLost()
			}
		}),
	}
	if r.opt.OrderKey != nil {
		opts = append(opts, jetstream.PullPriorityGroup(orderedGroup))
	}
	return opts
}

// release hands back messages this process will not handle now, instead
// of letting them wait out AckWait in a buffer: at once on shutdown (ctx,
// the fetch loop's, ended); while the breaker is open, after the cool-down
// or the retry schedule's delay for the deliveries so far, whichever is
// longer: each hand-back costs a delivery of the MAX_DELIVER budget, so
// an event held back again and again spends it no faster than one failing.
// While only the gate is closed, after the retry schedule's delay alone:
// nothing is fetched until it opens, and a broker connection restored after
// a short cut should not wait out the breaker's cool-down.
func (r *Runtime) release(ctx context.Context, msgs ...jetstream.Msg) {
	cooldown := time.Duration(0)
	if r.breaker.open() {
		cooldown = r.cfg.BreakerCooldown
	}
	for _, msg := range msgs {
		delay := time.Duration(0)
		if ctx.Err() == nil {
			delay = cooldown
			if md, err := msg.Metadata(); err == nil {
				delay = max(delay, r.cfg.Delay(int(md.NumDelivered)))
			}
		}
		r.giveBack(ctx, delay, msg)
	}
}

// process handles one message and settles it.
func (r *Runtime) process(ctx context.Context, msg jetstream.Msg) {
	d, ok := r.prepare(ctx, msg)
	if !ok {
		return
	}
	r.settle(ctx, msg, d, r.attempt(ctx, msg, d))
}

// prepare reads the delivery from msg; false when msg was settled already
// (no delivery of a stream, not an event of ours, or outside the trigger
// patterns).
func (r *Runtime) prepare(ctx context.Context, msg jetstream.Msg) (Delivery, bool) {
	md, err := msg.Metadata()
	if err != nil {
		r.carryOut(ctx, msg, Delivery{Subject: msg.Subject()}, verdict{fate: drop, reason: "message without metadata; terminating", err: err})
		return Delivery{}, false
	}
	d := Delivery{Subject: msg.Subject(), StreamSeq: md.Sequence.Stream, Attempt: int(md.NumDelivered)}
	ev, err := router.FromMsg(msg.Headers(), msg.Data())
	if err != nil {
		d.Event.Data = msg.Data() // all a dead letter can keep of it
		r.settle(ctx, msg, d, Permanent(err))
		return d, false
	}
	d.Event = ev
	if r.opt.Match != nil && !r.subjects.IsReplay(d.Subject) && !r.opt.Match(ev.Namespace) {
		// Outside the trigger patterns the server filter could not express.
		r.carryOut(ctx, msg, d, verdict{fate: ackOnly})
		return d, false
	}
	return d, true
}

// attempt calls the handler once, keeping AckWait from firing under it
// (the window does, for the events it holds, until the handler returns:
// what follows may be a nak with a delay).
func (r *Runtime) attempt(ctx context.Context, msg jetstream.Msg, d Delivery) error {
	if r.window.holds(msg) {
		defer r.window.done(msg)
	} else {
		stop := r.keepAliveWhile(msg)
		defer stop()
	}
	return r.handle(ctx, d)
}

// handle calls the handler once and observes its latency. The caller keeps
// the message alive (attempt, or keyedQueues in per-key order).
func (r *Runtime) handle(ctx context.Context, d Delivery) error {
	r.presence.inFlight.Add(1)
	defer r.presence.inFlight.Add(-1)
	start := time.Now()
	err := r.opt.Handler.Handle(ctx, d)
	r.opt.Metrics.latency.WithLabelValues(r.opt.Name).Observe(time.Since(start).Seconds())
	return err
}

// keepAliveWhile signals progress for msgs every keepAliveEvery until the
// returned stop is called, so AckWait does not fire under a long handler.
// It runs for every attempt, and most end long before the first signal:
// a timer costs nothing until it fires, a goroutine with a ticker would
// be started and stopped each time.
func (r *Runtime) keepAliveWhile(msgs ...jetstream.Msg) (stop func()) {
	every := r.keepAliveEvery()
	var mu sync.Mutex
	stopped := false
	mu.Lock()
	defer mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		for _, m := range msgs {
			m.InProgress()
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// keepAliveEvery is how often a message held longer than a moment is
// signalled in progress, so AckWait does not fire under it.
func (r *Runtime) keepAliveEvery() time.Duration { return max(r.cfg.AckWait/3, 100*time.Millisecond) }
