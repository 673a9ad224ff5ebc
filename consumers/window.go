package consumers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// window bounds what one process of a Handler without per-key order holds:
// events handed to the workers and not yet handled, waiting for a worker
// or in a handler, at most size of them (windowFactor × Concurrency, at most
// MaxAckPending). It is filled by one pull request for the free room once
// half of it is free, so a pull brings many events: the server's and the
// client's work per pull request costs about as much as that of the
// events a pull of a handful brings (Consume with Concurrency messages
// refills a few at a time). Events it holds, waiting for a worker or in a
// handler, are signalled in progress by one ticker, so AckWait does not
// fire while they wait behind slow handlers or under a slow handler (a
// timer per attempt would cost more than the rest of the runtime's work
// on an event).
type window struct {
	size int
	room chan struct{} // signalled when an event leaves

	mu    sync.Mutex
	held  int                         // handed over, the worker not yet done with them
	since map[jetstream.Msg]time.Time // those kept alive (not yet handled or handed back): since when
}

// windowFactor is the window's size as a multiple of Concurrency.
const windowFactor = 4

func newWindow(concurrency, maxAckPending int) *window {
	return &window{size: max(1, min(windowFactor*concurrency, maxAckPending)), room: make(chan struct{}, 1),
		since: make(map[jetstream.Msg]time.Time)}
}

// capacity is the work queue's room: the window's size (0 without one).
func (w *window) capacity() int {
	if w == nil {
		return 0
	}
	return w.size
}

// enter counts msg in, waiting for a worker.
func (w *window) enter(msg jetstream.Msg) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.held++
	w.since[msg] = time.Now()
	w.mu.Unlock()
}

// holds reports whether msg is in the window (and so kept alive by it).
func (w *window) holds(msg jetstream.Msg) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	_, ok := w.since[msg]
	w.mu.Unlock()
	return ok
}

// done stops keeping msg alive: its handler returned, or it is about to be
// handed back. It is called before msg's nak, and the ticker signals under
// the same lock, so no in-progress signal can follow a nak with a delay
// (the server would count the delay from the signal instead: a retry due in
// ten minutes would come after AckWait).
func (w *window) done(msg jetstream.Msg) {
	if w == nil {
		return
	}
	w.mu.Lock()
	delete(w.since, msg)
	w.mu.Unlock()
}

// leave: a worker is done with msg (handled or handed back).
func (w *window) leave(msg jetstream.Msg) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.held--
	delete(w.since, msg)
	w.mu.Unlock()
	select {
	case w.room <- struct{}{}:
	default:
	}
}

// await returns the free room once at least half the window is free,
// or false when ctx ends first.
func (w *window) await(ctx context.Context) (int, bool) {
	for {
		w.mu.Lock()
		free := w.size - w.held
		w.mu.Unlock()
		if free > 0 && free >= w.size/2 {
			return free, true
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-w.room:
		}
	}
}

// keepAlive signals progress, every every until ctx ends, for the events
// kept alive longer than every (the first signal comes at most 2 × every
// after an event entered). It signals holding the lock (see done): a
// signal is a buffered publish, and there are at most size of them.
func (w *window) keepAlive(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			w.mu.Lock()
			for m, since := range w.since {
				if now.Sub(since) >= every {
					m.InProgress() // acknowledged or terminated meanwhile: an error, nothing to do
				}
			}
			w.mu.Unlock()
		}
	}
}

// windowFetch fills the window until drained: what jetstream's Consume is
// for the other modes (one pull request at a time, for the free room).
type windowFetch struct {
	cancel context.CancelFunc
	closed chan struct{}
}

func (f *windowFetch) Drain()                  { f.cancel() }
func (f *windowFetch) Closed() <-chan struct{} { return f.closed }

// Fetch timing: a pull request waits at most fetchExpiry for events, and a
// pull the server lost is noticed after two missed heartbeats.
const (
	fetchExpiry    = 5 * time.Second
	fetchHeartbeat = time.Second
)

// fetchWindow fetches into the window and hands each event to deliver
// (which must not block: the work queue has room for the window) until
// Drain; what a fetch brought is still handed to deliver after Drain, for
// it to release. Closed is closed once it stopped: after Drain, or when
// the durable is gone (signalLost).
func (r *Runtime) fetchWindow(ctx context.Context, deliver func(jetstream.Msg)) *windowFetch {
	fctx, cancel := context.WithCancel(ctx)
	f := &windowFetch{cancel: cancel, closed: make(chan struct{})}
	go func() {
		defer close(f.closed)
		for {
			n, ok := r.window.await(fctx)
			if !ok {
				return
			}
			pctx, cancelPull := context.WithTimeout(fctx, fetchExpiry)
			batch, err := r.cons.Fetch(n, jetstream.FetchContext(pctx), jetstream.FetchHeartbeat(fetchHeartbeat))
			if err == nil {
				for msg := range batch.Messages() {
					deliver(msg)
				}
				err = batch.Error()
			}
			cancelPull()
			if fctx.Err() != nil {
				return
			}
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				continue // expired: pull again
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				r.log.Warn("consume", "err", err)
				r.signalLost()
				return
			}
			r.log.Warn("consume", "err", err)
			select {
			case <-fctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return f
}
