package harness

import (
	"maps"
	"sync"
	"time"
)

// tally counts what a broker-side consumer of a bridge run received, by
// event id, and implements Deliveries (and Err) for it: RedisSink,
// AMQPSink, MQTTSink and PubSubSink embed one and call add for each
// message they read.
type tally struct {
	mu          sync.Mutex
	entries     int
	count       map[string]int
	first, last map[string]time.Time
	err         error
}

// add counts one message of the event id, read at now.
func (s *tally) add(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count == nil {
		s.count, s.first, s.last = map[string]int{}, map[string]time.Time{}, map[string]time.Time{}
	}
	s.entries++
	if s.count[id]++; s.count[id] == 1 {
		s.first[id] = now
	}
	s.last[id] = now
}

// fail records err as the last read error.
func (s *tally) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Delivered reports whether a message of the event id arrived.
func (s *tally) Delivered(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[id] > 0
}

// Deliveries returns the messages per event id.
func (s *tally) Deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.count)
}

// Arrivals returns when the first and the last message of each id was read.
func (s *tally) Arrivals() (first, last map[string]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.first), maps.Clone(s.last)
}

// Stats counts the messages as deliveries.
func (s *tally) Stats() ReceiverStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ReceiverStats{Requests: s.entries, Delivered: s.entries, Unique: len(s.count), Duplicates: s.entries - len(s.count)}
}

// Err returns the last read error, nil when none.
func (s *tally) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
