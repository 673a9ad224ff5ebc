//go:build pubsub

package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
)

// pubsubDelay is how long the client waits for more messages before it
// sends a batch (its default is 10 ms). Each Publish waits for its own
// result, so a batch holds at most the messages in flight; waiting longer
// only adds latency.
const pubsubDelay = time.Millisecond

// pubsubPublisher publishes to one Google Pub/Sub topic and returns once
// the service stored the message (the publish result).
type pubsubPublisher struct {
	client  *pubsub.Client
	pub     *pubsub.Publisher
	topic   string // projects/PROJECT/topics/TOPIC
	format  Format
	ordered bool // BRIDGE_ORDER=per-key: Message.Key is the ordering key
	log     *slog.Logger
	warned  atomic.Bool // the topic check was refused for want of permission
}

// openPubSub opens the Pub/Sub publisher (scheme pubsub). The client finds
// credentials itself (Application Default Credentials,
// GOOGLE_APPLICATION_CREDENTIALS) and talks to PUBSUB_EMULATOR_HOST when
// that is set. Nothing is sent before the first Ready or Publish.
func openPubSub(ctx context.Context, o Options) (Publisher, error) {
	project, topic, err := pubsubTopic(o.URL)
	if err != nil {
		return nil, err
	}
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_URL: Pub/Sub client for project %s: %w", project, err)
	}
	pub := client.Publisher(topic)
	pub.PublishSettings.DelayThreshold = pubsubDelay
	p := &pubsubPublisher{client: client, pub: pub, topic: topic, format: o.Format, ordered: o.Config.Order == "per-key", log: o.Log}
	// Ordering keys need the topic's publisher in ordering mode; a
	// subscription with message ordering then receives one key's
	// messages in order.
	pub.EnableMessageOrdering = p.ordered
	if p.log == nil {
		p.log = slog.Default()
	}
	return p, nil
}

// Publish sends m and waits for its publish result: nil once Pub/Sub
// stored the message.
func (p *pubsubPublisher) Publish(ctx context.Context, m Message) error {
	msg := &pubsub.Message{Data: m.Body, Attributes: p.attributes(m.Event)}
	if p.ordered {
		msg.OrderingKey = m.Key()
	}
	_, err := p.pub.Publish(ctx, msg).Get(ctx)
	if err == nil {
		return nil
	}
	if msg.OrderingKey != "" {
		// A failed publish stops the key's later messages until resumed;
		// the runtime retries this one, in order, by its schedule.
		p.pub.ResumePublish(msg.OrderingKey)
	}
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return consumers.Pause(fmt.Errorf("pubsub: publish to %s refused: %w: give the bridge's credentials roles/pubsub.publisher on the topic, then resume the consumer", p.topic, err))
	case codes.NotFound:
		return fmt.Errorf("pubsub: topic %s (BRIDGE_URL): %w: %w", p.topic, ErrMissingDestination, err)
	}
	return fmt.Errorf("pubsub: publish to %s: %w", p.topic, err)
}

// attributes returns the message attributes of e in the configured format.
func (p *pubsubPublisher) attributes(e router.Event) map[string]string {
	attrs := make(map[string]string, 9)
	if p.format == FormatCloudEvents {
		// The Pub/Sub binding's binary mode: each attribute as ce-<name>,
		// the datacontenttype in Content-Type.
		for _, f := range CloudEventAttributes(e) {
			attrs["ce-"+f.Name] = f.Value
		}
		attrs["Content-Type"] = router.DataContentType
		return attrs
	}
	// The Connector's messageBrokerPublisher sets "namespace".
	attrs["namespace"] = e.Namespace
	for _, f := range Metadata(e) {
		attrs[f.Name] = f.Value
	}
	return attrs
}

// Ready checks that the topic exists; it never creates it. A check refused
// for want of permission (a publisher need not be allowed to read the
// topic) only warns: a refused publish pauses the consumer instead.
func (p *pubsubPublisher) Ready(ctx context.Context) error {
	_, err := p.client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: p.topic})
	switch status.Code(err) {
	case codes.OK:
		return nil
	case codes.NotFound:
		return fmt.Errorf("BRIDGE_URL: Pub/Sub topic %s: %w: create it (the bridge never creates topics)", p.topic, ErrMissingDestination)
	case codes.PermissionDenied, codes.Unauthenticated:
		if !p.warned.Swap(true) {
			p.log.Warn("pubsub: cannot check that the topic exists; publishing anyway (a refused publish pauses the consumer)", "topic", p.topic, "err", err)
		}
		return nil
	}
	return fmt.Errorf("pubsub: check topic %s: %w", p.topic, err)
}

// Close sends what is still batched and closes the client.
func (p *pubsubPublisher) Close() error {
	p.pub.Stop()
	return p.client.Close()
}
