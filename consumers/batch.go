package consumers

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func (r *Runtime) batchSize() int {
	if r.opt.BatchSize > 0 {
		return r.opt.BatchSize
	}
	return 256
}

// batches collects messages from work into batches and hands each to the
// batch handler; it returns when work is closed, handing back (Nak) what
// it had collected but not handled only if the handlers' context (ctx)
// ended. stop is the fetch loop's context: while the breaker is open a
// collected batch is released, at once if stop ended, else after the
// cool-down.
func (r *Runtime) batches(stop, ctx context.Context, work <-chan jetstream.Msg) {
	size, linger := r.batchSize(), r.opt.BatchLinger
	if linger <= 0 {
		linger = 20 * time.Millisecond
	}
	batch := make([]jetstream.Msg, 0, size)
	for {
		msg, ok := <-work
		if !ok {
			return
		}
		batch = append(batch[:0], msg)
		timer := time.NewTimer(linger)
	fill:
		for len(batch) < size {
			select {
			case m, ok := <-work:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		// The breaker may have tripped while these waited.
		if r.admit(stop, batch...) {
			r.processBatch(ctx, batch)
		}
	}
}

// processBatch handles one batch and settles every message in it.
func (r *Runtime) processBatch(ctx context.Context, msgs []jetstream.Msg) {
	ds := make([]Delivery, 0, len(msgs))
	kept := msgs[:0:0]
	for _, msg := range msgs {
		if d, ok := r.prepare(ctx, msg); ok {
			ds = append(ds, d)
			kept = append(kept, msg)
		}
	}
	if len(ds) == 0 {
		return
	}
	stop := r.keepAliveWhile(kept...) // a slow database must not let AckWait fire under the write
	r.presence.inFlight.Add(int64(len(ds)))
	start := time.Now()
	err := r.opt.BatchHandler(ctx, ds)
	r.presence.inFlight.Add(-int64(len(ds)))
	stop()
	r.opt.Metrics.latency.WithLabelValues(r.opt.Name).Observe(time.Since(start).Seconds())
	for i, msg := range kept {
		r.settle(ctx, msg, ds[i], err)
	}
}
