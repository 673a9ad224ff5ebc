package harness

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisSink is the broker-side consumer of a bridge run: it reads a Redis
// stream (the bridge's BRIDGE_REDIS_STREAM) from its start and counts the
// entries by their id field (the event's ce-id), as the Receiver counts
// webhook deliveries.
type RedisSink struct {
	tally
	client *redis.Client
	key    string
	cancel context.CancelFunc
	done   chan struct{}
}

// NewRedisSink reads the stream key on the server of url (redis://…)
// until Close, which also deletes the key.
func NewRedisSink(url, key string) (*RedisSink, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &RedisSink{client: redis.NewClient(opt), key: key, cancel: cancel, done: make(chan struct{})}
	if err := s.client.Ping(ctx).Err(); err != nil {
		cancel()
		s.client.Close()
		return nil, err
	}
	go s.read(ctx)
	return s, nil
}

func (s *RedisSink) read(ctx context.Context) {
	defer close(s.done)
	last := "0"
	for ctx.Err() == nil {
		res, err := s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{s.key, last}, Count: 1000, Block: 500 * time.Millisecond}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				s.fail(err)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		now := time.Now()
		for _, st := range res {
			for _, m := range st.Messages {
				last = m.ID
				id, _ := m.Values["id"].(string)
				s.add(id, now)
			}
		}
	}
}

// Close stops reading and deletes the stream.
func (s *RedisSink) Close() {
	s.cancel()
	<-s.done
	s.client.Del(context.Background(), s.key)
	s.client.Close()
}
