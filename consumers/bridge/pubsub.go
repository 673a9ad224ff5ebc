package bridge

import (
	"context"
	"errors"
)

// PubSubConfig holds the BRIDGE_PUBSUB_* settings.
type PubSubConfig struct{}

// Destination names what the bridge publishes to (durable naming); the
// project and topic are in BRIDGE_URL.
func (c PubSubConfig) Destination() string { return "" }

// validate checks the Pub/Sub settings.
func (c PubSubConfig) validate() error { return nil }

// openPubSub opens the PubSub publisher (scheme pubsub).
func openPubSub(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the pubsub scheme is not built yet")
}
