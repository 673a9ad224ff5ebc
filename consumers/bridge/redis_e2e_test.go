package bridge_test

import (
	"context"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

// End-to-end through the runtime: events published to ENMESHED, the bridge
// as cmd/bridge wires it (bridge.New with the Redis publisher of
// BRIDGE_URL), read back from Redis.

// startRedisBridge runs the bridge on m with the settings vars (BRIDGE_URL
// among them) and a fast retry schedule; it stops with the test.
func startRedisBridge(t *testing.T, m *mesh, vars ...string) (*bridge.Bridge, *natstest.LogBuffer) {
	t.Helper()
	cfg := load(t, append([]string{"BRIDGE_START=all", "BRIDGE_BACKOFF=50ms", "BRIDGE_MAX_DELIVER=1000", "BRIDGE_ACK_WAIT=5s"}, vars...)...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, buf := natstest.BufferLogger()
	b, err := bridge.New(m.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), log)
	if err != nil {
		t.Fatal(err)
	}
	run(t, b)
	return b, buf
}

// publishEvents publishes n events to ENMESHED, cycling through
// redisNamespaces, and returns them in order.
func publishEvents(t *testing.T, m *mesh, run string, n int) []bridge.Message {
	t.Helper()
	var sent []bridge.Message
	for i := range n {
		msg := redisMessage(run, i, redisNamespaces[i%len(redisNamespaces)])
		if _, err := m.js.PublishMsg(context.Background(), msg.Event.Msg(subjects)); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, msg)
	}
	return sent
}

