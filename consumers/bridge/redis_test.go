package bridge_test

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// N events become N stream entries in publish order, with the fields of the
// enmeshed format and the body byte for byte.
func TestRedisStreamEntries(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	p := openRedisPublisher(t, u, bridge.RedisConfig{Stream: prefix}, bridge.FormatEnmeshed)

	const n = 60
	var sent []bridge.Message
	for i := range n {
		m := redisMessage("ev", i, redisNamespaces[i%len(redisNamespaces)])
		if err := p.Publish(context.Background(), m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		sent = append(sent, m)
	}
	xs := redisEntries(t, admin, prefix)
	if len(xs) != n {
		t.Fatalf("the stream holds %d entries, want %d", len(xs), n)
	}
	for i, x := range xs {
		if want := wantRedisFields(sent[i]); !maps.Equal(x.Values, want) {
			t.Errorf("entry %d:\n got %v\nwant %v", i, x.Values, want)
		}
	}
	if got := xs[4].Values["data"]; got != "{}" {
		t.Errorf("an event stored without data: data = %q, want {} as the Connector sends", got)
	}
}

// BRIDGE_FORMAT=cloudevents writes the CloudEvents attributes without the
// ce- prefix, datacontenttype and data.
func TestRedisStreamCloudEvents(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	p := openRedisPublisher(t, u, bridge.RedisConfig{Stream: prefix}, bridge.FormatCloudEvents)

	for i := range 2 { // event 0 has a correlation id and a traceparent, event 1 not
		if err := p.Publish(context.Background(), redisMessage("ce", i, redisNamespaces[0])); err != nil {
			t.Fatal(err)
		}
	}
	xs := redisEntries(t, admin, prefix)
	if len(xs) != 2 {
		t.Fatalf("%d entries, want 2", len(xs))
	}
	for i, x := range xs {
		m := redisMessage("ce", i, redisNamespaces[0])
		want := map[string]any{
			"specversion":      "1.0",
			"id":               m.Event.ID,
			"type":             m.Event.Namespace,
			"source":           "test-connector",
			"time":             m.Event.Time.Format(time.RFC3339Nano),
			"datacontenttype":  "application/json",
			"data":             string(m.Body),
			"eventmesh-origin": "webhook",
		}
		if i == 0 {
			want["traceparent"] = m.Event.Traceparent
			want["x-correlation-id"] = m.Event.CorrelationID
		}
		if !maps.Equal(x.Values, want) {
			t.Errorf("entry %d:\n got %v\nwant %v", i, x.Values, want)
		}
	}
}

// A stream key template with {{trigger}} gives one stream per namespace,
// each holding its namespace's events in order.
func TestRedisStreamPerTrigger(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	p := openRedisPublisher(t, u, bridge.RedisConfig{Stream: prefix + ":{{trigger}}"}, bridge.FormatEnmeshed)

	want := map[string][]string{}
	for i := range 30 {
		ns := redisNamespaces[i%len(redisNamespaces)]
		m := redisMessage("tr", i, ns)
		if err := p.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		want[ns] = append(want[ns], m.Event.ID)
	}
	for ns, ids := range want {
		var got []string
		for _, x := range redisEntries(t, admin, prefix+":"+ns) {
			if x.Values["trigger"] != ns {
				t.Errorf("stream %s holds an event of %v", ns, x.Values["trigger"])
			}
			got = append(got, x.Values["id"].(string))
		}
		if !reflect.DeepEqual(got, ids) {
			t.Errorf("stream %s: ids %v, want %v", ns, got, ids)
		}
	}
	if keys, _ := admin.Keys(context.Background(), prefix+"*").Result(); len(keys) != len(redisNamespaces) {
		t.Errorf("keys %v, want one stream per namespace", keys)
	}
}

// BRIDGE_REDIS_MAXLEN trims approximately (whole macro nodes, so the
// stream keeps at least MAXLEN entries and less than one node more); 0
// never trims.
func TestRedisStreamMaxLen(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	node, err := admin.ConfigGet(context.Background(), "stream-node-max-entries").Result()
	if err != nil {
		t.Fatal(err)
	}
	nodeSize, _ := strconv.Atoi(node["stream-node-max-entries"])
	const maxLen, n = 50, 600

	trimmed := openRedisPublisher(t, u, bridge.RedisConfig{Stream: prefix + ":trimmed", MaxLen: maxLen}, bridge.FormatEnmeshed)
	untrimmed := openRedisPublisher(t, u, bridge.RedisConfig{Stream: prefix + ":untrimmed"}, bridge.FormatEnmeshed)
	for i := range n {
		m := redisMessage("ml", i, redisNamespaces[0])
		if err := trimmed.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if err := untrimmed.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if got := admin.XLen(context.Background(), prefix+":untrimmed").Val(); got != n {
		t.Errorf("BRIDGE_REDIS_MAXLEN=0: %d entries, want all %d", got, n)
	}
	got := admin.XLen(context.Background(), prefix+":trimmed").Val()
	if got < maxLen || got >= int64(maxLen+nodeSize) || got >= n {
		t.Errorf("BRIDGE_REDIS_MAXLEN=%d: %d entries, want from %d to below %d (one macro node of %d more)", maxLen, got, maxLen, maxLen+nodeSize, nodeSize)
	}
	xs := redisEntries(t, admin, prefix+":trimmed")
	if last := xs[len(xs)-1].Values["id"]; last != redisMessage("ml", n-1, "").Event.ID {
		t.Errorf("trimming kept %v last, want the newest event", last)
	}
}

// Publish mode: a SUBSCRIBE client receives N messages on the namespace's
// channel, the body alone, byte for byte, in order.
func TestRedisPublishMode(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	p := openRedisPublisher(t, u, bridge.RedisConfig{Mode: bridge.RedisModePublish, Channel: prefix + ".{{trigger}}", RequireSubscriber: true}, bridge.FormatEnmeshed)

	sub := admin.PSubscribe(context.Background(), prefix+".*")
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	const n = 100
	var sent []bridge.Message
	for i := range n {
		m := redisMessage("ps", i, redisNamespaces[i%len(redisNamespaces)])
		if err := p.Publish(context.Background(), m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		sent = append(sent, m)
	}
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msg, err := sub.ReceiveMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := prefix + "." + sent[i].Event.Namespace; msg.Channel != want {
			t.Errorf("message %d on channel %s, want %s", i, msg.Channel, want)
		}
		if msg.Payload != string(sent[i].Body) {
			t.Errorf("message %d: payload %q, want %q", i, msg.Payload, sent[i].Body)
		}
	}
}

// With BRIDGE_REDIS_REQUIRE_SUBSCRIBER=true, a PUBLISH nobody received is
// a retryable error (not a pause, not permanent); without it, it is not an
// error (Redis Pub/Sub loses it, as documented).
func TestRedisRequireSubscriber(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	cfg := bridge.RedisConfig{Mode: bridge.RedisModePublish, Channel: prefix + ".{{trigger}}", RequireSubscriber: true}
	strict := openRedisPublisher(t, u, cfg, bridge.FormatEnmeshed)
	cfg.RequireSubscriber = false
	lax := openRedisPublisher(t, u, cfg, bridge.FormatEnmeshed)

	m := redisMessage("rs", 1, redisNamespaces[0])
	err := strict.Publish(context.Background(), m)
	if err == nil || consumers.IsPause(err) || consumers.IsPermanent(err) {
		t.Fatalf("no subscriber, BRIDGE_REDIS_REQUIRE_SUBSCRIBER=true: %v, want a retryable error", err)
	}
	if !strings.Contains(err.Error(), "BRIDGE_REDIS_REQUIRE_SUBSCRIBER") {
		t.Errorf("the error does not name the variable: %v", err)
	}
	if err := lax.Publish(context.Background(), m); err != nil {
		t.Errorf("no subscriber, BRIDGE_REDIS_REQUIRE_SUBSCRIBER=false: %v, want nil", err)
	}

	sub := admin.Subscribe(context.Background(), prefix+"."+redisNamespaces[0])
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := strict.Publish(context.Background(), m); err != nil {
		t.Errorf("with a subscriber: %v", err)
	}
}

// The connection to Redis is cut mid-run and restored: attempts fail
// meanwhile (retryable, never a pause), the client reconnects by itself,
// and every event arrives.
func TestRedisConnectionCut(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	proxy := bridgetest.NewProxy(t, u.Host)
	pu := *u
	pu.Host = proxy.Addr()
	p := openRedisPublisher(t, &pu, bridge.RedisConfig{Stream: prefix}, bridge.FormatEnmeshed)

	const n, workers = 400, 8
	var confirmed, failures atomic.Int64
	var failedOnce sync.Once
	failed := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				publishRetrying(t, p, redisMessage("cut", i, redisNamespaces[0]), func(error) {
					failures.Add(1)
					failedOnce.Do(func() { close(failed) })
				})
				confirmed.Add(1)
			}
		})
	}
	natstest.WaitFor(t, 10*time.Second, "a third of the events confirmed", func() bool { return confirmed.Load() >= n/3 })
	proxy.Cut()
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt failed while the connection was cut")
	}
	// Keep it cut until the workers have retried a few times: the client
	// must dial anew after failed dials, not only after one broken reply.
	natstest.WaitFor(t, 10*time.Second, "attempts failing while cut", func() bool { return failures.Load() >= 3*workers })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if err := p.Ready(ctx); err == nil || consumers.IsPause(err) {
		t.Errorf("Ready while cut: %v, want a retryable error", err)
	}
	cancel()
	proxy.Restore()
	wg.Wait()
	if err := p.Ready(context.Background()); err != nil {
		t.Errorf("Ready after the restore: %v", err)
	}

	seen := map[string]int{}
	for _, x := range redisEntries(t, admin, prefix) {
		seen[x.Values["id"].(string)]++
	}
	dups := 0
	for i := range n {
		id := redisMessage("cut", i, "").Event.ID
		if seen[id] == 0 {
			t.Errorf("event %s lost", id)
		}
		dups += max(seen[id]-1, 0)
	}
	t.Logf("%d events, %d failed attempts during the cut, %d duplicates (replies lost with the connection)", n, failures.Load(), dups)
}

