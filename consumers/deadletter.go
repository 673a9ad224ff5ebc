package consumers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// deadLetter carries out a dead-letter verdict: it copies the event of d
// to ENMESHED_DLQ, then counts and records it and terminates msg once the
// record is stored. msg is nil
// for an event the server gave up on (an advisory names it): there is
// nothing to terminate, and a failed copy is returned for the caller to
// try again.
//
// A failed copy of a delivered event (ENMESHED_DLQ is full and refuses
// new entries, or cannot be reached) never runs the handler again: msg is
// held, kept in progress on the stream, and the copy alone is retried
// with a backoff (retryHeld) until it lands; then msg is terminated.
// Held events stay unacknowledged, so a durable whose dead letters cannot
// be written stops at MaxAckPending instead of piling up retries.
func (r *Runtime) deadLetter(ctx context.Context, msg jetstream.Msg, d Delivery, reason string) error {
	err := r.copyToDLQ(ctx, d, reason)
	switch {
	case err == nil:
		r.deadLettered(msg, d, reason)
	case msg == nil:
		r.logFor(msg, d).Error("dead-letter failed; retrying later", "err", err)
		return err
	case ctx.Err() != nil:
		// The handlers' context ended (the drain timed out): nothing
		// can be held any more.
		r.logFor(msg, d).Warn("dead-letter interrupted by shutdown; the event is handed back", "err", err)
		msg.Nak()
	default:
		r.hold(msg, d, reason, err)
	}
	return nil
}

// deadLettered finishes a dead letter that landed in ENMESHED_DLQ.
func (r *Runtime) deadLettered(msg jetstream.Msg, d Delivery, reason string) {
	r.logFor(msg, d).Warn("dead-lettered", "reason", reason)
	m := r.opt.Metrics
	m.count(m.deadLettered, r.opt.Name, d.Event.Namespace)
	// The term goes out once the outcome record is stored.
	r.recordThen(msg, d, ResultDeadLettered, errors.New(reason), func() {
		if msg != nil {
			msg.TermWithReason(router.Truncate(reason, 256))
		}
	})
}

// copyToDLQ copies the event of d to ENMESHED_DLQ and waits for the ack.
// The DLQ message id dlq:<consumer>:<seq> makes a second copy a no-op.
func (r *Runtime) copyToDLQ(ctx context.Context, d Delivery, reason string) error {
	ev := d.Event
	if ev.ID == "" { // not an event of ours: keep what there is, its body
		ev = router.Event{ID: fmt.Sprintf("seq-%d", d.StreamSeq), Namespace: "unknown", Data: ev.Data, Time: r.now()}
		if ns, ok := r.subjects.Namespace(d.Subject); ok {
			ev.Namespace = ns
		}
	}
	m := DeadLetterMsg(r.subjects, r.opt.Name, ev, reason, d.Attempt, d.Subject, d.StreamSeq, r.now())
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = r.js.PublishMsg(actx, m)
		cancel()
		if err == nil {
			return nil
		}
		if streams.NoStream(err) { // deleted while running: set it up again, then retry
			streams.RecreateIfMissing(ctx, r.js, r.dlqStream(), r.log)
		}
	}
	return err
}

// heldLetters are the events of this process whose dead letters
// ENMESHED_DLQ refused, oldest first.
type heldLetters struct {
	mu    sync.Mutex
	held  []heldLetter
	added chan struct{} // 1-buffered: wakes retryHeld
}

// heldLetter is one event held for its dead letter.
type heldLetter struct {
	msg    jetstream.Msg
	d      Delivery
	reason string
	since  time.Time
}

func newHeldLetters() *heldLetters { return &heldLetters{added: make(chan struct{}, 1)} }

// hold keeps msg, whose dead letter failed with err, for retryHeld.
func (r *Runtime) hold(msg jetstream.Msg, d Delivery, reason string, err error) {
	r.logFor(msg, d).Error("ENMESHED_DLQ refused the dead letter (full?): the event is held unacknowledged and the copy retried, "+
		"without running the handler again; make room with eventmesh dlq replay or eventmesh dlq purge", "err", err, "reason", reason)
	h := r.heldLetters
	h.mu.Lock()
	h.held = append(h.held, heldLetter{msg: msg, d: d, reason: reason, since: time.Now()})
	n := len(h.held)
	h.mu.Unlock()
	r.opt.Metrics.dlqHeld.WithLabelValues(r.opt.Name).Set(float64(n))
	select {
	case h.added <- struct{}{}:
	default:
	}
}

// heldRetryDelay is the wait before the n-th retry (1-based) of the held
// dead letters: 0.5 s doubling up to 5 s. One copy is tried per round, so
// a full DLQ costs one refused publish per process every 5 s.
func heldRetryDelay(n int) time.Duration {
	return min(500*time.Millisecond<<min(n-1, 4), 5*time.Second)
}

// retryHeld keeps the held events in progress and retries their dead
// letters, oldest first, until ctx ends (after the fetch loop and the
// handlers): what it still holds then is handed back for redelivery. A
// process that stops cannot keep a verdict, so the next delivery of such
// an event runs its handler again.
func (r *Runtime) retryHeld(ctx context.Context) {
	h := r.heldLetters
	keep := time.NewTicker(r.keepAliveEvery())
	defer keep.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	failed := 0 // rounds failed in a row; 0: no retry scheduled
	for {
		select {
		case <-ctx.Done():
			r.releaseHeld()
			return
		case <-keep.C:
			h.mu.Lock()
			msgs := make([]jetstream.Msg, 0, len(h.held))
			for _, l := range h.held {
				msgs = append(msgs, l.msg)
			}
			h.mu.Unlock()
			for _, m := range msgs {
				m.InProgress()
			}
		case <-h.added:
			if failed == 0 {
				failed = 1
				retry.Reset(heldRetryDelay(failed))
			}
		case <-retry.C:
			if r.copyHeld(ctx) {
				failed = 0
				continue
			}
			failed++
			retry.Reset(heldRetryDelay(failed))
		}
	}
}

// copyHeld copies the held dead letters, oldest first, and finishes each
// that lands; it stops at the first refusal. True when none is left.
func (r *Runtime) copyHeld(ctx context.Context) bool {
	h := r.heldLetters
	for {
		h.mu.Lock()
		if len(h.held) == 0 {
			h.mu.Unlock()
			return true
		}
		l := h.held[0] // only this goroutine removes: it stays the head
		h.mu.Unlock()
		if err := r.copyToDLQ(ctx, l.d, l.reason); err != nil {
			return false
		}
		h.mu.Lock()
		h.held = h.held[1:]
		n := len(h.held)
		h.mu.Unlock()
		r.opt.Metrics.dlqHeld.WithLabelValues(r.opt.Name).Set(float64(n))
		r.logFor(l.msg, l.d).Info("ENMESHED_DLQ took the held dead letter", "held_for", time.Since(l.since).Round(time.Millisecond))
		r.deadLettered(l.msg, l.d, l.reason)
	}
}

// releaseHeld hands back every held event at once, on shutdown.
func (r *Runtime) releaseHeld() {
	h := r.heldLetters
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	if len(held) == 0 {
		return
	}
	r.log.Warn("stopping with events held for their dead letters (ENMESHED_DLQ full): handed back; their next delivery runs the handler again",
		"held", len(held))
	for _, l := range held {
		r.carryOut(context.Background(), l.msg, l.d, verdict{fate: handBack})
	}
	r.opt.Metrics.dlqHeld.WithLabelValues(r.opt.Name).Set(0)
}
