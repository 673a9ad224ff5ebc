package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// AdvisoryDurable is the durable on ENMESHED_ADVISORIES that the
// processes of consumer share to catch its max-deliveries advisories.
func AdvisoryDurable(consumer string) string { return consumer + "-advisories" }

// catchAdvisories dead-letters events that exhausted MaxDeliver without a
// verdict (a process crashing on them): the server's max-deliveries
// advisories are captured in ENMESHED_ADVISORIES and read through the
// durable <consumer>-advisories that all replicas share.
func (r *Runtime) catchAdvisories(ctx context.Context) {
	name := AdvisoryDurable(r.opt.Name)
	def := streams.AdvisoriesStream()
	def.Replicas = r.cfg.SideStreamReplicas()
	for internal := 0; ; {
		var cons jetstream.Consumer
		err := streams.Retry(ctx, r.log, "durable "+name, func(ctx context.Context) (err error) {
			// The stream again too: it may have been deleted while running.
			if _, err := streams.EnsureFixedStream(ctx, r.js, def); err != nil {
				return err
			}
			cons, err = r.js.CreateOrUpdateConsumer(ctx, streams.Advisories, jetstream.ConsumerConfig{
				Durable:       name,
				Description:   "eventmesh: max-deliveries advisories of " + r.opt.Name,
				FilterSubject: streams.AdvisorySubject(r.opt.Name),
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       30 * time.Second,
				DeliverPolicy: jetstream.DeliverAllPolicy,
			})
			return err
		})
		if err != nil && serverInternal(err) && internal < setUpAgainAttempts && streams.Sleep(ctx, time.Second) {
			internal++ // a stream re-created right after its deletion can race the server's clean-up
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Error("advisory consumer; events that exhaust their deliveries without a verdict will not be dead-lettered", "err", err)
			return
		}
		internal = 0
		if !r.follow(ctx, "advisory", cons, func(msg jetstream.Msg) (Delivery, verdict) { return r.judgeAdvisory(ctx, msg) }) {
			return
		}
		r.log.Error("durable " + name + " is gone (" + streams.Advisories + " deleted?): setting the stream and the durable up again")
	}
}

// judgeAdvisory dead-letters the event a max-deliveries advisory names
// and returns the advisory's own verdict: acknowledged once the event is
// dead-lettered (or gone), read again after a second when that failed.
func (r *Runtime) judgeAdvisory(ctx context.Context, msg jetstream.Msg) (Delivery, verdict) {
	var adv maxDeliverAdvisory
	if err := json.Unmarshal(msg.Data(), &adv); err != nil || adv.StreamSeq == 0 {
		return Delivery{}, verdict{fate: drop, reason: "unreadable max-deliveries advisory", err: err}
	}
	d := Delivery{StreamSeq: adv.StreamSeq, Attempt: int(adv.Deliveries)}
	orig, err := r.events.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return d, verdict{fate: ackOnly, reason: "event exhausted its deliveries but is no longer in the stream"}
	}
	if err != nil {
		return d, verdict{fate: handBack, delay: time.Second}
	}
	d.Subject = orig.Subject
	if d.Event, err = router.FromMsg(orig.Header, orig.Data); err != nil {
		d.Event.Data = orig.Data // all a dead letter can keep of it
	}
	reason := fmt.Sprintf("no verdict after %d deliveries (the handler crashed or timed out each time)", adv.Deliveries)
	if r.carryOut(ctx, nil, d, r.decide(Permanent(errors.New(reason)), d)) != nil {
		// carryOut logged why; a full DLQ is asked less and less often.
		attempt := 1
		if md, err := msg.Metadata(); err == nil {
			attempt = int(md.NumDelivered)
		}
		return d, verdict{fate: handBack, delay: heldRetryDelay(attempt)}
	}
	return d, verdict{fate: ackOnly}
}

// maxDeliverAdvisory is the part of the server's max-deliveries
// advisory (type io.nats.jetstream.advisory.v1.max_deliver) that
// judgeAdvisory reads. It is declared here rather than taken from
// github.com/nats-io/jsm.go, whose advisory package parses a text template
// for every advisory type at start-up and links text/template, YAML and
// JSON schemas into every consumer binary: over a megabyte of resident
// memory for two numbers.
type maxDeliverAdvisory struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// follow hands each message of cons to judge and carries out the verdict,
// until ctx ends or the durable is gone (lost: deleted, or its stream
// was; the server says so, or a look every 5 s finds it); then it drains. It reads the runtime's side streams
// (advisories, outcomes); what names the reader in logs.
func (r *Runtime) follow(ctx context.Context, what string, cons jetstream.Consumer, judge func(jetstream.Msg) (Delivery, verdict), opts ...jetstream.PullConsumeOpt) (lost bool) {
	gone := make(chan struct{})
	var once sync.Once
	opts = append(opts, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if ctx.Err() == nil {
			r.log.Warn(what+" consume", "err", err)
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			once.Do(func() { close(gone) })
		}
	}))
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		d, v := judge(msg)
		r.carryOut(ctx, msg, d, v)
	}, opts...)
	if err != nil {
		r.log.Error(what+" consume", "err", err)
		return false
	}
	// A pull that was not waiting hears nothing of a deletion: look too.
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for !lost && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-gone:
			lost = ctx.Err() == nil
		case <-t.C:
			_, err := cons.Info(ctx)
			lost = errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
		}
	}
	cc.Drain()
	<-cc.Closed()
	return lost
}