// Rejected credentials and missing ACL permissions pause; the messages
// never hold the password.
func TestRedisRejectedCredentials(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	ctx := context.Background()
	user, password := "eventmesh-test-"+randomHex(t, 4), "pw-"+randomHex(t, 8)
	// user may do anything to the keys and channels under prefix:ok;
	// user-noxadd anything under prefix but XADD; user-least only XADD,
	// PUBLISH and PING under prefix:ok.
	acl := func(name string, rules ...string) {
		args := []any{"ACL", "SETUSER", name, "reset", "on", ">" + password}
		for _, r := range rules {
			args = append(args, r)
		}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
		t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", name) })
	}
	acl(user, "~"+prefix+":ok*", "&"+prefix+":ok*", "+@all")
	acl(user+"-noxadd", "~"+prefix+"*", "&*", "+@all", "-xadd")
	acl(user+"-least", "~"+prefix+":ok*", "&"+prefix+":ok*", "+xadd", "+publish", "+ping") // the least the docs ask for
	as := func(name, pw string) *url.URL {
		v := *u
		v.User = url.UserPassword(name, pw)
		return &v
	}
	m := redisMessage("acl", 1, redisNamespaces[0])

	cases := []struct {
		name      string
		url       *url.URL
		cfg       bridge.RedisConfig
		wantPause bool
		readyErr  bool
	}{
		{"granted", as(user, password), bridge.RedisConfig{Stream: prefix + ":ok"}, false, false},
		{"granted publish", as(user, password), bridge.RedisConfig{Mode: bridge.RedisModePublish, Channel: prefix + ":ok"}, false, false},
		{"least privilege", as(user+"-least", password), bridge.RedisConfig{Stream: prefix + ":ok"}, false, false},
		{"least privilege publish", as(user+"-least", password), bridge.RedisConfig{Mode: bridge.RedisModePublish, Channel: prefix + ":ok"}, false, false},
		{"wrong password", as(user, "wrong-"+password), bridge.RedisConfig{Stream: prefix + ":ok"}, true, true},
		{"unknown user", as(user+"-nobody", password), bridge.RedisConfig{Stream: prefix + ":ok"}, true, true},
		{"no XADD", as(user+"-noxadd", password), bridge.RedisConfig{Stream: prefix + ":ok"}, true, false},
		{"key outside the ACL", as(user, password), bridge.RedisConfig{Stream: prefix + ":other"}, true, false},
		{"channel outside the ACL", as(user, password), bridge.RedisConfig{Mode: bridge.RedisModePublish, Channel: prefix + ":other"}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := openRedisPublisher(t, c.url, c.cfg, bridge.FormatEnmeshed)
			err := p.Publish(ctx, m)
			if c.wantPause != consumers.IsPause(err) || (!c.wantPause && err != nil) {
				t.Fatalf("Publish: %v; want a pause: %v", err, c.wantPause)
			}
			rerr := p.Ready(ctx)
			if c.readyErr != (rerr != nil) || (rerr != nil && !consumers.IsPause(rerr)) {
				t.Errorf("Ready: %v; want a pausing error: %v", rerr, c.readyErr)
			}
			for _, e := range []error{err, rerr} {
				if e != nil && strings.Contains(e.Error(), password) {
					t.Errorf("the error shows the password: %v", e)
				}
			}
			if err != nil && !strings.Contains(err.Error(), "eventmesh consumer resume bridge-test") {
				t.Errorf("the pause does not say how to resume: %v", err)
			}
		})
	}
}

