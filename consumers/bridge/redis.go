package bridge

import (
	"context"
	"errors"
)

// RedisConfig holds the BRIDGE_REDIS_* settings.
type RedisConfig struct {
	Mode              string `env:"BRIDGE_REDIS_MODE" envDefault:"stream" desc:"stream (XADD to BRIDGE_REDIS_STREAM) or publish (PUBLISH to BRIDGE_REDIS_CHANNEL; Redis Pub/Sub loses what no subscriber receives)"`
	Stream            string `env:"BRIDGE_REDIS_STREAM" envDefault:"enmeshed" desc:"stream key template in stream mode; one stream for all events by default, {{trigger}} gives one per namespace"`
	MaxLen            int64  `env:"BRIDGE_REDIS_MAXLEN" envDefault:"0" desc:"stream mode: trim the stream to about this many entries (0: never trim, since trimming drops entries nobody read)"`
	Channel           string `env:"BRIDGE_REDIS_CHANNEL" envDefault:"{{trigger}}" desc:"channel template in publish mode (the Connector's choice: the namespace)"`
	RequireSubscriber bool   `env:"BRIDGE_REDIS_REQUIRE_SUBSCRIBER" envDefault:"false" desc:"publish mode: retry an event while no subscriber received it"`
}

// Destination names what the bridge publishes to (durable naming).
func (c RedisConfig) Destination() string {
	if c.Mode == "publish" {
		return "publish/" + c.Channel
	}
	return "stream/" + c.Stream
}

// validate checks the Redis settings.
func (c RedisConfig) validate() error { return nil }

// openRedis opens the Redis publisher (scheme redis).
func openRedis(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the redis scheme is not built yet")
}
