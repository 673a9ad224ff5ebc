package bridge

import (
	"context"
	"errors"
)

// RedisConfig holds the BRIDGE_REDIS_* settings.
type RedisConfig struct{}

// openRedis opens the Redis publisher (scheme redis).
func openRedis(ctx context.Context, o Options) (Publisher, error) {
	return nil, errors.New("BRIDGE_URL: the redis scheme is not built yet")
}