// A stream key that holds something else pauses (a person must fix the
// key or BRIDGE_REDIS_STREAM).
func TestRedisWrongType(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	if err := admin.Set(context.Background(), prefix, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p := openRedisPublisher(t, u, bridge.RedisConfig{Stream: prefix}, bridge.FormatEnmeshed)
	err := p.Publish(context.Background(), redisMessage("wt", 1, redisNamespaces[0]))
	if !consumers.IsPause(err) || !strings.Contains(err.Error(), "BRIDGE_REDIS_STREAM") {
		t.Errorf("XADD to a string key: %v, want a pause naming BRIDGE_REDIS_STREAM", err)
	}
}

// Concurrent publishers on one Publisher: every event arrives once, and each
// publisher's events in its order.
func TestRedisConcurrentPublishers(t *testing.T) {
	u := redisTestURL(t)
	admin := redisAdmin(t, u)
	prefix := redisPrefix(t, admin)
	p := openRedisPublisher(t, u, bridge.RedisConfig{Stream: prefix}, bridge.FormatEnmeshed)

	const workers, each = 32, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := p.Publish(context.Background(), redisMessage(fmt.Sprintf("w%02d", w), i, redisNamespaces[0])); err != nil {
					t.Errorf("worker %d event %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	next := map[string]int{}
	xs := redisEntries(t, admin, prefix)
	for _, x := range xs {
		id := x.Values["id"].(string)
		w, i := id[:3], id[4:]
		if want := fmt.Sprintf("%05d", next[w]); i != want {
			t.Fatalf("worker %s: event %s after %d, want %s (out of order or twice)", w, i, next[w], want)
		}
		next[w]++
	}
	if len(xs) != workers*each {
		t.Errorf("%d entries, want %d", len(xs), workers*each)
	}
}

// Bad settings stop the bridge at start with the variable's name.
func TestRedisOpenRejects(t *testing.T) {
	u, _ := url.Parse("redis://127.0.0.1:1/0")
	cases := []struct {
		cfg    bridge.RedisConfig
		format bridge.Format
		url    string
		want   string
	}{
		{bridge.RedisConfig{Mode: "xadd", Stream: "s"}, bridge.FormatEnmeshed, "", "BRIDGE_REDIS_MODE"},
		{bridge.RedisConfig{Mode: "stream", Stream: " "}, bridge.FormatEnmeshed, "", "BRIDGE_REDIS_STREAM"},
		{bridge.RedisConfig{Mode: "publish", Channel: ""}, bridge.FormatEnmeshed, "", "BRIDGE_REDIS_CHANNEL"},
		{bridge.RedisConfig{Mode: "stream", Stream: "s", MaxLen: -1}, bridge.FormatEnmeshed, "", "BRIDGE_REDIS_MAXLEN"},
		{bridge.RedisConfig{Mode: "publish", Channel: "c"}, bridge.FormatCloudEvents, "", "BRIDGE_REDIS_MODE=stream"},
		{bridge.RedisConfig{Mode: "stream", Stream: "s"}, bridge.FormatEnmeshed, "redis://user:secret@127.0.0.1:1/x", "BRIDGE_URL"},
	}
	for _, c := range cases {
		o := u
		if c.url != "" {
			o, _ = url.Parse(c.url)
		}
		p, err := bridge.Open(context.Background(), bridge.Options{URL: o, Format: c.format, Config: bridge.Config{Redis: c.cfg}})
		if err == nil {
			p.Close()
			t.Errorf("%+v %s: opened, want an error naming %s", c.cfg, c.format, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%+v %s: %v, want an error naming %s (and no password)", c.cfg, c.format, err, c.want)
		}
	}
}
