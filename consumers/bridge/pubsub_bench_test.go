//go:build pubsub

package bridge_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/eventmesh/eventmesh/consumers/bridge"
)

// BenchmarkPubSubDeliveryRate: see pubsubkafka_bench_test.go. The bare
// client is Google's client as the bridge sets it (a batch after 1 ms),
// publishing the same bodies and attributes, each goroutine waiting for its
// publish result. The server is pstest, reached through
// PUBSUB_EMULATOR_HOST.
func BenchmarkPubSubDeliveryRate(b *testing.B) {
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	defer srv.Close()
	if _, err := srv.GServer.CreateTopic(context.Background(), &pubsubpb.Topic{Name: testTopic}); err != nil {
		b.Fatal(err)
	}
	b.Setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
	p := newPKBench(b)
	pub := open(b, "pubsub://test-project/events", bridge.FormatEnmeshed, bridge.Config{})
	client, err := pubsub.NewClient(context.Background(), "test-project")
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	bare := client.Publisher(testTopic)
	bare.PublishSettings.DelayThreshold = time.Millisecond
	defer bare.Stop()
	publish := func(m bridge.Message) error {
		attrs := map[string]string{"namespace": m.Event.Namespace}
		for _, f := range bridge.Metadata(m.Event) {
			attrs[f.Name] = f.Value
		}
		_, err := bare.Publish(context.Background(), &pubsub.Message{Data: m.Body, Attributes: attrs}).Get(context.Background())
		return err
	}
	p.rates(b, pub, publish, "BRIDGE_URL=pubsub://test-project/events")
	srv.ClearMessages()
}
