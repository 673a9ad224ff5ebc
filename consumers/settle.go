package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/router"
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
	// deadLetter: given up. Copy to ENMESHED_DLQ, terminate, count,
	// record; while the DLQ refuses the copy, hold the event (in progress)
	// and retry the copy alone.
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
// that of a dead-letter copy without msg that failed, for the caller to
// try again (with msg, the event is held instead: see deadLetter);
// carryOut has logged it.
// The ack, nak or term of an attempt that is recorded goes out once its
// outcome record is stored (recordThen).
func (r *Runtime) carryOut(ctx context.Context, msg jetstream.Msg, d Delivery, v verdict) error {
	// Built only when something is logged: this runs for every event.
	log := func() *slog.Logger { return r.logFor(msg, d) }
	m, ns := r.opt.Metrics, d.Event.Namespace
	switch v.fate {
	case ack:
		r.breaker.succeeded(d.StreamSeq)
		r.presence.succeeded(r.now())
		m.count(m.delivered, r.opt.Name, ns)
		// The ack waits for the record: it keeps only what its rare log
		// line names, not the whole delivery (which would then be moved
		// to the heap for every event).
		subject, seq, attempt, id := d.Subject, d.StreamSeq, d.Attempt, d.Event.ID
		r.recordThen(msg, d, ResultDelivered, nil, func() {
			if err := msg.Ack(); err != nil {
				at := Delivery{Subject: subject, StreamSeq: seq, Attempt: attempt, Event: router.Event{ID: id}}
				r.logDelivery(context.Background(), slog.LevelWarn, msg, at, "ack failed; the event will be redelivered",
					slog.Any("err", err))
			}
		})
	case ackOnly:
		if v.reason != "" {
			log().Error(v.reason)
		}
		r.afterRecords(msg, func() { msg.Ack() })
	case retry:
		// The commonest log line under a flaky receiver: the error is
		// formatted once, for the line and the record.
		errText := v.err.Error()
		r.logDelivery(ctx, slog.LevelWarn, msg, d, "attempt failed; retrying",
			slog.String("err", errText), slog.Duration("retry_in", v.delay.Round(time.Millisecond)))
		m.count(m.retried, r.opt.Name, ns)
		// Rounded when the nak goes out, after the record is stored:
		// the server counts the delay from then.
		r.recordTextThen(msg, d, ResultRetried, errText, func() { msg.NakWithDelay(onTick(v.delay, r.now())) })
		r.breaker.failed(d.StreamSeq)
	case retryInPlace:
		errText := v.err.Error()
		r.logDelivery(ctx, slog.LevelWarn, msg, d, "attempt failed; retrying in place to keep the key's order",
			slog.String("err", errText), slog.Duration("retry_in", v.delay.Round(time.Millisecond)))
		m.count(m.retried, r.opt.Name, ns)
		r.recordTextThen(nil, d, ResultRetried, errText, nil)
	case deadLetter:
		// Never dropped, never handled twice: a copy the DLQ refuses
		// holds msg until it lands (deadletter.go).
		return r.deadLetter(ctx, msg, d, v.reason)
	case pause:
		log().Error("PAUSING consumer on the server: "+v.err.Error(), "resume", "eventmesh consumer resume "+r.opt.Name)
		if err := PauseConsumer(ctx, r.js, r.opt.Name, v.err.Error()); err != nil {
			log().Error("pause failed", "err", err)
		}
		m.paused.WithLabelValues(r.opt.Name).Set(1)
		r.recordThen(msg, d, ResultPaused, v.err, func() { msg.NakWithDelay(time.Second) })
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

// logDelivery logs text at level with the attributes of logFor followed
// by attrs, as logFor(msg, d).LogAttrs would, without building a logger
// (which formats its attributes ahead) for one line: it runs for every
// failed attempt.
func (r *Runtime) logDelivery(ctx context.Context, level slog.Level, msg jetstream.Msg, d Delivery, text string, attrs ...slog.Attr) {
	if !r.log.Enabled(ctx, level) {
		return
	}
	if d.StreamSeq == 0 {
		r.logFor(msg, d).LogAttrs(ctx, level, text, attrs...)
		return
	}
	all := make([]slog.Attr, 0, 4+len(attrs))
	all = append(all, slog.String("subject", d.Subject), slog.Uint64("stream_seq", d.StreamSeq),
		slog.Int("num_delivered", d.Attempt), slog.String("event_id", d.Event.ID))
	r.log.LogAttrs(ctx, level, text, append(all, attrs...)...)
}

// retryDelay is the wait before the attempt after a failed attempt: what
// the error asks for (Retry-After), else the retry schedule.
func (r *Runtime) retryDelay(err error, attempt int) time.Duration {
	if delay := RetryAfter(err); delay > 0 {
		return delay
	}
	return r.cfg.Delay(attempt)
}

// retryTicks are what a retry's due time is rounded up to: the largest of
// them at most a quarter of its delay.
var retryTicks = [...]time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}

// onTick returns delay lengthened (by less than a quarter of it, at most
// 5 s) so that now+delay falls on a multiple of a tick of retryTicks. A
// retry waits out its delay on the server as an unacknowledged message,
// and the server's timer for a durable's unacknowledged messages scans
// all of them each time it fires, at the next one due: under a receiver
// failing some of thousands of requests a second, thousands wait, and a
// scan for every retry cost more than the retry's own delivery. Retries
// due on one tick share a scan. A delay under 40 ms is kept as it is.
func onTick(delay time.Duration, now time.Time) time.Duration {
	var tick time.Duration
	for _, t := range retryTicks {
		if t <= delay/4 {
			tick = t
		}
	}
	if tick == 0 {
		return delay
	}
	due := now.Add(delay)
	if past := time.Duration(due.UnixNano() % int64(tick)); past > 0 {
		due = due.Add(tick - past)
	}
	return due.Sub(now)
}

// recordThen queues the outcome record of one settled attempt of d and
// has then (the message's ack, nak or term; nil for none) carried out once
// the record is stored in ENMESHED_OUTCOMES, so that a crash can repeat
// the record but never lose it: the event stays unacknowledged until its
// record is stored. Without outcome records, or for a message that is not
// an event of ours, nothing is recorded and then runs at once.
func (r *Runtime) recordThen(msg jetstream.Msg, d Delivery, result string, err error, then func()) {
	errText := ""
	if err != nil && r.outcomes != nil {
		errText = err.Error()
	}
	r.recordTextThen(msg, d, result, errText, then)
}

// recordTextThen is recordThen with the error's text (empty for none).
func (r *Runtime) recordTextThen(msg jetstream.Msg, d Delivery, result, errText string, then func()) {
	if r.outcomes == nil || d.Event.ID == "" {
		if then != nil {
			then()
		}
		return
	}
	o := Outcome{Consumer: r.opt.Name, EventID: d.Event.ID, Result: result, Attempt: d.Attempt, Time: r.now(),
		Subject: d.Subject, StreamSeq: d.StreamSeq, Error: router.Truncate(errText, 1024)}
	var held jetstream.Msg
	if msg != nil && then != nil {
		held = msg
	}
	r.outcomes.add(o, held, then)
}

// afterRecords has then (an ack that records nothing) carried out once
// every outcome record queued before it is stored: a max-deliveries
// advisory is acknowledged only after the dead-letter record of its event.
func (r *Runtime) afterRecords(msg jetstream.Msg, then func()) {
	if r.outcomes == nil {
		then()
		return
	}
	r.outcomes.after(msg, then)
}
