package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Outcome is what one consumer did with one event on one attempt. The
// runtime publishes them in batches (a JSON array per message) on
// <prefix>-outcome.<consumer> in ENMESHED_OUTCOMES, each before its
// event's acknowledgement; the archiver stores them beside the events,
// a repeated one once: a record's identity is (Consumer, EventID,
// Attempt, Result).
type Outcome struct {
	Consumer  string    `json:"consumer"`
	EventID   string    `json:"event_id"`
	Result    string    `json:"result"` // ResultDelivered, ResultRetried, ResultDeadLettered, ResultPaused
	Attempt   int       `json:"attempt"`
	Error     string    `json:"error,omitempty"`
	Time      time.Time `json:"time"`
	Subject   string    `json:"subject"`
	StreamSeq uint64    `json:"stream_seq"`
}

// Outcome results.
const (
	ResultDelivered    = "delivered"
	ResultRetried      = "retried"
	ResultDeadLettered = "dead_lettered"
	ResultPaused       = "paused"
)

// DecodeOutcomes reads one outcome message.
func DecodeOutcomes(data []byte) ([]Outcome, error) {
	var out []Outcome
	err := json.Unmarshal(data, &out)
	return out, err
}

// Bounds of the outcome batcher: a message at least every flushEvery or
// flushSize records, so outcomes add a small fraction of the event
// stream's write load; sooner when holdLimit settlements wait for one
// (see newOutcomeBatcher).
const (
	flushEvery = 250 * time.Millisecond
	flushSize  = 500
)

// outcomeBatcher publishes outcome records in batches and carries out the
// settlements (acks, naks, terms) that wait for them: a settlement runs
// once every record queued before it is stored in ENMESHED_OUTCOMES, so a
// crash can repeat an outcome record (the event is redelivered and
// settled again) but never lose one.
type outcomeBatcher struct {
	js        jetstream.JetStream
	stream    jetstream.StreamConfig // ENMESHED_OUTCOMES, created again when it went missing
	subject   string
	log       *slog.Logger
	holdLimit int           // waiting settlements that call for a flush at once
	keepAlive time.Duration // how often waiting messages are signalled in progress while flushes fail
	mu        sync.Mutex
	queue     []queued
	records   int // records in queue
	waiting   int // settlements in queue
	full      chan struct{}
	lastAlive time.Time
}

// queued is an outcome record, a settlement that waits for the records
// before it, or both.
type queued struct {
	o      Outcome
	record bool
	msg    jetstream.Msg // the message then settles: signalled in progress while it waits
	then   func()
}

// newOutcomeBatcher returns a batcher publishing on subject of stream for
// a runtime whose durable admits maxAckPending unsettled messages:
// settlements waiting for a flush hold such slots, so a quarter of them
// waiting flushes at once (a small MaxAckPending would otherwise throttle
// delivery to it per flushEvery).
func newOutcomeBatcher(js jetstream.JetStream, stream jetstream.StreamConfig, subject string, log *slog.Logger, maxAckPending int, keepAlive time.Duration) *outcomeBatcher {
	return &outcomeBatcher{js: js, stream: stream, subject: subject, log: log, holdLimit: min(max(maxAckPending/4, 1), flushSize),
		keepAlive: keepAlive, full: make(chan struct{}, 1)}
}

// add queues o; then, if not nil, runs once o and every record before it
// are stored. msg is the message then settles (nil for none).
func (b *outcomeBatcher) add(o Outcome, msg jetstream.Msg, then func()) {
	b.enqueue(queued{o: o, record: true, msg: msg, then: then})
}

// after runs then once every record queued so far is stored: at once when
// none waits.
func (b *outcomeBatcher) after(msg jetstream.Msg, then func()) {
	b.mu.Lock()
	if b.records == 0 {
		b.mu.Unlock()
		then()
		return
	}
	b.mu.Unlock()
	b.enqueue(queued{msg: msg, then: then})
}

func (b *outcomeBatcher) enqueue(q queued) {
	b.mu.Lock()
	b.queue = append(b.queue, q)
	if q.record {
		b.records++
	}
	if q.then != nil {
		b.waiting++
	}
	flush := b.records >= flushSize || b.waiting >= b.holdLimit
	b.mu.Unlock()
	if flush {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

// run flushes until ctx ends, then once more.
func (b *outcomeBatcher) run(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if !b.flush(fctx) {
				b.log.Error("outcome records not stored at shutdown: their events were not acknowledged and will be redelivered")
			}
			cancel()
			return
		case <-t.C:
		case <-b.full:
		}
		b.flush(ctx)
	}
}

// flush publishes the queued records, up to flushSize a message, and runs
// the settlements that waited for each message once it is stored. It
// reports whether the queue was emptied.
func (b *outcomeBatcher) flush(ctx context.Context) bool {
	for {
		b.mu.Lock()
		// The longest head of the queue with at most flushSize records
		// and what waits for them.
		n, batch := 0, []Outcome(nil)
		for ; n < len(b.queue) && (len(batch) < flushSize || !b.queue[n].record); n++ {
			if b.queue[n].record {
				batch = append(batch, b.queue[n].o)
			}
		}
		b.mu.Unlock()
		if n == 0 {
			return true
		}
		if len(batch) > 0 {
			if err := b.publish(ctx, batch); err != nil {
				b.log.Warn("publishing outcomes failed; their events stay unacknowledged until the next flush stores them",
					"records", len(batch), "err", err)
				b.keepWaitingAlive()
				b.recreateIfMissing(ctx, err)
				return false
			}
		}
		b.mu.Lock()
		done := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.records -= len(batch)
		for _, q := range done {
			if q.then != nil {
				b.waiting--
			}
		}
		b.mu.Unlock()
		for _, q := range done {
			if q.then != nil {
				q.then()
			}
		}
		clear(done) // the queue's array keeps no settled message alive
	}
}

