package consumers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// breaker is the circuit breaker, for a receiver that is down rather than
// one that fails some requests or some events. It judges distinct events,
// not attempts: it opens when, within the window, at least minEvents
// distinct events were attempted and at least ratio of them failed (an
// event counts once however often it was retried: failed when its last
// attempt in the window failed), and the latest threshold attempts or more
// all failed. Open, this process stops fetching for the cool-down, then
// probes with one event, one that has not failed when there is one; a
// successful probe closes it and empties the window. It is local to the
// process, not a server pause.
type breaker struct {
	threshold int // the shortest run of consecutive failed attempts that opens it; 0: never opens
	ratio     float64
	minEvents int
	window    time.Duration
	now       func() time.Time
	trip      chan struct{} // told when a failure opens it, to stop fetching

	isOpen atomic.Bool // read on every message: no lock

	mu          sync.Mutex
	consecutive int                  // failed attempts since the last success
	failing     map[uint64]time.Time // events (stream sequences) whose last attempt in the window failed: when
	failures    []failure            // failing's entries in the order they failed; stale ones are skipped
	delivered   []bucket             // the events delivered in the window, counted per slice of it
	nDelivered  int                  // the sum of delivered
	since       time.Time            // when it last opened or closed
	probing     uint64               // the probe's stream sequence while one runs
}

type failure struct {
	seq uint64
	at  time.Time
}

// bucket counts the events delivered in a slice of the window starting at
// start; the slice is a sixty-fourth of the window.
type bucket struct {
	start time.Time
	n     int
}

func newBreaker(cfg Config, o Options, now func() time.Time) *breaker {
	b := &breaker{threshold: cfg.BreakerThreshold, ratio: cfg.BreakerFailureRatio, minEvents: cfg.BreakerMinEvents,
		window: cfg.BreakerWindow, now: now, trip: make(chan struct{}, 1), failing: map[uint64]time.Time{}, since: now()}
	if o.OrderKey != nil {
		b.threshold = 0 // in per-key order mode retries wait in place, so nothing is hammered
	}
	return b
}

// open reports whether the breaker holds fetching.
func (b *breaker) open() bool { return b.isOpen.Load() }

// state reports whether the breaker is open, and since when it is open or
// closed (since the runtime started, when it never opened).
func (b *breaker) state() (open bool, since time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.isOpen.Load(), b.since
}

// failed counts a failed attempt of the event at stream sequence seq; the
// failure that opens the breaker trips it.
func (b *breaker) failed(seq uint64) {
	if b.threshold == 0 {
		return
	}
	b.mu.Lock()
	now := b.now()
	b.consecutive++
	b.failing[seq] = now
	if b.window > 0 {
		b.failures = append(b.failures, failure{seq, now}) // an earlier entry of seq is stale now
	}
	b.expire(now)
	opens := !b.isOpen.Load() && b.shouldOpen()
	if opens {
		b.isOpen.Store(true)
		b.since = now
	}
	b.mu.Unlock()
	if opens {
		select {
		case b.trip <- struct{}{}:
		default:
		}
	}
}

// shouldOpen applies the rule; b.mu is held and the window expired.
func (b *breaker) shouldOpen() bool {
	events := b.nDelivered + len(b.failing)
	return b.consecutive >= b.threshold && events >= b.minEvents &&
		float64(len(b.failing)) >= b.ratio*float64(events)
}

// succeeded counts the delivery of the event at stream sequence seq. It
// closes the breaker only when it is the probe's: while the breaker is
// open, an event that was in flight when it opened proves little.
func (b *breaker) succeeded(seq uint64) {
	if b.threshold == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if b.isOpen.Load() && seq == b.probing {
		b.reset()
		b.isOpen.Store(false)
		b.since = now
		return
	}
	b.consecutive = 0
	// The failing entry goes; its place in failures is then stale.
	delete(b.failing, seq)
	if b.window > 0 {
		if n := len(b.delivered); n > 0 && now.Sub(b.delivered[n-1].start) < b.window/64 {
			b.delivered[n-1].n++
		} else {
			b.delivered = append(b.delivered, bucket{start: now, n: 1})
		}
		b.nDelivered++
	}
	b.expire(now)
}

// expire forgets what happened before the window; b.mu is held.
func (b *breaker) expire(now time.Time) {
	cutoff := now.Add(-b.window)
	i := 0
	for ; i < len(b.failures) && !b.failures[i].at.After(cutoff); i++ {
		if f := b.failures[i]; b.failing[f.seq].Equal(f.at) {
			delete(b.failing, f.seq)
		}
	}
	b.failures = b.failures[i:]
	// An event failing again within the window left a stale entry: keep
	// failures from growing with them.
	if len(b.failures) > 2*len(b.failing)+64 {
		live := b.failures[:0:0]
		for _, f := range b.failures {
			if at, ok := b.failing[f.seq]; ok && at.Equal(f.at) {
				live = append(live, f)
			}
		}
		b.failures = live
	}
	if b.window <= 0 { // no window: only the run of failures counts
		clear(b.failing)
	}
	i = 0
	for ; i < len(b.delivered) && !b.delivered[i].start.After(cutoff); i++ {
		b.nDelivered -= b.delivered[i].n
	}
	b.delivered = b.delivered[i:]
}

