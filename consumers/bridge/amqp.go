package bridge

import (
	"context"
	"errors"
)

// AMQPConfig holds the BRIDGE_AMQP_* settings.
type AMQPConfig struct {
	Exchange   string `env:"BRIDGE_AMQP_EXCHANGE" desc:"the exchange to publish to (the Connector's exchange); empty: RabbitMQ's default exchange; checked passively, never declared"`
	RoutingKey string `env:"BRIDGE_AMQP_ROUTING_KEY" envDefault:"{{trigger}}" desc:"routing key template; {{trigger}} is the event's namespace"`
}

// Destination names what the bridge publishes to (durable naming).
func (c AMQPConfig) Destination() string { return c.Exchange + "/" + c.RoutingKey }

// validate checks the AMQP settings.
func (c AMQPConfig) validate() error { return nil }

// openAMQP opens the AMQP publisher (scheme amqp).
func openAMQP(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the amqp scheme is not built yet")
}
