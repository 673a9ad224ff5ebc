// Package bridge is the bridge consumer: it delivers events from ENMESHED
// into a message broker (RabbitMQ, MQTT, Redis, Google Pub/Sub, Kafka) and
// acknowledges each event on ENMESHED only after the broker confirmed it.
// One destination per process: BRIDGE_URL, whose scheme picks the broker.
//
// Each broker is a Publisher in a file of its own (amqp.go, mqtt.go,
// redis.go, pubsub.go, kafka.go); the runtime wiring, configuration,
// formats and durable naming are shared.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/eventmesh/eventmesh/router"
)

// Message is one event as the bridge publishes it.
type Message struct {
	Event router.Event
	// Body is the message body: the event's data, or {} for an event
	// stored without data (as the Connector sends).
	Body []byte
}

// Key is the event's order key (the peer; router.OrderKey), "" when it
// has none. It decodes the data: a publisher calls it only when it needs
// the key (Kafka's record key, Pub/Sub's ordering key with per-key order).
func (m Message) Key() string { return router.OrderKey(m.Event.Data) }

// Publisher delivers messages to one broker destination. It is safe for
// concurrent use: the runtime calls Publish from BRIDGE_CONCURRENCY
// goroutines at once, and the confirms of concurrent calls are in flight
// together (never one round trip per event for the whole process).
type Publisher interface {
	// Publish sends m and returns nil once the broker confirmed it. A
	// broker that is down, a cut connection or a negative confirm is a
	// plain (retryable) error; rejected credentials or a missing permission
	// return consumers.Pause; a message no queue takes returns an error
	// wrapping ErrUnroutable. Publish never declares, changes or deletes
	// broker topology.
	Publish(ctx context.Context, m Message) error
	// Ready returns nil when the connection is up and the destination
	// exists. A missing destination returns an error wrapping
	// ErrMissingDestination that names the variable to fix.
	Ready(ctx context.Context) error
	// Close releases the connection.
	Close() error
}

// ErrUnroutable is a message the broker took but no queue did (AMQP
// mandatory publish returned): retried, then dead-lettered as "unroutable".
var ErrUnroutable = errors.New("unroutable")

// ErrMissingDestination is a destination (an exchange, a topic) that does
// not exist: the bridge is not ready and fetches nothing until it does.
var ErrMissingDestination = errors.New("destination missing")

// ErrBlocked is a broker that holds publishing back on its own for a while
// (RabbitMQ's connection.blocked on a memory or disk alarm): the bridge is
// not ready and fetches nothing until the broker lets it publish again,
// and what it published meanwhile waits for its confirm.
var ErrBlocked = errors.New("the broker blocks publishing")

// Options is what opening a Publisher takes.
type Options struct {
	URL     *url.URL    // BRIDGE_URL, parsed; its user info holds credentials: never log it (use Redacted)
	Format  Format      // BRIDGE_FORMAT
	TLS     *tls.Config // from BRIDGE_TLS_*; nil for the schemes without TLS
	Config  Config      // every BRIDGE_* setting (the broker's own in Config.AMQP, Config.MQTT, …)
	Durable string      // the durable's name (MQTT's default client id starts with it)
	Log     *slog.Logger
}

// opener opens a Publisher for one scheme.
type opener func(ctx context.Context, o Options) (Publisher, error)

// openers maps each scheme of BRIDGE_URL to its broker.
var openers = map[string]opener{
	"amqp":   openAMQP,
	"amqps":  openAMQP,
	"mqtt":   openMQTT,
	"mqtts":  openMQTT,
	"redis":  openRedis,
	"rediss": openRedis,
	"pubsub": openPubSub,
	"kafka":  openKafka,
}

// Open opens the Publisher for o.URL's scheme.
func Open(ctx context.Context, o Options) (Publisher, error) {
	open, ok := openers[o.URL.Scheme]
	if !ok {
		return nil, fmt.Errorf("BRIDGE_URL: scheme %q: want amqp, amqps, mqtt, mqtts, redis, rediss, pubsub or kafka", o.URL.Scheme)
	}
	return open(ctx, o)
}
