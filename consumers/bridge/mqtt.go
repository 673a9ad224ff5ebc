package bridge

import (
	"context"
	"errors"
)

// MQTTConfig holds the BRIDGE_MQTT_* settings.
type MQTTConfig struct {
	Topic    string `env:"BRIDGE_MQTT_TOPIC" envDefault:"{{trigger}}" desc:"topic template; {{trigger}} is the event's namespace with its dots turned into / (acme/{{trigger}} gives acme/transport/messageReceived)"`
	QoS      int    `env:"BRIDGE_MQTT_QOS" envDefault:"1" desc:"1 (acknowledged after PUBACK) or 2 (after PUBCOMP)"`
	ClientID string `env:"BRIDGE_MQTT_CLIENT_ID" desc:"MQTT client id; default the durable name and a random suffix per process, so replicas do not disconnect each other"`
}

// Destination names what the bridge publishes to (durable naming).
func (c MQTTConfig) Destination() string { return c.Topic }

// validate checks the MQTT settings.
func (c MQTTConfig) validate() error { return nil }

// openMQTT opens the MQTT publisher (scheme mqtt).
func openMQTT(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the mqtt scheme is not built yet")
}
