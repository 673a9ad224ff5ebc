package consumers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// breaker is the circuit breaker: after threshold consecutive failed
// attempts this process stops fetching for the cool-down, then probes
// with one event. It is local to the process, not a server pause.
type breaker struct {
	threshold int64         // 0: never opens
	failures  atomic.Int64  // consecutive failed attempts
	trip      chan struct{} // told when a failure opens it, to stop fetching
	changed   atomic.Int64  // when it last opened or closed (Unix ns; 0: never)
}

func newBreaker(cfg Config, o Options) *breaker {
	b := &breaker{threshold: int64(cfg.BreakerThreshold), trip: make(chan struct{}, 1)}
	if o.OrderKey != nil {
		b.threshold = 0 // in per-key order mode retries wait in place, so nothing is hammered
	}
	return b
}

// open reports whether the breaker holds fetching.
func (b *breaker) open() bool { return b.threshold > 0 && b.failures.Load() >= b.threshold }

// state reports whether the breaker is open and since when it has been
// open or closed (zero: it never changed). The process's published state
// (presence.go) reads the breaker through this alone.
func (b *breaker) state() (open bool, since time.Time) {
	if ns := b.changed.Load(); ns != 0 {
		since = time.Unix(0, ns)
	}
	return b.open(), since
}

// failed counts a failed attempt; the one that opens the breaker trips it.
func (b *breaker) failed() {
	if n := b.failures.Add(1); b.threshold > 0 && n == b.threshold {
		b.changed.Store(time.Now().UnixNano())
	}
	if b.open() {
		select {
		case b.trip <- struct{}{}:
		default:
		}
	}
}

// succeeded closes the breaker.
func (b *breaker) succeeded() {
	if b.failures.Swap(0) >= b.threshold && b.threshold > 0 {
		b.changed.Store(time.Now().UnixNano())
	}
}

// admit is the breaker's check on messages about to be handled: it
// reports whether msgs may go to a handler now. While the breaker is open
// (it may have tripped while they waited for a worker or for their batch
// to fill) it releases them instead. ctx is the fetch loop's.
func (r *Runtime) admit(ctx context.Context, msgs ...jetstream.Msg) bool {
	if !r.breaker.open() {
		return true
	}
	r.release(ctx, msgs...)
	return false
}

// coolDown reports whether the breaker is open, and while it is, holds
// fetching for the cool-down and then probes with one event (ctx is the
// fetch loop's, hctx the handlers'). It keeps the breaker gauge.
func (r *Runtime) coolDown(ctx, hctx context.Context) bool {
	if !r.breaker.open() {
		r.setBreaker(false)
		return false
	}
	r.setBreaker(true)
	r.log.Warn("circuit breaker open: not fetching", "cooldown", r.cfg.BreakerCooldown, "consecutive_failures", r.breaker.failures.Load())
	if streams.Sleep(ctx, r.cfg.BreakerCooldown) {
		r.probe(ctx, hctx)
	}
	return true
}

// probe fetches and handles one event while the breaker is open; success
// closes the breaker.
func (r *Runtime) probe(ctx, hctx context.Context) {
	batch, err := r.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		r.log.Warn("probe fetch", "err", err)
		return
	}
	for msg := range batch.Messages() {
		if r.opt.BatchHandler != nil {
			r.processBatch(hctx, []jetstream.Msg{msg}) // a batch consumer has no single-event Handler
		} else {
			r.process(hctx, msg)
		}
	}
	if ctx.Err() == nil && !r.breaker.open() {
		r.log.Info("circuit breaker closed: the probe succeeded")
	}
}

// setBreaker sets the breaker-open gauge.
func (r *Runtime) setBreaker(open bool) {
	v := 0.0
	if open {
		v = 1
	}
	r.opt.Metrics.breakerOpen.WithLabelValues(r.opt.Name).Set(v)
}
