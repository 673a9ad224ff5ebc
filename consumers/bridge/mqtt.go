package bridge

import (
	"context"
	"errors"
)

// MQTTConfig holds the BRIDGE_MQTT_* settings.
type MQTTConfig struct{}

// openMQTT opens the MQTT publisher (scheme mqtt).
func openMQTT(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the mqtt scheme is not built yet")
}
