//go:build !pubsub

package bridge

import (
	"context"
	"errors"
)

// openPubSub refuses: this binary was built without -tags pubsub, so the
// Google Pub/Sub client (gRPC: about 19 MB more in the bridge and in
// eventmesh) is not linked.
func openPubSub(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the pubsub scheme is not built into this binary: build it with -tags pubsub (docker build --build-arg TAGS=pubsub; the image's bridge has it); see docs/bridge-pubsub-kafka.md")
}
