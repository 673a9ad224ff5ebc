package bridge_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

// Rejected credentials pause the consumer on the server, with a loud log,
// through New as cmd/bridge wires it against the real broker: the broker's
// check refuses them before any publish, so no event is fetched and no
// retry is spent. Each broker whose EVENTMESH_TEST_* is set.
func TestBridgeRejectedCredentialsPause(t *testing.T) {
	for _, tc := range []struct{ scheme, env, user string }{
		{"amqp", "EVENTMESH_TEST_AMQP", "guest"},
		{"redis", "EVENTMESH_TEST_REDIS", "eventmesh-nobody-" + router.RandomKey()[:8]},
		{"mqtt", "EVENTMESH_TEST_MQTT", "bridge"}, // on a private mosquitto with a password file
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			raw := os.Getenv(tc.env)
			if tc.scheme == "mqtt" && raw != "" {
				raw = "mqtt://" + bridgetest.MosquittoWithPassword(t)
			}
			if raw == "" {
				t.Skipf("%s is not set", tc.env)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("%s: %v", tc.env, err)
			}
			const wrong = "wrong-password-for-tests"
			u.User = url.UserPassword(tc.user, wrong)
			m := newMesh(t)
			cfg := load(t, append(fastVars[1:], "BRIDGE_URL="+u.String(), "BRIDGE_DURABLE=bridge-badcreds-"+tc.scheme)...)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			log, logs := natstest.BufferLogger()
			b, err := bridge.New(m.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), log)
			if err != nil {
				t.Fatal(err)
			}
			run(t, b)
			m.event("transport.messageReceived", `{"id":"MSG1"}`)
			natstest.WaitFor(t, 20*time.Second, "the consumer paused on the server", func() bool {
				c, err := m.js.Consumer(context.Background(), streams.Events, b.Name())
				if err != nil {
					return false
				}
				i, err := c.Info(context.Background())
				return err == nil && i.Paused
			})
			if !strings.Contains(logs.String(), "PAUSING") {
				t.Error("no loud log of the pause")
			}
			if strings.Contains(logs.String(), wrong) {
				t.Error("the log shows the password")
			}
			if err := b.Ready(context.Background()); err == nil {
				t.Error("ready with rejected credentials")
			}
			c, err := m.js.Consumer(context.Background(), streams.Events, b.Name())
			if err != nil {
				t.Fatal(err)
			}
			if i, err := c.Info(context.Background()); err != nil || i.Delivered.Consumer != 0 {
				t.Errorf("deliveries with rejected credentials: %+v, %v; want none (no retry spent)", i, err)
			}
		})
	}
}