// reset empties the window; b.mu is held.
func (b *breaker) reset() {
	b.consecutive, b.nDelivered, b.probing = 0, 0, 0
	clear(b.failing)
	b.failures, b.delivered = nil, nil
}

// known reports whether the event at stream sequence seq failed in the
// window.
func (b *breaker) known(seq uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.failing[seq]
	return ok
}

// counts returns the distinct events attempted in the window and how many
// of them failed, for the log.
func (b *breaker) counts() (events, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(b.now())
	return b.nDelivered + len(b.failing), len(b.failing)
}

// probe marks the event at stream sequence seq as the probe's.
func (b *breaker) probe(seq uint64) {
	b.mu.Lock()
	b.probing = seq
	b.mu.Unlock()
}

// admit is the breaker's check on messages about to be handled: it
// reports whether msgs may go to a handler now. While the breaker is open
// or the gate closed (either may have happened while they waited for a
// worker or for their batch to fill) it releases them instead. ctx is the
// fetch loop's.
func (r *Runtime) admit(ctx context.Context, msgs ...jetstream.Msg) bool {
	if r.admits() {
		return true
	}
	r.release(ctx, msgs...)
	return false
}

// admits reports whether events may go to a handler now: the breaker is
// closed and the gate (if any) open.
func (r *Runtime) admits() bool {
	return !r.breaker.open() && (r.opt.Gate == nil || r.opt.Gate.IsOpen())
}

// coolDown reports whether the breaker is open, and while it is, holds
// fetching for the cool-down and then probes with one event (ctx is the
// fetch loop's, hctx the handlers'). What else the probe fetched comes
// back in rest when the probe closed the breaker, for the workers to
// handle. It keeps the breaker gauge.
func (r *Runtime) coolDown(ctx, hctx context.Context) (open bool, rest []jetstream.Msg) {
	if !r.breaker.open() {
		r.setBreaker(false)
		return false, nil
	}
	r.setBreaker(true)
	events, failed := r.breaker.counts()
	r.log.Warn("circuit breaker open: not fetching", "cooldown", r.cfg.BreakerCooldown,
		"events_in_window", events, "failed_in_window", failed, "window", r.cfg.BreakerWindow)
	if streams.Sleep(ctx, r.cfg.BreakerCooldown) {
		rest = r.probe(ctx, hctx)
	}
	return true, rest
}

// probe fetches what is due (as many events as are handled in parallel,
// without waiting; else it waits for one) and handles one of them while
// the breaker is open: the first that has not failed in the window and
// was delivered the fewest times, so that a failing event's retries do
// not keep the breaker open while others would go through. Success closes
// the breaker, and the rest are returned to be handled; otherwise they are
// released.
func (r *Runtime) probe(ctx, hctx context.Context) (rest []jetstream.Msg) {
	msgs, err := fetchAll(r.cons.FetchNoWait(r.cfg.Concurrency))
	if err == nil && len(msgs) == 0 {
		msgs, err = fetchAll(r.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second)))
	}
	if err != nil && len(msgs) == 0 {
		r.log.Warn("probe fetch", "err", err)
		return nil
	}
	if len(msgs) == 0 {
		return nil
	}
	pick := r.probeChoice(msgs)
	probe := msgs[pick]
	rest = append(msgs[:pick:pick], msgs[pick+1:]...)
	if md, err := probe.Metadata(); err == nil {
		r.breaker.probe(md.Sequence.Stream)
	}
	if r.opt.BatchHandler != nil {
		r.processBatch(hctx, []jetstream.Msg{probe}) // a batch consumer has no single-event Handler
	} else {
		r.process(hctx, probe)
	}
	if ctx.Err() == nil && !r.breaker.open() {
		r.log.Info("circuit breaker closed: the probe succeeded")
		return rest
	}
	r.release(ctx, rest...)
	return nil
}

// probeChoice returns the index in msgs of the probe: the first event that
// has not failed in the window, among those the one delivered the fewest
// times (an event that failed before the window shows it in its count).
func (r *Runtime) probeChoice(msgs []jetstream.Msg) int {
	best, bestFailed, bestDelivered := 0, true, uint64(1<<63)
	for i, msg := range msgs {
		md, err := msg.Metadata()
		if err != nil {
			return i // settled at once as unreadable: a probe that tells nothing, but costs nothing
		}
		failed := r.breaker.known(md.Sequence.Stream)
		if (!failed && bestFailed) || (failed == bestFailed && md.NumDelivered < bestDelivered) {
			best, bestFailed, bestDelivered = i, failed, md.NumDelivered
		}
	}
	return best
}

// fetchAll collects the messages of a fetch.
func fetchAll(batch jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for msg := range batch.Messages() {
		msgs = append(msgs, msg)
	}
	return msgs, batch.Error()
}

// setBreaker sets the breaker-open gauge.
func (r *Runtime) setBreaker(open bool) {
	v := 0.0
	if open {
		v = 1
	}
	r.opt.Metrics.breakerOpen.WithLabelValues(r.opt.Name).Set(v)
}
