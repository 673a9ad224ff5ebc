package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQPConfig holds the BRIDGE_AMQP_* settings.
type AMQPConfig struct {
	Exchange   string `env:"BRIDGE_AMQP_EXCHANGE" desc:"the exchange to publish to (the Connector's exchange); empty: RabbitMQ's default exchange; checked passively, never declared"`
	RoutingKey string `env:"BRIDGE_AMQP_ROUTING_KEY" envDefault:"{{trigger}}" desc:"routing key template; {{trigger}} is the event's namespace"`
}

// Destination names what the bridge publishes to (durable naming).
func (c AMQPConfig) Destination() string { return c.Exchange + "/" + c.RoutingKey }

// maxShortString is AMQP 0-9-1's limit on an exchange name and a routing
// key (a shortstr), in bytes.
const maxShortString = 255

// validate checks the AMQP settings.
func (c AMQPConfig) validate() error {
	if len(c.Exchange) > maxShortString {
		return fmt.Errorf("BRIDGE_AMQP_EXCHANGE: %d bytes, AMQP allows at most %d", len(c.Exchange), maxShortString)
	}
	if len(c.RoutingKey) > maxShortString {
		return fmt.Errorf("BRIDGE_AMQP_ROUTING_KEY: %d bytes, AMQP allows at most %d", len(c.RoutingKey), maxShortString)
	}
	return nil
}

// The CloudEvents AMQP binding, binary content mode: every attribute but
// datacontenttype is an application property named with this prefix;
// datacontenttype is the content-type property. The prefix is the one the
// binding's 1.0.3 draft prefers ("cloudEvents_", which JMS selectors can
// name); the released 1.0.2 wrote "cloudEvents:", and the draft asks
// receivers to understand both.
const cloudEventsPrefix = "cloudEvents_"

// errNegativeConfirm is a publish the broker refused with basic.nack (a
// full queue with x-overflow=reject-publish, an internal error): retried.
var errNegativeConfirm = errors.New("the broker refused the message (negative confirm)")

// amqpPublisher publishes to one exchange of a RabbitMQ broker over one
// connection and one channel in confirm mode, shared by every Publish call.
// A lost connection or channel is set up again in the background (link in
// amqp_link.go); meanwhile Publish fails with a retryable error.
type amqpPublisher struct {
	exchange   string
	routingKey string // template
	format     Format
	link       *amqpLink
}

// openAMQP opens the AMQP publisher (schemes amqp and amqps). It returns
// once the first connection attempt is over, whatever its outcome: a
// broker that is down is retried in the background, and Ready says when
// the bridge can publish.
func openAMQP(ctx context.Context, o Options) (Publisher, error) {
	if err := o.Config.AMQP.validate(); err != nil {
		return nil, err
	}
	if _, err := amqp.ParseURI(o.URL.String()); err != nil {
		return nil, fmt.Errorf("BRIDGE_URL: %w", scrub(err, o.URL))
	}
	link := newAMQPLink(o)
	if err := link.start(ctx); err != nil {
		return nil, err
	}
	return &amqpPublisher{
		exchange:   o.Config.AMQP.Exchange,
		routingKey: o.Config.AMQP.RoutingKey,
		format:     o.Format,
		link:       link,
	}, nil
}

// Publish publishes m mandatory and persistent and waits for its confirm,
// while other calls publish on the same channel: their confirms are in
// flight together.
func (p *amqpPublisher) Publish(ctx context.Context, m Message) error {
	key := Expand(p.routingKey, m.Event.Namespace)
	if len(key) > maxShortString {
		return consumers.Permanent(fmt.Errorf("amqp: event %s: routing key of %d bytes from BRIDGE_AMQP_ROUTING_KEY, AMQP allows at most %d", m.Event.ID, len(key), maxShortString))
	}
	if err := p.waitUnblocked(ctx); err != nil {
		return fmt.Errorf("amqp: event %s: %w", m.Event.ID, err)
	}
	s, err := p.link.session()
	if err != nil {
		return p.failure(err)
	}
	msg := p.publishing(m)
	s.returns.expect(msg.MessageId)
	dc, err := s.ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, key, true, false, msg)
	if err != nil {
		s.returns.forget(msg.MessageId)
		return p.failure(s.closeReason(ctx, err))
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		s.returns.forget(msg.MessageId)
		return fmt.Errorf("amqp: event %s: waiting for the broker's confirm: %w", m.Event.ID, context.Cause(ctx))
	}
	// RabbitMQ sends basic.return before the basic.ack of the same message,
	// so once the confirm is here, so is the return, if any.
	returned := s.returns.returned(msg.MessageId)
	switch {
	case returned != nil:
		return fmt.Errorf("amqp: event %s: exchange %q, routing key %q: %s: %w", m.Event.ID, p.exchange, key, returned.ReplyText, ErrUnroutable)
	case dc.Acked():
		return nil
	case s.ch.IsClosed():
		// The channel closed with the message unconfirmed: the library
		// nacks what is pending, so the close's reason is what counts.
		return p.failure(s.closeReason(ctx, amqp.ErrClosed))
	default:
		return fmt.Errorf("amqp: event %s: %w", m.Event.ID, errNegativeConfirm)
	}
}