func (b *outcomeBatcher) publish(ctx context.Context, batch []Outcome) error {
	data, err := marshalOutcomes(batch)
	if err != nil {
		return err
	}
	m := nats.NewMsg(b.subject)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, "outcome:"+nuid.Next())
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = b.js.PublishMsg(pctx, m)
	return err
}

// marshalOutcomes is json.Marshal(batch), byte for byte, written directly:
// every event's record passes through here, and encoding/json's
// reflection cost more than the rest of recording it.
func marshalOutcomes(batch []Outcome) ([]byte, error) {
	b := make([]byte, 0, 256*len(batch)+2)
	b = append(b, '[')
	for i, o := range batch {
		if y := o.Time.Year(); y < 0 || y > 9999 {
			return json.Marshal(batch) // its error names the time
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"consumer":`...)
		b = router.AppendJSONString(b, o.Consumer)
		b = append(b, `,"event_id":`...)
		b = router.AppendJSONString(b, o.EventID)
		b = append(b, `,"result":`...)
		b = router.AppendJSONString(b, o.Result)
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(o.Attempt), 10)
		if o.Error != "" {
			b = append(b, `,"error":`...)
			b = router.AppendJSONString(b, o.Error)
		}
		b = append(b, `,"time":"`...)
		b = o.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","subject":`...)
		b = router.AppendJSONString(b, o.Subject)
		b = append(b, `,"stream_seq":`...)
		b = strconv.AppendUint(b, o.StreamSeq, 10)
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// recreateIfMissing creates ENMESHED_OUTCOMES again when err says no
// stream took the publish (it was deleted): the events waiting for their
// records would otherwise never be acknowledged.
func (b *outcomeBatcher) recreateIfMissing(ctx context.Context, err error) {
	if streams.NoStream(err) {
		streams.RecreateIfMissing(ctx, b.js, b.stream, b.log)
	}
}

// keepWaitingAlive signals progress for the messages whose settlement
// waits for a flush that failed, at most every keepAlive, so AckWait does
// not redeliver them while ENMESHED_OUTCOMES is away.
func (b *outcomeBatcher) keepWaitingAlive() {
	b.mu.Lock()
	if time.Since(b.lastAlive) < b.keepAlive {
		b.mu.Unlock()
		return
	}
	b.lastAlive = time.Now()
	var msgs []jetstream.Msg
	for _, q := range b.queue {
		if q.msg != nil {
			msgs = append(msgs, q.msg)
		}
	}
	b.mu.Unlock()
	for _, m := range msgs {
		m.InProgress()
	}
}

// ReadOutcomes hands the outcome records of every consumer, read from
// ENMESHED_OUTCOMES through durable, to store, one message (a batch) at a
// time, until ctx ends; records may arrive before their event. It creates
// the stream when missing (the consumers may not have run yet). A message
// store fails on is read again after 1 s, 2 s, … 64 s (by its
// deliveries), so a database outage is not hammered; an unreadable one is
// dropped. Outcome messages themselves get no outcomes. The archiver
// stores them beside the events.
func (r *Runtime) ReadOutcomes(ctx context.Context, durable string, store func(context.Context, []Outcome) error) {
	def := streams.OutcomesStream(r.subjects)
	def.Replicas = r.cfg.SideStreamReplicas()
	for r.readOutcomes(ctx, durable, def, store) {
		// Set up again: the stream too, when it was deleted.
		r.log.Error("durable " + durable + " is gone (" + streams.Outcomes + " deleted?): setting it up again")
	}
}

// readOutcomes is ReadOutcomes until ctx ends (false) or its durable is
// lost (true).
func (r *Runtime) readOutcomes(ctx context.Context, durable string, def jetstream.StreamConfig, store func(context.Context, []Outcome) error) bool {
	var cons jetstream.Consumer
	err := streams.Await(ctx, r.log, "durable "+durable, func(ctx context.Context) (err error) {
		if _, err := streams.EnsureFixedStream(ctx, r.js, def); err != nil {
			return err
		}
		cons, err = r.js.CreateOrUpdateConsumer(ctx, streams.Outcomes, jetstream.ConsumerConfig{
			Durable: durable, Description: "eventmesh: the archiver's outcome reader",
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return fmt.Errorf("create durable %s: %w", durable, err)
		}
		return nil
	})
	if err != nil { // only when ctx ended
		return false
	}
	return r.follow(ctx, "outcome", cons, func(msg jetstream.Msg) (Delivery, verdict) {
		os, err := DecodeOutcomes(msg.Data())
		if err != nil {
			return Delivery{}, verdict{fate: drop, reason: "unreadable outcome message; dropping it", err: err}
		}
		// Bounded, so a hung database cannot hold shutdown forever.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = store(sctx, os)
		cancel()
		if err != nil {
			return Delivery{}, verdict{fate: handBack, delay: outcomeRetryDelay(msg), reason: "storing outcomes failed; retrying", err: err}
		}
		return Delivery{}, verdict{fate: ackOnly}
	}, jetstream.PullMaxMessages(16))
}

// outcomeRetryDelay doubles with each delivery of an outcome message, from
// 1 s up to 64 s.
func outcomeRetryDelay(msg jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := msg.Metadata(); err == nil {
		n = md.NumDelivered
	}
	return time.Second << min(n-1, 6) // 1 s, 2 s, … 64 s
}
