//go:build pubsub

package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eventmesh/eventmesh/router"
)

// PubSubSink is the broker-side consumer of a bridge run on a Pub/Sub
// emulator (pstest in tests, the bridge pointed at it with
// PUBSUB_EMULATOR_HOST): a subscription of its own to the bridge's topic,
// created before the bridge publishes (Pub/Sub keeps a message only for
// the subscriptions that exist when it is published). It counts the
// messages by their ce-id attribute (the enmeshed format's and the
// binding's are named alike) and acks each; Close deletes the
// subscription. Built with -tags pubsub, as is the bridge's publisher.
type PubSubSink struct {
	tally
	client *pubsub.Client
	sub    string
	cancel context.CancelFunc
	done   chan struct{}
}

// NewPubSubSink creates the subscription name (an id) on topic
// (projects/PROJECT/topics/TOPIC) of the emulator at addr (host:port,
// plain gRPC, no credentials) and reads it until Close.
func NewPubSubSink(addr, topic, name string) (*PubSubSink, error) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != "topics" {
		return nil, fmt.Errorf("pubsub sink: topic %q: want projects/PROJECT/topics/TOPIC", topic)
	}
	ctx, cancel := context.WithCancel(context.Background())
	client, err := pubsub.NewClient(ctx, parts[1], option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		cancel()
		return nil, err
	}
	s := &PubSubSink{client: client, sub: "projects/" + parts[1] + "/subscriptions/" + name, cancel: cancel, done: make(chan struct{})}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if _, err := client.SubscriptionAdminClient.CreateSubscription(cctx, &pubsubpb.Subscription{Name: s.sub, Topic: topic, AckDeadlineSeconds: 10}); err != nil {
		cancel()
		client.Close()
		return nil, fmt.Errorf("pubsub sink: create subscription: %w", err)
	}
	go s.read(ctx)
	return s, nil
}

func (s *PubSubSink) read(ctx context.Context) {
	defer close(s.done)
	err := s.client.Subscriber(s.sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		s.add(m.Attributes[router.HeaderID], time.Now())
		m.Ack()
	})
	if err != nil && ctx.Err() == nil {
		s.fail(fmt.Errorf("pubsub sink: receive: %w", err))
	}
}

// Close stops reading and deletes the subscription.
func (s *PubSubSink) Close() {
	s.cancel()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: s.sub})
	s.client.Close()
}
