package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/redis/go-redis/v9"
)

// RedisConfig holds the BRIDGE_REDIS_* settings.
type RedisConfig struct {
	Mode              string `env:"BRIDGE_REDIS_MODE" envDefault:"stream" desc:"stream (XADD to BRIDGE_REDIS_STREAM) or publish (PUBLISH to BRIDGE_REDIS_CHANNEL; Redis Pub/Sub loses what no subscriber receives)"`
	Stream            string `env:"BRIDGE_REDIS_STREAM" envDefault:"enmeshed" desc:"stream key template in stream mode; one stream for all events by default, {{trigger}} gives one per namespace"`
	MaxLen            int64  `env:"BRIDGE_REDIS_MAXLEN" envDefault:"0" desc:"stream mode: trim the stream to about this many entries (0: never trim, since trimming drops entries nobody read)"`
	Channel           string `env:"BRIDGE_REDIS_CHANNEL" envDefault:"{{trigger}}" desc:"channel template in publish mode (the Connector's choice: the namespace)"`
	RequireSubscriber bool   `env:"BRIDGE_REDIS_REQUIRE_SUBSCRIBER" envDefault:"false" desc:"publish mode: retry an event while no subscriber received it"`
}

// The values of BRIDGE_REDIS_MODE.
const (
	RedisModeStream  = "stream"
	RedisModePublish = "publish"
)

// Destination names what the bridge publishes to (durable naming).
func (c RedisConfig) Destination() string {
	if c.Mode == RedisModePublish {
		return "publish/" + c.Channel
	}
	return "stream/" + c.Stream
}

// validate checks the Redis settings.
func (c RedisConfig) validate() error {
	switch c.Mode {
	case RedisModeStream:
		if strings.TrimSpace(c.Stream) == "" {
			return errors.New("BRIDGE_REDIS_STREAM: empty; want a stream key such as enmeshed or enmeshed:{{trigger}}")
		}
	case RedisModePublish:
		if strings.TrimSpace(c.Channel) == "" {
			return errors.New("BRIDGE_REDIS_CHANNEL: empty; want a channel such as {{trigger}}")
		}
	default:
		return fmt.Errorf("BRIDGE_REDIS_MODE: %q: want stream or publish", c.Mode)
	}
	if c.MaxLen < 0 {
		return fmt.Errorf("BRIDGE_REDIS_MAXLEN: %d: want 0 (never trim) or a positive number of entries", c.MaxLen)
	}
	return nil
}

// redisPublisher publishes to Redis: XADD to a stream (stream mode) or
// PUBLISH to a channel (publish mode).
//
// Each Publish is one command on a connection of the client's pool, sized
// to BRIDGE_CONCURRENCY, so concurrent calls are in flight together, one per
// connection; batching them into pipelines would save little at the
// runtime's concurrency, and a command of its own keeps each event's error
// its own.
//
// go-redis reconnects by itself: a connection that broke is dropped from
// the pool and the next command dials anew. Its own retries are off: an
// XADD whose reply was lost would be appended a second time, and retries are
// the runtime's job (the schedule, the breaker).
type redisPublisher struct {
	client  *redis.Client
	cfg     RedisConfig
	format  Format
	durable string // named in the advice of a pause
}

// openRedis opens the Redis publisher (schemes redis and rediss). It does
// not connect: go-redis dials on the first command, and Ready tells whether
// the server answers.
func openRedis(ctx context.Context, o Options) (Publisher, error) {
	cfg := o.Config.Redis
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == RedisModePublish && o.Format == FormatCloudEvents {
		// A Pub/Sub message is a bare payload: there is no room for the
		// attributes, and a body that changes shape with the format would
		// surprise a subscriber written for the Connector.
		return nil, errors.New("BRIDGE_FORMAT=cloudevents needs BRIDGE_REDIS_MODE=stream: a Redis Pub/Sub message has no room for CloudEvents attributes")
	}
	// ParseURL's errors name the part that is wrong, never the credentials.
	opt, err := redis.ParseURL(o.URL.String())
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_URL: %w", err)
	}
	if o.URL.Scheme == "rediss" && o.TLS != nil {
		t := o.TLS.Clone()
		if t.ServerName == "" {
			t.ServerName = o.URL.Hostname()
		}
		if t.MinVersion == 0 {
			t.MinVersion = tls.VersionTLS12
		}
		opt.TLSConfig = t
	}
	opt.MaxRetries = -1              // see redisPublisher
	opt.ContextTimeoutEnabled = true // the runtime's deadline per attempt bounds the command
	if opt.PoolSize == 0 {           // not set in the URL's query (pool_size)
		opt.PoolSize = max(10*runtime.GOMAXPROCS(0), o.Config.Runtime.Concurrency+1) // +1: Ready's PING
	}
	opt.DisableIdentity = true // no CLIENT SETINFO: a user limited by ACLs may lack it
	return &redisPublisher{client: redis.NewClient(opt), cfg: cfg, format: o.Format, durable: o.Durable}, nil
}

