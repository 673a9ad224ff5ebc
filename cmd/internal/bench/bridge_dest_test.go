package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
)

// What the benchmarks of the bridge binary share: building it, and a
// destination of their own on each broker.

// bridgeBrokers are the brokers the bridge benchmarks deliver to: the
// machine's, named by their EVENTMESH_TEST_* variable, and the fakes this
// process runs (kfake, a fake Kafka cluster speaking the real protocol on
// free ports; pstest, Google's fake Pub/Sub server, reached through
// PUBSUB_EMULATOR_HOST), for which the bridge is built with the scheme's
// tag.
var bridgeBrokers = []struct{ scheme, env, tags string }{
	{"amqp", "EVENTMESH_TEST_AMQP", ""},
	{"mqtt", "EVENTMESH_TEST_MQTT", ""},
	{"redis", "EVENTMESH_TEST_REDIS", ""},
	{"kafka", "", "kafka"},
	{"pubsub", "", "pubsub"},
}

// buildBridge builds cmd/bridge with tags (none: its default build) under
// dir and returns the binary's path.
func buildBridge(b *testing.B, dir, tags string) string {
	if tags != "" {
		b.Setenv("GOFLAGS", strings.TrimSpace(os.Getenv("GOFLAGS")+" -tags="+tags))
	}
	bins, err := harness.Build(filepath.Join(dir, "bin-"+tags), "bridge")
	if err != nil {
		b.Fatal(err)
	}
	return bins["bridge"]
}

// bridgeDest is a destination of a benchmark's own on one broker.
type bridgeDest struct {
	url string // BRIDGE_URL
	// env is the bridge's settings naming the destination, and what any
	// client of the broker needs besides the URL (PUBSUB_EMULATOR_HOST).
	env []string
	// reset empties the destination between measurements; nil: nothing
	// to empty.
	reset func() error
}

// newBridgeDest sets up a destination named after run on the broker of
// scheme (skipping b when the broker's variable is unset) and removes it
// when b ends: a classic durable queue of RabbitMQ's default exchange, a
// topic prefix, a stream key; kfake with kafkaBrokers brokers and a topic
// of three partitions; pstest with a topic.
func newBridgeDest(b *testing.B, scheme, env, run string, kafkaBrokers int) bridgeDest {
	url := ""
	if env != "" {
		if url = os.Getenv(env); url == "" {
			b.Skipf("%s is not set", env)
		}
	}
	name := "eventmesh-" + run
	switch scheme {
	case "amqp":
		// RabbitMQ's default exchange routes to the queue the routing
		// key names.
		if err := amqpDo(url, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, true, false, false, false, nil)
			return err
		}); err != nil {
			b.Fatalf("declare queue %s: %v", name, err)
		}
		b.Cleanup(func() {
			amqpDo(url, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err })
		})
		return bridgeDest{url: url, env: []string{"BRIDGE_AMQP_ROUTING_KEY=" + name}, reset: func() error {
			return amqpDo(url, func(ch *amqp.Channel) error { _, err := ch.QueuePurge(name, false); return err })
		}}
	case "mqtt":
		return bridgeDest{url: url, env: []string{"BRIDGE_MQTT_TOPIC=" + name + "/{{trigger}}"}}
	case "redis":
		opt, err := redis.ParseURL(url)
		if err != nil {
			b.Fatal(err)
		}
		c := redis.NewClient(opt)
		reset := func() error { return c.Del(context.Background(), name).Err() }
		b.Cleanup(func() { reset(); c.Close() })
		return bridgeDest{url: url, env: []string{"BRIDGE_REDIS_STREAM=" + name}, reset: reset}
	case "kafka":
		c, err := kfake.NewCluster(kfake.NumBrokers(kafkaBrokers), kfake.SeedTopics(3, "events"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		return bridgeDest{url: "kafka://" + strings.Join(c.ListenAddrs(), ",") + "/events"}
	case "pubsub":
		srv := pstest.NewServerWithAddress("127.0.0.1:0")
		b.Cleanup(func() { srv.Close() })
		if _, err := srv.GServer.CreateTopic(context.Background(), &pubsubpb.Topic{Name: "projects/bench/topics/events"}); err != nil {
			b.Fatal(err)
		}
		return bridgeDest{url: "pubsub://bench/events", env: []string{"PUBSUB_EMULATOR_HOST=" + srv.Addr},
			reset: func() error { srv.ClearMessages(); return nil }}
	}
	b.Fatalf("no destination for scheme %q", scheme)
	return bridgeDest{}
}
