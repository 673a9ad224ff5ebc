package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A message's fate is decided in one place and carried out in one place:
// decide maps a handler's result to a verdict (prepare, the advisory
// catcher and the outcome reader state their findings as verdicts of the
// same kind), and carryOut does what a verdict says: the ack, nak or term,
// the dead-letter copy, the pause, and the logging, counting and outcome
// record that go with it. settle is the two together.

// verdict is what becomes of one message.
type verdict struct {
	fate   fate
	delay  time.Duration // retry, retryInPlace, handBack: the wait before the next attempt
	reason string        // deadLetter: the dead letter's reason; ackOnly, handBack, drop: what is logged ("" for nothing)
	err    error         // retry, retryInPlace, pause: the handler's error; handBack, drop: the cause, logged
}

// fate is the kind of a verdict.
type fate uint8

const (
	// ack: handled. Acknowledge, count as delivered, record; the breaker
	// counts a delivered event (and closes, when it was the probe).
	ack fate = iota
	// ackOnly: nothing (more) to do: acknowledge, nothing counted or
	// recorded (an event outside the trigger patterns, an advisory or an
	// outcome message that was dealt with).
	ackOnly
	// retry: failed. Redeliver after delay, count, record; the breaker
	// counts a failed event.
	retry
	// retryInPlace: failed in per-key order mode. Count and record; the
	// caller waits delay and tries again, holding the event, so that later
	// events of its key cannot overtake it.
	retryInPlace
	// deadLetter: given up. Copy to ENMESHED_DLQ, terminate, count, record.
	deadLetter
	// pause: needs a person. Pause the consumer on the server and release
	// the event, to be redelivered after `eventmesh consumer resume`.
	pause
	// handBack: not handled by this process now (shutting down, the
	// breaker open, a side message to read again later). Redeliver after
	// delay; nothing counted or recorded.
	handBack
	// drop: unreadable, never to be read. Terminate and log.
	drop
)

// decide maps a handler's result for d to a verdict: nil → ack; a pause →
// pause; a permanent error or the last allowed attempt → dead-letter;
// anything else → retry after the delay the error asks for (Retry) or by
// the schedule, in place in per-key order mode.
func (r *Runtime) decide(err error, d Delivery) verdict {
	switch {
	case err == nil:
		return verdict{fate: ack}
	case IsPause(err):
		return verdict{fate: pause, err: err}
	case IsPermanent(err):
		return verdict{fate: deadLetter, reason: err.Error()}
	case d.Attempt >= r.cfg.MaxDeliver:
		return verdict{fate: deadLetter, reason: fmt.Sprintf("gave up after %d attempts: %s", d.Attempt, err)}
	case r.opt.OrderKey != nil:
		return verdict{fate: retryInPlace, delay: r.retryDelay(err, d.Attempt), err: err}
	}
	return verdict{fate: retry, delay: r.retryDelay(err, d.Attempt), err: err}
}

// settle decides the fate of msg, whose handler returned err for d, and
// carries it out.
func (r *Runtime) settle(ctx context.Context, msg jetstream.Msg, d Delivery, err error) {
	r.carryOut(ctx, msg, d, r.decide(err, d))
}

