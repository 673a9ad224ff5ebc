//go:build !kafka

package bridge

import (
	"context"
	"errors"
)

// openKafka refuses: this binary was built without -tags kafka, so the
// Kafka client (franz-go: about 3.5 MB of binary and 8 MB of peak RSS,
// which takes the bridge past its 30 MB target) is not linked.
func openKafka(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the kafka scheme is not built into this binary: build it with -tags kafka (docker build --build-arg TAGS=kafka; the image's bridge has it); see docs/bridge-pubsub-kafka.md")
}
