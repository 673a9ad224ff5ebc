package harness

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisSink is the broker-side consumer of a bridge run: it reads a Redis
// stream (the bridge's BRIDGE_REDIS_STREAM) from its start and counts the
// entries by their id field (the event's ce-id), as the Receiver counts
// webhook deliveries.
type RedisSink struct {
	client *redis.Client
	key    string
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	entries     int
	count       map[string]int
	first, last map[string]time.Time
	err         error
}

// NewRedisSink reads the stream key on the server of url (redis://…)
// until Close, which also deletes the key.
func NewRedisSink(url, key string) (*RedisSink, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &RedisSink{client: redis.NewClient(opt), key: key, cancel: cancel, done: make(chan struct{}),
		count: map[string]int{}, first: map[string]time.Time{}, last: map[string]time.Time{}}
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
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		now := time.Now()
		s.mu.Lock()
		for _, st := range res {
			for _, m := range st.Messages {
				last = m.ID
				s.entries++
				id, _ := m.Values["id"].(string)
				if s.count[id]++; s.count[id] == 1 {
					s.first[id] = now
				}
				s.last[id] = now
			}
		}
		s.mu.Unlock()
	}
}

// Delivered reports whether an entry of the event id arrived.
func (s *RedisSink) Delivered(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[id] > 0
}

// Deliveries returns the entries per event id.
func (s *RedisSink) Deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.count)
}

// Arrivals returns when the first and the last entry of each id was read.
func (s *RedisSink) Arrivals() (first, last map[string]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.first), maps.Clone(s.last)
}

// Stats counts the entries as deliveries.
func (s *RedisSink) Stats() ReceiverStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ReceiverStats{Requests: s.entries, Delivered: s.entries, Unique: len(s.count), Duplicates: s.entries - len(s.count)}
}

// Err returns the last read error, nil when none.
func (s *RedisSink) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops reading and deletes the stream.
func (s *RedisSink) Close() {
	s.cancel()
	<-s.done
	s.client.Del(context.Background(), s.key)
	s.client.Close()
}
