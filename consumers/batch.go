package consumers

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func (r *Runtime) batchSize() int {
	if r.opt.BatchSize > 0 {
		return r.opt.BatchSize
	}
	return 256
}

// batchBytes is the byte bound of a batch and of each pull: BatchBytes
// (0: 8 MiB), raised to what the server's largest message needs.
func (r *Runtime) batchBytes() int {
	return byteBound(r.opt.BatchBytes, r.js.Conn().MaxPayload())
}

// byteBound is set (0: 8 MiB), raised to the largest message the server
// accepts (maxPayload, headers and body) plus room for its subject: a
// pull bounded below one message's size would never get that message.
func byteBound(set int, maxPayload int64) int {
	if set <= 0 {
		set = 8 << 20
	}
	return max(set, int(maxPayload)+64<<10)
}

// msgBytes is what a message holds in memory, about: its body and headers.
func msgBytes(msg jetstream.Msg) int {
	n := len(msg.Data())
	for k, vs := range msg.Headers() {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}

// idleRelease is how long the batcher waits, idle after at least a
// batch's worth of bytes, before it hands the freed memory back to the
// operating system (Go's own forced collection comes every two minutes):
// long enough for the embedded server's block caches to expire (10 s).
const idleRelease = 15 * time.Second

// batches collects messages from work into batches and hands each to the
// batch handler; it returns when work is closed, handing back (Nak) what
// it had collected but not handled only if the handlers' context (ctx)
// ended. stop is the fetch loop's context: while the breaker is open a
// collected batch is released, at once if stop ended, else after the
// cool-down.
func (r *Runtime) batches(stop, ctx context.Context, work <-chan jetstream.Msg) {
	linger := r.opt.BatchLinger
	if linger <= 0 {
		linger = 20 * time.Millisecond
	}
	b := &batcher{buf: make([]jetstream.Msg, 0, r.batchSize()), limit: r.batchBytes(), linger: linger}
	if r.opt.BatchBytes > 0 && b.limit > r.opt.BatchBytes {
		r.log.Info("batch byte bound raised to fit the server's largest message", "set", r.opt.BatchBytes, "bound", b.limit)
	}
	for {
		batch, ok := b.next(work)
		if !ok {
			return
		}
		// The breaker may have tripped while these waited.
		if r.admit(stop, batch...) {
			r.processBatch(ctx, batch)
		}
		b.done()
	}
}

// batcher collects batches in one reused buffer: up to its capacity in
// messages, closed early once it holds limit bytes.
type batcher struct {
	buf    []jetstream.Msg
	limit  int
	linger time.Duration
	held   int // bytes collected since the batcher was last idle
}

// next waits for a message on work and collects more for up to linger:
// the batch (valid until done), or false once work is closed. After at
// least limit bytes since it was last idle, a wait of idleRelease returns
// the freed memory to the operating system, once.
func (b *batcher) next(work <-chan jetstream.Msg) ([]jetstream.Msg, bool) {
	var msg jetstream.Msg
	var ok bool
	if b.held >= b.limit {
		idle := time.NewTimer(idleRelease)
		select {
		case msg, ok = <-work:
		case <-idle.C:
			// A burst's garbage, now rather than at the forced collection
			// minutes later. The first collection moves sync.Pool buffers
			// (the embedded server's blocks) aside, the second frees them.
			runtime.GC()
			debug.FreeOSMemory()
			b.held = 0
			msg, ok = <-work
		}
		idle.Stop()
	} else {
		msg, ok = <-work
	}
	if !ok {
		return nil, false
	}
	batch := append(b.buf[:0], msg)
	n := msgBytes(msg)
	timer := time.NewTimer(b.linger)
fill:
	for len(batch) < cap(batch) && n < b.limit {
		select {
		case m, ok := <-work:
			if !ok {
				break fill
			}
			batch = append(batch, m)
			n += msgBytes(m)
		case <-timer.C:
			break fill
		}
	}
	timer.Stop()
	b.buf, b.held = batch, b.held+n
	return batch, true
}

// done lets go of the batch's messages: the buffer is reused, and a slot
// past the next batch's length would otherwise keep its old message (and
// its body) alive for as long as the batches stay smaller.
func (b *batcher) done() {
	clear(b.buf)
	b.buf = b.buf[:0]
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
