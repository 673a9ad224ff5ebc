package bench

import (
	"context"
	"strconv"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runStream: raw async publishes of n events flat out (a deep window),
// then one raw durable that consumes and acks them all.
func (b *bencher) runStream(ctx context.Context, run int) error {
	env, err := b.startStream(ctx)
	if err != nil {
		return err
	}
	defer env.close()
	now := time.Now()
	event := func(base int64, i int) router.Event {
		return router.Event{ID: "raw" + strconv.FormatInt(base+int64(i), 10), Namespace: msgNS, Source: router.DefaultSource,
			Time: now, Origin: router.OriginWebhook, Data: message(base + int64(i))}
	}
	base := b.base()
	rate, seqs, err := publish(ctx, env.js, b.subj, b.events(), func(i int) router.Event { return event(base, i) })
	if err != nil {
		return err
	}
	b.add("raw_publish", rate)
	rates, err := b.rawConsume(ctx, env.js, "stream", []string{"bench-raw"}, b.events(), seqs[len(seqs)-1])
	if err != nil {
		return err
	}
	b.add("raw_consume", rates[0])
	// As many in flight as ingest has clients: each publisher waits for
	// its ack before the next, as an ingest request does.
	base = b.base()
	c, err := raw64(ctx, env.js, b.events(), func(i int) *nats.Msg { return event(base, i).Msg(b.subj) })
	if err != nil {
		return err
	}
	b.add("raw_publish_64", c)
	return nil
}

// raw64 publishes n messages from 64 goroutines, each waiting for its
// publish's ack before the next, and returns messages per second.
func raw64(ctx context.Context, js jetstream.JetStream, n int, msg func(i int) *nats.Msg) (float64, error) {
	return flatOut(ctx, n, func(i int) error {
		f, err := js.PublishMsgAsync(msg(i))
		if err != nil {
			return err
		}
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}
