// Package producer brings events into the mesh: the Connector webhook
// ingest, and the publisher every source shares, which answers only after
// JetStream has stored an event.
package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AsyncPublisher is the part of jetstream.JetStream the publisher needs.
type AsyncPublisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// ErrUnavailable is wrapped by every publish failure: JetStream did not
// store the event (no server, a timeout, a full stream). Ingest answers 503.
var ErrUnavailable = errors.New("event stream unavailable")

// Result is what JetStream said about one published event.
type Result struct {
	Seq       uint64 // stream sequence of the event (of the first copy for a duplicate)
	Duplicate bool   // the stream already held an event with this Nats-Msg-Id
}

// Publisher publishes events and waits for JetStream's acknowledgement.
// Publishes are pipelined (many in flight on one connection), each attempt
// has its own timeout, and a failed attempt is retried with the same
// Nats-Msg-Id, so a leader change or a lost ack costs a retry, never a
// second copy of the event.
type Publisher struct {
	js       AsyncPublisher
	subjects router.Subjects
	timeout  time.Duration
	attempts int
	log      *slog.Logger
	noStream func() // told when a publish found no stream (see OnNoStream)
}

// PublisherConfig is the publisher's part of the producer configuration.
type PublisherConfig struct {
	Timeout  time.Duration `env:"PUBLISH_TIMEOUT" envDefault:"2s" desc:"time to wait for JetStream to acknowledge one publish attempt"`
	Attempts int           `env:"PUBLISH_ATTEMPTS" envDefault:"3" desc:"publish attempts per event before ingest answers 503 (retries keep the event id, so they never duplicate)"`
}

// Validate checks the settings.
func (c PublisherConfig) Validate() error {
	if c.Timeout < 10*time.Millisecond {
		return fmt.Errorf("PUBLISH_TIMEOUT %s: want at least 10ms", c.Timeout)
	}
	if c.Attempts < 1 || c.Attempts > 20 {
		return fmt.Errorf("PUBLISH_ATTEMPTS %d: want 1 to 20", c.Attempts)
	}
	return nil
}

// NewPublisher returns a publisher on js (see streams.NewJetStream for its
// options) for the subject scheme s.
func NewPublisher(js AsyncPublisher, s router.Subjects, c PublisherConfig, log *slog.Logger) *Publisher {
	return &Publisher{js: js, subjects: s, timeout: c.Timeout, attempts: c.Attempts, log: log}
}

// OnNoStream sets f to be called (without blocking) whenever a publish
// attempt finds no stream for its subject: the stream's owner sets it up
// again (streams.KeepStream) while the attempts retry.
func (p *Publisher) OnNoStream(f func()) { p.noStream = f }

// Subjects returns the publisher's subject scheme.
func (p *Publisher) Subjects() router.Subjects { return p.subjects }

// Publish stores e on its subject and returns once JetStream acknowledged it.
func (p *Publisher) Publish(ctx context.Context, e router.Event) (Result, error) {
	return p.PublishMsg(ctx, e.Msg(p.subjects))
}

// stallWait bounds how long a publish waits for room among the in-flight
// publishes (nats.go's default of 200ms fails at once under fsync load).
const stallWait = 5 * time.Second

// PublishMsg publishes m (which must carry a Nats-Msg-Id for retries to be
// idempotent) and waits for the acknowledgement.
func (p *Publisher) PublishMsg(ctx context.Context, m *nats.Msg) (Result, error) {
	var last error
	for attempt := 1; attempt <= p.attempts; attempt++ {
		ack, err := p.attempt(ctx, m)
		if err == nil {
			return Result{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		last = err
		if p.noStream != nil && streams.NoStream(err) {
			p.noStream()
		}
		if ctx.Err() != nil || !retryable(err) {
			break
		}
		p.log.Warn("publish attempt failed; retrying with the same id", "subject", m.Subject,
			"event_id", m.Header.Get(router.HeaderMsgID), "attempt", attempt, "err", err)
		if !streams.Sleep(ctx, time.Duration(attempt)*50*time.Millisecond) {
			break
		}
	}
	return Result{}, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, m.Subject, last)
}

func (p *Publisher) attempt(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
	fut, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(stallWait))
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case ack := <-fut.Ok():
		return ack, nil
	case err := <-fut.Err():
		return nil, err
	case <-t.C:
		return nil, jetstream.ErrAsyncPublishTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// retryable reports whether another attempt may succeed: no responders (a
// leader election, a server restart) and timeouts are; a server that
// refused the event (stream full, message too large) is not.
func retryable(err error) bool {
	if Refused(err) {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 10158: a new stream leader is still storing the first copy of
		// this id; the retry will answer "duplicate", not fail.
		return apiErr.ErrorCode == errDuplicateInProcess
	}
	return true
}

// errDuplicateInProcess is JetStream's "duplicate message id is in process".
const errDuplicateInProcess jetstream.ErrorCode = 10158

// Refused reports whether a publish failed for good, whatever the retries:
// the event exceeds the server's max payload or the stream's message size
// limit.
func Refused(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}