// N events published to ENMESHED arrive as N entries of their namespace's
// stream, in order, with the fields of the enmeshed format; the durable has
// nothing left pending.
func TestRedisBridgeEndToEnd(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	m := newMesh(t)
	b, _ := startRedisBridge(t, m, "BRIDGE_URL="+u.String(), "BRIDGE_REDIS_STREAM="+prefix+":{{trigger}}", "BRIDGE_ORDER=per-key")

	const n = 90
	sent := publishEvents(t, m, "e2e", n)
	natstest.WaitFor(t, 20*time.Second, "every event in Redis", func() bool {
		total := 0
		for _, ns := range redisNamespaces {
			total += int(admin.XLen(context.Background(), prefix+":"+ns).Val())
		}
		return total >= n
	})
	for _, ns := range redisNamespaces {
		var want []bridge.Message
		for _, s := range sent {
			if s.Event.Namespace == ns {
				want = append(want, s)
			}
		}
		xs := redisEntries(t, admin, prefix+":"+ns)
		if len(xs) != len(want) {
			t.Fatalf("stream %s: %d entries, want %d", ns, len(xs), len(want))
		}
		// Events are fetched in order but published concurrently: compare
		// by id, order aside.
		byID := map[string]map[string]any{}
		for _, x := range xs {
			byID[x.Values["id"].(string)] = x.Values
		}
		for _, w := range want {
			if got, exp := byID[w.Event.ID], wantRedisFields(w); !maps.Equal(got, exp) {
				t.Errorf("event %s:\n got %v\nwant %v", w.Event.ID, got, exp)
			}
		}
	}
	if info := settledInfo(t, m, b.Name()); info.NumRedelivered != 0 {
		t.Errorf("%d redeliveries with Redis up", info.NumRedelivered)
	}
	if err := b.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

// The connection to Redis is cut mid-run and restored: the bridge retries
// by its schedule, reconnects without a restart, and every event arrives.
func TestRedisBridgeConnectionCut(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	proxy, pu := redisProxy(t, u)
	m := newMesh(t)
	b, logs := startRedisBridge(t, m, "BRIDGE_URL="+pu.String(), "BRIDGE_REDIS_STREAM="+prefix)

	// Events keep coming while the connection is cut, so some are fetched
	// and attempted during the outage.
	const n = 600
	sent := publishEvents(t, m, "e2ecut", n/2)
	natstest.WaitFor(t, 20*time.Second, "a sixth of the events in Redis", func() bool { return admin.XLen(context.Background(), prefix).Val() >= n/6 })
	proxy.Cut()
	sent = append(sent, publishEvents(t, m, "e2ecut2", n/2)...)
	natstest.WaitFor(t, 20*time.Second, "the bridge not ready while cut", func() bool { return b.Ready(context.Background()) != nil })
	proxy.Restore()
	natstest.WaitFor(t, 30*time.Second, "every event after the restore", func() bool {
		return len(redisIDs(t, admin, prefix)) == n
	})
	ids := redisIDs(t, admin, prefix)
	dups := 0
	for _, s := range sent {
		if ids[s.Event.ID] == 0 {
			t.Errorf("event %s lost", s.Event.ID)
		}
		dups += ids[s.Event.ID] - 1
	}
	info := settledInfo(t, m, b.Name())
	if info.Paused {
		t.Error("a cut connection paused the consumer")
	}
	if !strings.Contains(logs.String(), "broker not ready") {
		t.Error("the outage was not logged")
	}
	t.Logf("%d events, %d duplicates (replies lost with the connection)", n, dups)
}

// A user the ACL forbids XADD: the first publish pauses the consumer on the
// server, without burning retries. A wrong password: the bridge is not
// ready (the PING is refused) and fetches nothing; the log says what to fix
// and never shows the password.
func TestRedisBridgeRejectedCredentials(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	user, password := "eventmesh-test-"+randomHex(t, 4), "pw-"+randomHex(t, 8)
	if err := admin.Do(context.Background(), "ACL", "SETUSER", user, "reset", "on", ">"+password, "~"+prefix+"*", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	as := func(pw string) string {
		v := *u
		v.User = url.UserPassword(user, pw)
		return v.String()
	}

	t.Run("no XADD", func(t *testing.T) {
		m := newMesh(t)
		b, logs := startRedisBridge(t, m, "BRIDGE_URL="+as(password), "BRIDGE_REDIS_STREAM="+prefix)
		publishEvents(t, m, "noperm", 5)
		natstest.WaitFor(t, 20*time.Second, "the consumer paused on the server", func() bool {
			c, err := m.js.Consumer(context.Background(), streams.Events, b.Name())
			if err != nil {
				return false
			}
			info, err := c.Info(context.Background())
			return err == nil && info.Paused
		})
		c, _ := m.js.Consumer(context.Background(), streams.Events, b.Name())
		info, err := c.Info(context.Background())
		if err != nil || info.NumRedelivered != 0 {
			t.Errorf("redelivered %d events after the pause (%v): a pause must not burn retries", info.NumRedelivered, err)
		}
		if l := logs.String(); !strings.Contains(l, "PAUSING") || !strings.Contains(l, "NOPERM") || strings.Contains(l, password) {
			t.Errorf("the log does not say the permission is missing, or shows the password:\n%s", l)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		m := newMesh(t)
		b, logs := startRedisBridge(t, m, "BRIDGE_URL="+as("wrong-"+password), "BRIDGE_REDIS_STREAM="+prefix)
		publishEvents(t, m, "wrongpass", 5)
		natstest.WaitFor(t, 20*time.Second, "the refused credentials logged", func() bool {
			return strings.Contains(logs.String(), "WRONGPASS")
		})
		if err := b.Ready(context.Background()); err == nil || !consumers.IsPause(err) {
			t.Errorf("Ready with a wrong password: %v, want an error that pauses", err)
		}
		c, _ := m.js.Consumer(context.Background(), streams.Events, b.Name())
		if info, err := c.Info(context.Background()); err != nil || info.NumRedelivered != 0 || info.Delivered.Consumer > 1 {
			t.Errorf("with rejected credentials: %+v, %v; want no retries burnt", info, err)
		}
		if l := logs.String(); strings.Contains(l, password) || !strings.Contains(l, "credentials") {
			t.Errorf("the log shows the password or does not name the credentials:\n%s", l)
		}
	})
}
