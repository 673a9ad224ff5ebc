package bridge_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
	"github.com/redis/go-redis/v9"
)

// The Redis tests run against the Redis server at EVENTMESH_TEST_REDIS
// (redis://127.0.0.1:6379/0 on the development and CI machines). Each test
// uses keys and channels under a prefix of its own and deletes them.

// redisTestURL returns EVENTMESH_TEST_REDIS parsed, or skips the test.
func redisTestURL(t testing.TB) *url.URL {
	t.Helper()
	s := os.Getenv("EVENTMESH_TEST_REDIS")
	if s == "" {
		t.Skip("EVENTMESH_TEST_REDIS is not set (e.g. redis://127.0.0.1:6379/0): skipping the Redis test")
	}
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_REDIS: %v", err)
	}
	return u
}

// redisAdmin returns a plain client of the test server (the test's own
// reader and set-up connection), closed with the test.
func redisAdmin(t testing.TB, u *url.URL) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("EVENTMESH_TEST_REDIS does not answer PING: %v", err)
	}
	return c
}

// redisPrefix returns a key prefix of the test's own and deletes every key
// under it when the test ends.
func redisPrefix(t testing.TB, admin *redis.Client) string {
	t.Helper()
	prefix := "eventmesh-test:" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + ":" + randomHex(t, 4)
	t.Cleanup(func() {
		ctx := context.Background()
		keys, err := admin.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = admin.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("deleting the test's keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// openRedisPublisher opens the bridge's Redis publisher on u (closed with
// the test).
func openRedisPublisher(t testing.TB, u *url.URL, cfg bridge.RedisConfig, format bridge.Format) bridge.Publisher {
	t.Helper()
	if cfg.Mode == "" {
		cfg.Mode = bridge.RedisModeStream
	}
	p, err := bridge.Open(context.Background(), bridge.Options{
		URL:     u,
		Format:  format,
		Config:  bridge.Config{Redis: cfg, Runtime: consumers.Config{Concurrency: 16}},
		Durable: "bridge-test",
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// redisNamespaces are the namespaces the tests' events cycle through.
var redisNamespaces = []string{"transport.messageReceived", "transport.relationshipChanged", "consumption.incomingRequestReceived"}

// redisMessage returns the i-th test event in namespace ns. Every fifth
// has no data (the bridge sends {}); every third carries a correlation id
// and a traceparent; the data holds bytes a re-encoder would change.
func redisMessage(run string, i int, ns string) bridge.Message {
	e := router.Event{
		ID:        fmt.Sprintf("%s-%05d", run, i),
		Namespace: ns,
		Source:    "test-connector",
		Time:      time.Date(2026, 12, 2, 8, 0, 0, i, time.UTC),
		Origin:    router.OriginWebhook,
	}
	if i%5 != 4 {
		e.Data = fmt.Appendf(nil, `{"id":"MSG%05d",  "text":"caf\u00e9 <&> ü","n":%d}`, i, i)
	}
	if i%3 == 0 {
		e.CorrelationID = fmt.Sprintf("corr-%d", i)
		e.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	}
	return bridge.Message{Event: e, Body: bridge.Body(e)}
}

// publishRetrying publishes m until Redis confirms it, as the runtime's
// retries would, counting the failed attempts; a pause fails the test.
func publishRetrying(t testing.TB, p bridge.Publisher, m bridge.Message, failed func(error)) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := p.Publish(ctx, m)
		cancel()
		if err == nil {
			return
		}
		if consumers.IsPause(err) {
			t.Errorf("event %s: a connection fault paused: %v", m.Event.ID, err)
			return
		}
		failed(err)
		time.Sleep(20 * time.Millisecond)
	}
}

// redisEntries reads a whole stream.
func redisEntries(t testing.TB, admin *redis.Client, key string) []redis.XMessage {
	t.Helper()
	xs, err := admin.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	return xs
}

// wantRedisFields returns the stream entry the bridge writes for m in the
// enmeshed format, field by field.
func wantRedisFields(m bridge.Message) map[string]any {
	e := m.Event
	want := map[string]any{
		"id":               e.ID,
		"trigger":          e.Namespace,
		"data":             string(m.Body),
		"ce-id":            e.ID,
		"ce-type":          e.Namespace,
		"ce-source":        e.Source,
		"ce-time":          e.Time.UTC().Format(router.TimeFormat),
		"ce-specversion":   "1.0",
		"eventmesh-origin": string(e.Origin),
	}
	if e.CorrelationID != "" {
		want["x-correlation-id"] = e.CorrelationID
		want["traceparent"] = e.Traceparent
	}
	return want
}
