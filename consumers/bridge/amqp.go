package bridge

import (
	"context"
	"errors"
)

// AMQPConfig holds the BRIDGE_AMQP_* settings.
type AMQPConfig struct{}

// openAMQP opens the AMQP publisher (scheme amqp).
func openAMQP(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the amqp scheme is not built yet")
}
