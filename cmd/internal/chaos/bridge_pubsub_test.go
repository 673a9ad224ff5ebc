//go:build pubsub

package chaos

import (
	"context"
	"testing"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
)

// TestKillBridge with Google Pub/Sub: the bridge binary built with -tags
// pubsub, pointed with PUBSUB_EMULATOR_HOST at Google's fake (pstest) in
// this process, a subscription of the test's own read by a PubSubSink.
// The test itself needs the tag (pstest and the client are linked only
// then): go test -tags pubsub -run TestKillBridgePubSub ./cmd/internal/chaos.
func TestKillBridgePubSub(t *testing.T) {
	skipShort(t)
	bridge := buildBridge(t, "pubsub")
	const topic = "projects/chaos/topics/events"
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	t.Cleanup(func() { srv.Close() })
	if _, err := srv.GServer.CreateTopic(context.Background(), &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	sink, err := harness.NewPubSubSink(srv.Addr, topic, brokerName(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	killBridge(t, &bridgeTarget{env: []string{"BRIDGE_URL=pubsub://chaos/events", "PUBSUB_EMULATOR_HOST=" + srv.Addr},
		sink: sink, bin: bridge}, "messages on the subscription")
}
