package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/archiving"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What the figures share: their NATS server, the consumers' settings,
// publishing, waiting for durables to settle, payloads.

// natsEnv is the NATS server of a figure.
type natsEnv struct {
	dir string
	srv *embedded.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

// startEnv starts a fresh embedded server (its store in a new directory,
// the product's settings but for NATS_SYNC and NATS_LISTEN) and connects in
// process, as eventmesh does.
func (b *bencher) startEnv() (*natsEnv, error) {
	dir, err := os.MkdirTemp(b.tmp, "env-")
	if err != nil {
		return nil, err
	}
	cfg, err := app.Load[embedded.Config]([]string{"NATS_SYNC=" + b.opt.Sync, "NATS_LISTEN=127.0.0.1:0", "DATA_DIR=" + dir, "NATS_MAX_STORE=16GiB"})
	if err != nil {
		return nil, err
	}
	srv, err := embedded.Start(cfg, b.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	env := &natsEnv{dir: dir, srv: srv}
	if env.nc, err = srv.Connect(streams.BaseOptions("eventmesh-bench", b.log)...); err == nil {
		env.js, err = streams.NewJetStream(env.nc, b.log)
	}
	if err != nil {
		env.close()
		return nil, err
	}
	return env, nil
}

func (e *natsEnv) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	e.srv.Shutdown()
	os.RemoveAll(e.dir)
}

// startStream is startEnv with ENMESHED created as the producer does.
func (b *bencher) startStream(ctx context.Context) (*natsEnv, error) {
	env, err := b.startEnv()
	if err != nil {
		return nil, err
	}
	if _, err := streams.EnsureStream(ctx, env.js, streams.EventsStream(b.subj, b.pcfg.Stream), b.log); err != nil {
		env.close()
		return nil, err
	}
	return env, nil
}

// webhookConfig is the webhook consumer's configuration: the defaults
// (WEBHOOK_CONCURRENCY 16, …), signed, to url, starting at start (""
// keeps the default, new).
func (b *bencher) webhookConfig(url, start string) (webhook.ConsumerConfig, error) {
	env := []string{"WEBHOOK_URL=" + url, "WEBHOOK_SECRET=" + secret}
	if start != "" {
		env = append(env, "WEBHOOK_START="+start)
	}
	return app.Load[webhook.ConsumerConfig](env)
}

// archiveConfig is the archiver's configuration: the defaults, the store
// dsn names, no HTTP API.
func (b *bencher) archiveConfig(dsn string) (archiving.Config, error) {
	c, err := app.Load[archiving.Config]([]string{"ARCHIVE_DSN=" + dsn})
	c.Archive.Addr = ""
	return c, err
}

// publish publishes n events with async publishes (up to the
// client's window in flight) and returns messages per second and the
// stream sequence of each.
func publish(ctx context.Context, js jetstream.JetStream, s router.Subjects, n int, event func(i int) router.Event) (float64, []uint64, error) {
	futs := make([]jetstream.PubAckFuture, n)
	start := time.Now()
	for i := range n {
		f, err := js.PublishMsgAsync(event(i).Msg(s), jetstream.WithStallWait(time.Minute))
		if err != nil {
			return 0, nil, err
		}
		futs[i] = f
	}
	seqs := make([]uint64, n)
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			return 0, nil, err
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	return float64(n) / time.Since(start).Seconds(), seqs, nil
}

// rawConsume creates a durable per name (deliver all, explicit acks, the
// product's MaxAckPending) that acks every message, all at once, and
// returns each one's rate until its ack floor reached last. The durables
// are deleted afterwards.
func (b *bencher) rawConsume(ctx context.Context, js jetstream.JetStream, group string, names []string, n int, last uint64) ([]float64, error) {
	defer deleteDurables(context.WithoutCancel(ctx), js, names...)
	start := time.Now()
	for _, name := range names {
		cons, err := js.CreateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: 30 * time.Second, MaxAckPending: 1000})
		if err != nil {
			return nil, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { m.Ack() })
		if err != nil {
			return nil, err
		}
		defer cc.Stop()
	}
	done, err := b.settled(ctx, js, group, names, last)
	if err != nil {
		return nil, err
	}
	rates := make([]float64, len(done))
	for i, t := range done {
		rates[i] = float64(n) / t.Sub(start).Seconds()
	}
	return rates, nil
}