// carryOut does what v says to msg, which carries d, and logs, counts and
// records it. msg is nil for an event the server gave up on (a
// max-deliveries advisory names it): a dead letter is then copied,
// counted and recorded, and nothing is done to a message. The error is
// that of a dead-letter copy that failed (msg, if any, is then handed back
// to try again later); carryOut has logged it.
func (r *Runtime) carryOut(ctx context.Context, msg jetstream.Msg, d Delivery, v verdict) error {
	// Built only when something is logged: this runs for every event.
	log := func() *slog.Logger { return r.logFor(msg, d) }
	m, ns := r.opt.Metrics, d.Event.Namespace
	switch v.fate {
	case ack:
		if err := msg.Ack(); err != nil {
			log().Warn("ack failed; the event will be redelivered", "err", err)
		}
		r.breaker.succeeded(d.StreamSeq)
		m.count(m.delivered, r.opt.Name, ns)
		r.record(d, ResultDelivered, nil)
	case ackOnly:
		if v.reason != "" {
			log().Error(v.reason)
		}
		msg.Ack()
	case retry:
		log().Warn("attempt failed; retrying", "err", v.err, "retry_in", v.delay.Round(time.Millisecond))
		msg.NakWithDelay(v.delay)
		m.count(m.retried, r.opt.Name, ns)
		r.record(d, ResultRetried, v.err)
		r.breaker.failed(d.StreamSeq)
	case retryInPlace:
		log().Warn("attempt failed; retrying in place to keep the key's order", "err", v.err, "retry_in", v.delay.Round(time.Millisecond))
		m.count(m.retried, r.opt.Name, ns)
		r.record(d, ResultRetried, v.err)
	case deadLetter:
		if err := r.copyToDLQ(ctx, d, v.reason); err != nil {
			// Never drop silently: keep the event and try again later.
			log().Error("dead-letter failed; retrying later", "err", err)
			if msg != nil {
				msg.NakWithDelay(r.cfg.Delay(1))
			}
			return err
		}
		log().Warn("dead-lettered", "reason", v.reason)
		if msg != nil {
			msg.TermWithReason(truncate(v.reason, 256))
		}
		m.count(m.deadLettered, r.opt.Name, ns)
		r.record(d, ResultDeadLettered, errors.New(v.reason))
	case pause:
		log().Error("PAUSING consumer on the server: "+v.err.Error(), "resume", "eventmesh consumer resume "+r.opt.Name)
		if err := PauseConsumer(ctx, r.js, r.opt.Name, v.err.Error()); err != nil {
			log().Error("pause failed", "err", err)
		}
		m.paused.WithLabelValues(r.opt.Name).Set(1)
		msg.NakWithDelay(time.Second)
		r.record(d, ResultPaused, v.err)
	case handBack:
		if v.reason != "" {
			log().Warn(v.reason, "err", v.err, "retry_in", v.delay)
		}
		msg.NakWithDelay(v.delay) // a zero delay is a plain Nak
	case drop:
		log().Error(v.reason, "err", v.err)
		msg.Term()
	}
	return nil
}

// giveBack hands msgs back unhandled, for redelivery after delay.
func (r *Runtime) giveBack(ctx context.Context, delay time.Duration, msgs ...jetstream.Msg) {
	for _, msg := range msgs {
		r.carryOut(ctx, msg, Delivery{}, verdict{fate: handBack, delay: delay})
	}
}

// logFor is the logger for what is done to msg carrying d: with the
// delivery's subject, stream sequence, attempt and event id, or with
// msg's subject for a message that is no delivery of an event.
func (r *Runtime) logFor(msg jetstream.Msg, d Delivery) *slog.Logger {
	if d.StreamSeq == 0 {
		subject := d.Subject
		if subject == "" && msg != nil {
			subject = msg.Subject()
		}
		return r.log.With("subject", subject)
	}
	return r.log.With("subject", d.Subject, "stream_seq", d.StreamSeq, "num_delivered", d.Attempt, "event_id", d.Event.ID)
}

// retryDelay is the wait before the attempt after a failed attempt: what
// the error asks for (Retry-After), else the retry schedule.
func (r *Runtime) retryDelay(err error, attempt int) time.Duration {
	if delay := RetryAfter(err); delay > 0 {
		return delay
	}
	return r.cfg.Delay(attempt)
}

// record queues the outcome of one settled attempt of d (none without
// outcome records, or for a message that is not an event of ours).
func (r *Runtime) record(d Delivery, result string, err error) {
	if r.outcomes == nil || d.Event.ID == "" {
		return
	}
	o := Outcome{Consumer: r.opt.Name, EventID: d.Event.ID, Result: result, Attempt: d.Attempt, Time: r.now(),
		Subject: d.Subject, StreamSeq: d.StreamSeq}
	if err != nil {
		o.Error = truncate(err.Error(), 1024)
	}
	r.outcomes.add(o)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
