package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Outcome is what one consumer did with one event on one attempt. The
// runtime publishes them in batches (a JSON array per message) on
// <prefix>-outcome.<consumer> in ENMESHED_OUTCOMES; the archiver stores
// them beside the events.
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
// flushSize outcomes, so outcomes add a small fraction of the event
// stream's write load; at most maxBuffered wait while JetStream is away.
const (
	flushEvery  = 250 * time.Millisecond
	flushSize   = 500
	maxBuffered = 50_000
)

type outcomeBatcher struct {
	js      jetstream.Publisher
	subject string
	log     *slog.Logger
	mu      sync.Mutex
	buf     []Outcome
	full    chan struct{}
	dropped int
}

func newOutcomeBatcher(js jetstream.Publisher, subject string, log *slog.Logger) *outcomeBatcher {
	return &outcomeBatcher{js: js, subject: subject, log: log, full: make(chan struct{}, 1)}
}

func (b *outcomeBatcher) add(o Outcome) {
	b.mu.Lock()
	if len(b.buf) >= maxBuffered {
		// The archive loses this record, never the event: say so.
		b.buf = b.buf[1:]
		b.dropped++
	}
	b.buf = append(b.buf, o)
	n := len(b.buf)
	b.mu.Unlock()
	if n >= flushSize {
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
			b.flush(fctx)
			cancel()
			return
		case <-t.C:
		case <-b.full:
		}
		b.flush(ctx)
	}
}

func (b *outcomeBatcher) flush(ctx context.Context) {
	for {
		b.mu.Lock()
		n := min(len(b.buf), flushSize)
		batch := append([]Outcome(nil), b.buf[:n]...)
		dropped := b.dropped
		b.dropped = 0
		b.mu.Unlock()
		if dropped > 0 {
			b.log.Error("outcome records dropped while ENMESHED_OUTCOMES was unavailable", "dropped", dropped)
		}
		if n == 0 {
			return
		}
		data, _ := json.Marshal(batch)
		m := nats.NewMsg(b.subject)
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, "outcome:"+nuid.Next())
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := b.js.PublishMsg(pctx, m)
		cancel()
		if err != nil {
			b.log.Warn("publishing outcomes failed; keeping them for the next flush", "n", n, "err", err)
			return
		}
		b.mu.Lock()
		b.buf = b.buf[n:]
		b.mu.Unlock()
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
		return
	}
	r.follow(ctx, "outcome", cons, func(msg jetstream.Msg) (Delivery, verdict) {
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