// settled waits until the ack floor of each durable on ENMESHED has
// reached last (everything up to it handled and acknowledged) and returns
// when each got there (polled every 10 ms). It also notes stalls: spans of
// at least half a second in which a durable had events pending on the
// server, none in flight and no pull request waiting, so nothing moved.
func (b *bencher) settled(ctx context.Context, js jetstream.JetStream, group string, names []string, last uint64) ([]time.Time, error) {
	timeout := b.timeout()
	done := make([]time.Time, len(names))
	floor := make([]uint64, len(names))
	stalled := make([]time.Time, len(names)) // since when, zero: not stalled
	endStall := func(i int, now time.Time) {
		if !stalled[i].IsZero() {
			if d := now.Sub(stalled[i]); d >= 500*time.Millisecond {
				b.stalls = append(b.stalls, Stall{Run: b.run + 1, Group: group, Durable: names[i], Seconds: d.Seconds(), Floor: floor[i]})
				fmt.Fprintf(b.stderr, "  stall: durable %s had events pending and no pull request at the server for %.1fs\n", names[i], d.Seconds())
			}
			stalled[i] = time.Time{}
		}
	}
	deadline := time.Now().Add(timeout)
	for left := len(names); left > 0; {
		for i, name := range names {
			if !done[i].IsZero() {
				continue
			}
			c, err := js.Consumer(ctx, streams.Events, name)
			if err != nil {
				continue
			}
			now, info := time.Now(), c.CachedInfo()
			floor[i] = info.AckFloor.Stream
			if floor[i] >= last {
				endStall(i, now)
				done[i] = now
				left--
				continue
			}
			if info.NumPending > 0 && info.NumAckPending == 0 && info.NumWaiting == 0 {
				if stalled[i].IsZero() {
					stalled[i] = now
				}
			} else {
				endStall(i, now)
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			var s []string
			for i, name := range names {
				s = append(s, fmt.Sprintf("%s at %d", name, floor[i]))
			}
			return nil, fmt.Errorf("not every durable settled up to stream sequence %d within %s: %s", last, timeout, strings.Join(s, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return done, nil
}

// deleteDurables deletes durables on ENMESHED (and the runtime's
// advisory durables beside them).
func deleteDurables(ctx context.Context, js jetstream.JetStream, names ...string) error {
	for _, name := range names {
		if err := js.DeleteConsumer(ctx, streams.Events, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete durable %s: %w", name, err)
		}
		adv := consumers.AdvisoryDurable(name)
		err := js.DeleteConsumer(ctx, streams.Advisories, adv)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete durable %s: %w", adv, err)
		}
	}
	return nil
}

// until waits until cond holds, polling every 10 ms, at most timeout.
func until(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready within %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// both runs a ceiling and ours, alternating which goes first from run to
// run so that neither always runs on the heels of the other's garbage.
func both(run int, ceiling, ours func() error) error {
	first, second := ceiling, ours
	if run%2 == 1 {
		first, second = ours, ceiling
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// Payloads: Connector-shaped data of about 1 KB.
var (
	msgHead = `{"id":"MSG`
	msgTail = `","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"` +
		strings.Repeat("x", 420) + `","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX",` +
		`"recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i",` +
		`"relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`
	relHead = `{"id":"`
	relTail = `","templateId":"` + templateID + `","status":"Pending","peer":"` + peerAddress + `","peerIdentity":{"address":"` + peerAddress +
		`","publicKey":"eyJwdWIiOiJCZW5jaG1hcmtQdWJsaWNLZXkwMTIzNDU2Nzg5IiwiYWxnIjozfQ"},"creationContent":{"@type":"RelationshipCreationContent",` +
		`"response":{"@type":"Response","result":"Accepted","requestId":"REQbenchRequest00001","items":[{"@type":"ReadAttributeAcceptResponseItem",` +
		`"result":"Accepted","attributeId":"ATTbenchAttribute001","attribute":{"@type":"IdentityAttribute","owner":"` + peerAddress +
		`","value":{"@type":"DisplayName","value":"` + strings.Repeat("x", 360) + `"}}}]}},"auditLog":[{"createdAt":"2026-03-01T10:15:00.120Z","createdBy":"` +
		peerAddress + `","createdByDevice":"DVCbenchDevice000001","reason":"Creation","newStatus":"Pending"}]}`
)

// message is transport.messageReceived data with message id n.
func message(n int64) []byte {
	b := make([]byte, 0, len(msgHead)+17+len(msgTail))
	b = append(b, msgHead...)
	b = fmt.Appendf(b, "%017d", n)
	return append(b, msgTail...)
}

// relationship is transport.relationshipChanged data: a new relationship
// request from the peer, relationship id (REL and 17 characters).
func relationship(id string) []byte {
	b := make([]byte, 0, len(relHead)+len(id)+len(relTail))
	b = append(b, relHead...)
	b = append(b, id...)
	return append(b, relTail...)
}
