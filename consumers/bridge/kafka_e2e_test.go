//go:build kafka

package bridge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// End to end through the runtime: events on ENMESHED, the bridge with the
// BRIDGE_URL of a topic not yet created (not ready, fetching nothing, the
// log naming BRIDGE_URL), then created by its owner: every event arrives
// as one record, value = data, key = the peer, ce-id header.
func TestKafkaBridgeEndToEnd(t *testing.T) {
	c := startKafka(t)
	m := newMesh(t)
	br, logs := startBridge(t, m, "BRIDGE_URL="+kafkaURL(c, "mesh.transport.messageReceived"), "BRIDGE_ORDER=per-key", "BRIDGE_DURABLE=bridge-kafka-e2e")
	sent := map[string]router.Event{}
	for i := range 40 {
		e := m.event("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%d","isOwn":false,"createdBy":"did:e:peer%d"}`, i, i%3))
		sent[e.ID] = e
	}
	natstest.WaitFor(t, 20*time.Second, "the bridge not ready for the missing topic", func() bool {
		return br.Ready(context.Background()) != nil && strings.Contains(logs.String(), "BRIDGE_URL")
	})
	if n := pending(t, m, br.Name()); n < 39 {
		t.Errorf("%d events pending: the bridge fetched while its topic was missing", n)
	}

	createTopics(t, c, "mesh.transport.messageReceived")
	recs := consumeKafka(t, c, len(sent), nil, "mesh.transport.messageReceived")
	for _, r := range recs {
		e, ok := sent[r.id()]
		if !ok {
			t.Fatalf("record %q: no event sent", r.id())
		}
		if r.value != string(e.Data) || r.key != router.OrderKey(e.Data) || r.headers["namespace"] != e.Namespace {
			t.Errorf("event %s: value %q key %q headers %v", e.ID, r.value, r.key, r.headers)
		}
	}
	natstest.WaitFor(t, 10*time.Second, "every event acknowledged", func() bool { return pending(t, m, br.Name()) == 0 })
}

// Rejected credentials through the runtime pause the consumer on the
// server after one attempt, not burning retries.
func TestKafkaBridgePausesOnRejectedCredentials(t *testing.T) {
	c := startKafka(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "bridge", "s3cret-right"), kfake.SeedTopics(1, "events"))
	answerWrongPasswords(c, map[string]string{"bridge": "s3cret-right"})
	m := newMesh(t)
	br, logs := startBridge(t, m, "BRIDGE_URL="+kafkaURL(c, "events"), "BRIDGE_KAFKA_SASL_MECHANISM=PLAIN",
		"BRIDGE_KAFKA_USER=bridge", "BRIDGE_KAFKA_PASSWORD=s3cret-wrong")
	m.event("transport.messageReceived", `{"id":"MSG1"}`)
	natstest.WaitFor(t, 30*time.Second, "the consumer paused on the server", func() bool {
		cons, err := m.js.Consumer(context.Background(), streams.Events, br.Name())
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.Paused
	})
	if strings.Contains(logs.String(), "s3cret") {
		t.Error("the password is in the log")
	}
}