// waitUnblocked returns once the broker lets the link publish, or with
// why not when ctx ended first: a publish on a connection the broker
// blocks would wait in its socket, unread. The bridge's context for a
// publish does not run out while the broker blocks (publishContext).
func (p *amqpPublisher) waitUnblocked(ctx context.Context) error {
	for {
		changed, err := p.link.blocked()
		if err == nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
	}
}

// Blocked returns nil when the broker lets the link publish, else an error
// wrapping ErrBlocked with the broker's reason (a memory or disk alarm);
// and a channel closed at the next change.
func (p *amqpPublisher) Blocked() (changed <-chan struct{}, err error) { return p.link.blocked() }

// publishing builds the AMQP message of m in the configured format.
func (p *amqpPublisher) publishing(m Message) amqp.Publishing {
	e := m.Event
	msg := amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		MessageId:    e.ID,
		Timestamp:    e.Time, // AMQP's timestamp has whole seconds; ce-time has them all
		ContentType:  router.DataContentType,
		Body:         m.Body,
	}
	fields := Metadata(e)
	msg.Headers = make(amqp.Table, len(fields))
	if p.format != FormatCloudEvents {
		for _, f := range fields {
			msg.Headers[f.Name] = f.Value
		}
		return msg
	}
	// Binary content mode: ce-<attribute> becomes cloudEvents_<attribute>
	// (as strings, the binding's canonical form, which keeps ce-time's
	// fraction of a second); the rest rides as plain headers under its own
	// name, traceparent as W3C Trace Context for AMQP has it. The
	// datacontenttype is content_type, set above (an event's is always
	// router.DataContentType).
	for _, f := range fields {
		if attr, ok := strings.CutPrefix(f.Name, "ce-"); ok {
			msg.Headers[cloudEventsPrefix+attr] = f.Value
		} else if f.Name != router.HeaderOrigin {
			msg.Headers[f.Name] = f.Value
		}
	}
	return msg
}

// failure maps a broker error to what the runtime does with it: refused
// credentials or permissions pause the consumer, a missing exchange makes
// the bridge not ready, anything else is retried.
func (p *amqpPublisher) failure(err error) error {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return fmt.Errorf("amqp: %w", err)
	}
	switch ae.Code {
	case amqp.AccessRefused, amqp.NotAllowed:
		return consumers.Pause(fmt.Errorf("amqp: the broker refused access (check the credentials in BRIDGE_URL and the user's permissions on the vhost and on BRIDGE_AMQP_EXCHANGE %q): %w", p.exchange, err))
	case amqp.NotFound:
		return fmt.Errorf("amqp: BRIDGE_AMQP_EXCHANGE: exchange %q is missing on the broker (the bridge never declares it): %w: %w", p.exchange, ErrMissingDestination, err)
	}
	return fmt.Errorf("amqp: %w", err)
}

// Ready returns nil when the connection is up, the broker does not block
// it, and the exchange exists.
// The exchange is checked with a passive declare on a channel of its own,
// since a failed declare closes its channel. The default exchange ("") is
// not checked: RabbitMQ refuses any declare of it, and it always exists.
func (p *amqpPublisher) Ready(ctx context.Context) error {
	// First: a blocked connection reads nothing, a channel would not open.
	if _, err := p.link.blocked(); err != nil {
		return err
	}
	conn, err := p.link.connection()
	if err != nil {
		return p.failure(err)
	}
	if p.exchange == "" {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return p.failure(err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclarePassive(p.exchange, "", false, false, false, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fmt.Errorf("BRIDGE_AMQP_EXCHANGE: exchange %q does not exist on the broker; create it (the bridge never declares it): %w", p.exchange, ErrMissingDestination)
		}
		return p.failure(err)
	}
	return nil
}

// Close closes the channel and the connection and stops reconnecting.
func (p *amqpPublisher) Close() error { return p.link.close() }
