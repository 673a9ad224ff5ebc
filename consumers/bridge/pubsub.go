package bridge

import (
	"context"
	"errors"
)

// PubSubConfig holds the BRIDGE_PUBSUB_* settings.
type PubSubConfig struct{}

// openPubSub opens the PubSub publisher (scheme pubsub).
func openPubSub(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the pubsub scheme is not built yet")
}
