package bridge

import (
	"context"
	"errors"
)

// KafkaConfig holds the BRIDGE_KAFKA_* settings.
type KafkaConfig struct{}

// openKafka opens the Kafka publisher (scheme kafka).
func openKafka(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the kafka scheme is not built yet")
}