// Publish sends m and returns nil once Redis answered the command: in
// stream mode the entry id of the XADD, in publish mode the number of
// subscribers that received it (none is an error only with
// BRIDGE_REDIS_REQUIRE_SUBSCRIBER=true).
func (p *redisPublisher) Publish(ctx context.Context, m Message) error {
	if p.cfg.Mode == RedisModePublish {
		channel := Expand(p.cfg.Channel, m.Event.Namespace)
		n, err := p.client.Publish(ctx, channel, m.Body).Result()
		if err != nil {
			return p.error(err, "PUBLISH to "+channel, "BRIDGE_REDIS_CHANNEL")
		}
		if n == 0 && p.cfg.RequireSubscriber {
			return fmt.Errorf("redis: PUBLISH to %s: no subscriber received event %s (BRIDGE_REDIS_REQUIRE_SUBSCRIBER=true)", channel, m.Event.ID)
		}
		return nil
	}
	key := Expand(p.cfg.Stream, m.Event.Namespace)
	args := &redis.XAddArgs{Stream: key, Values: p.fields(m)}
	if p.cfg.MaxLen > 0 {
		args.MaxLen, args.Approx = p.cfg.MaxLen, true
	}
	if err := p.client.XAdd(ctx, args).Err(); err != nil {
		return p.error(err, "XADD to "+key, "BRIDGE_REDIS_STREAM")
	}
	return nil
}

// Stream entry field names of the enmeshed format besides the metadata.
const (
	redisFieldID      = "id"
	redisFieldTrigger = "trigger"
	redisFieldData    = "data"
)

// fields returns the stream entry of m, as XADD's field-value list.
//
// enmeshed: id (ce-id), trigger (the namespace), data (the body), then the
// metadata under the names every broker uses (Metadata).
//
// cloudevents: Redis has no CloudEvents binding, so the entry holds the
// attributes under their names of the JSON event format, without the ce-
// prefix (specversion, id, type, source, time, datacontenttype, and
// traceparent, the distributed-tracing extension, when the event has one),
// the body as data, and beside them eventmesh-origin and x-correlation-id
// under their usual names (they are not CloudEvents attributes).
func (p *redisPublisher) fields(m Message) []any {
	meta := Metadata(m.Event)
	vs := make([]any, 0, 2*(len(meta)+3))
	if p.format == FormatCloudEvents {
		for _, f := range meta {
			vs = append(vs, strings.TrimPrefix(f.Name, "ce-"), f.Value)
		}
		return append(vs, "datacontenttype", router.DataContentType, redisFieldData, m.Body)
	}
	vs = append(vs, redisFieldID, m.Event.ID, redisFieldTrigger, m.Event.Namespace, redisFieldData, m.Body)
	for _, f := range meta {
		vs = append(vs, f.Name, f.Value)
	}
	return vs
}

// Ready returns nil when the server answers PING. Rejected credentials
// return consumers.Pause, as Publish would.
func (p *redisPublisher) Ready(ctx context.Context) error {
	if err := p.client.Ping(ctx).Err(); err != nil {
		return p.error(err, "PING", "")
	}
	return nil
}

// Close closes the client's connections.
func (p *redisPublisher) Close() error { return p.client.Close() }

// error maps a failed command to its fate: rejected credentials, a
// missing ACL permission and a key holding something other than a stream
// need a person (consumers.Pause); anything else (a connection that is down
// or cut, a server loading, out of memory, a read-only replica after a
// failover) is retried by the schedule. what names the command and its
// key; setting names the variable that chose the key.
func (p *redisPublisher) error(err error, what, setting string) error {
	resume := "`eventmesh consumer resume " + p.durable + "`"
	switch {
	case redis.IsAuthError(err):
		return consumers.Pause(fmt.Errorf("redis: %s: the server rejects BRIDGE_URL's credentials: %w — fix the user name or password, then %s", what, err, resume))
	case redis.IsPermissionError(err):
		return consumers.Pause(fmt.Errorf("redis: %s: BRIDGE_URL's user lacks a permission: %w — grant it with ACL SETUSER, then %s", what, err, resume))
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return consumers.Pause(fmt.Errorf("redis: %s: the key holds something other than a stream: %w — fix %s or the key, then %s", what, err, setting, resume))
	}
	return fmt.Errorf("redis: %s: %w", what, err)
}
