package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/eventmesh/eventmesh/router"
	"github.com/redis/go-redis/v9"
)

// `eventmesh bridge test` against the real brokers: a confirmed sample
// event lands (Redis: one stream entry); a missing exchange (RabbitMQ) and
// refused credentials say what the bridge would do; no BRIDGE_URL exits 2.
func TestBridgeTestCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"bridge", "test"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "BRIDGE_URL") {
		t.Errorf("no BRIDGE_URL: exit %d %s", code, errOut.String())
	}
	t.Run("redis", func(t *testing.T) {
		u := os.Getenv("EVENTMESH_TEST_REDIS")
		if u == "" {
			t.Skip("EVENTMESH_TEST_REDIS is not set")
		}
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		rc := redis.NewClient(opt)
		key := "eventmesh-bridgetest-" + router.RandomKey()
		t.Cleanup(func() { rc.Del(context.Background(), key); rc.Close() })
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"bridge", "test"}, []string{"BRIDGE_URL=" + u, "BRIDGE_REDIS_STREAM=" + key}, &out, &errOut)
		if code != 0 || !strings.Contains(out.String(), "the broker confirmed the event") || !strings.Contains(out.String(), "latency:") {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		entries, err := rc.XRange(context.Background(), key, "-", "+").Result()
		if err != nil || len(entries) != 1 || entries[0].Values["trigger"] != "transport.messageReceived" {
			t.Errorf("stream %s after the test: %v, %v; want one transport.messageReceived", key, entries, err)
		}
	})
	t.Run("amqp", func(t *testing.T) {
		u := os.Getenv("EVENTMESH_TEST_AMQP")
		if u == "" {
			t.Skip("EVENTMESH_TEST_AMQP is not set")
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"bridge", "test"}, []string{"BRIDGE_URL=" + u, "BRIDGE_AMQP_EXCHANGE=eventmesh-missing-" + router.RandomKey()}, &out, &errOut)
		if code != 1 || !strings.Contains(out.String(), "not ready") || !strings.Contains(out.String(), "BRIDGE_AMQP_EXCHANGE") {
			t.Errorf("missing exchange: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		out.Reset()
		bad := strings.Replace(u, "guest:guest@", "guest:wrong-for-tests@", 1)
		if bad == u {
			t.Skip("EVENTMESH_TEST_AMQP has no guest:guest@ to spoil")
		}
		code = run(context.Background(), []string{"bridge", "test"}, []string{"BRIDGE_URL=" + bad}, &out, &errOut)
		if code != 1 || !strings.Contains(out.String(), "PAUSE") || strings.Contains(out.String()+errOut.String(), "wrong-for-tests") {
			t.Errorf("refused credentials: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
	})
}
