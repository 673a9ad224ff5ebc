//go:build kafka

package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// startKafka starts an in-process fake Kafka cluster (kfake speaks the
// real protocol) of three brokers on free loopback ports; it closes with
// the test.
func startKafka(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func kafkaURL(c *kfake.Cluster, topic string) string {
	return "kafka://" + strings.Join(c.ListenAddrs(), ",") + "/" + topic
}

// kafkaRecord is a record as a consumer on the broker received it.
type kafkaRecord struct {
	topic, key, value string
	headers           map[string]string
}

func (r kafkaRecord) id() string {
	if id := r.headers["ce-id"]; id != "" {
		return id
	}
	return r.headers["ce_id"]
}

// consumeKafka reads topics from their start until n distinct events
// (by ce-id) arrived, and returns every record in arrival order.
func consumeKafka(t testing.TB, c *kfake.Cluster, n int, opts []kgo.Opt, topics ...string) []kafkaRecord {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []kafkaRecord
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d events", len(seen), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			kr := kafkaRecord{topic: r.Topic, key: string(r.Key), value: string(r.Value), headers: map[string]string{}}
			for _, h := range r.Headers {
				if _, dup := kr.headers[h.Key]; dup {
					t.Errorf("header %s twice", h.Key)
				}
				kr.headers[h.Key] = string(h.Value)
			}
			seen[kr.id()] = true
			recs = append(recs, kr)
		})
	}
	return recs
}

// N events from two publishers at once (many in flight) arrive as N
// records: value = data byte for byte ({} without data), key = the peer,
// the metadata headers of the format, one peer's records in order; with a
// {{trigger}} template each namespace in a topic of its own.
func TestKafkaPublish(t *testing.T) {
	for _, tc := range []struct {
		name     string
		format   bridge.Format
		template string
	}{
		{"enmeshed", bridge.FormatEnmeshed, "events"},
		{"cloudevents", bridge.FormatCloudEvents, "events"},
		{"trigger template", bridge.FormatEnmeshed, "mesh.{{trigger}}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topics := []string{"events"}
			if tc.template != "events" {
				topics = []string{"mesh.transport.messageReceived", "mesh.consumption.attributeCreated"}
			}
			c := startKafka(t, kfake.SeedTopics(4, topics...))
			cfg := bridge.Config{Order: "per-key"}
			pubs := []bridge.Publisher{open(t, kafkaURL(c, tc.template), tc.format, cfg), open(t, kafkaURL(c, tc.template), tc.format, cfg)}
			if err := pubs[0].Ready(context.Background()); err != nil {
				t.Fatalf("ready: %v", err)
			}
			ms := testMessages(200, 7)
			publishAll(t, pubs, ms, false)

			recs := consumeKafka(t, c, len(ms), nil, topics...)
			if len(recs) != len(ms) {
				t.Errorf("%d records for %d events", len(recs), len(ms))
			}
			byID := map[string]bridge.Message{}
			for _, m := range ms {
				byID[m.Event.ID] = m
			}
			order := map[string][]string{}
			for _, r := range recs {
				m, ok := byID[r.id()]
				if !ok {
					t.Fatalf("record of no event sent: %+v", r)
				}
				e := m.Event
				if r.value != wantBody(e) || r.key != m.Key() {
					t.Errorf("event %s: value %q key %q, want %q key %q", e.ID, r.value, r.key, wantBody(e), m.Key())
				}
				if want := bridge.Expand(tc.template, e.Namespace); r.topic != want {
					t.Errorf("event %s in topic %s, want %s", e.ID, r.topic, want)
				}
				if d := diffMeta(r.headers, wantMeta(e, tc.format, "ce_", "content-type")); d != "" {
					t.Errorf("event %s headers:%s", e.ID, d)
				}
				order[r.topic+" "+m.Key()] = append(order[r.topic+" "+m.Key()], e.ID)
			}
			// Kafka keeps order within a partition of one topic.
			checkOrder(t, ms, order, func(m bridge.Message) string { return bridge.Expand(tc.template, m.Event.Namespace) + " " + m.Key() })
		})
	}
}

// cutter cuts and restores every connection to a kfake cluster through
// its listener hook: Kafka's metadata hands the client the brokers' own
// addresses, so a proxy in front of one would be bypassed.
type cutter struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func (c *cutter) listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	return cutListener{ln, c}, err
}

// Cut closes every open connection and refuses new ones until Restore.
func (c *cutter) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for conn := range c.conns {
		conn.Close()
	}
	clear(c.conns)
}

// Restore accepts connections again.
func (c *cutter) Restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = false
}

type cutListener struct {
	net.Listener
	c *cutter
}

func (l cutListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.c.mu.Lock()
		if !l.c.cut {
			l.c.conns[conn] = struct{}{}
			l.c.mu.Unlock()
			return conn, nil
		}
		l.c.mu.Unlock()
		conn.Close()
	}
}

// Every connection to every broker cut mid-run and restored: every event
// arrives, none lost.
func TestKafkaConnectionCut(t *testing.T) {
	cut := &cutter{conns: map[net.Conn]struct{}{}}
	c := startKafka(t, kfake.ListenFn(cut.listen), kfake.SeedTopics(3, "events"))
	pubs := []bridge.Publisher{open(t, kafkaURL(c, "events"), bridge.FormatEnmeshed, bridge.Config{}), open(t, kafkaURL(c, "events"), bridge.FormatEnmeshed, bridge.Config{})}
	ms := testMessages(600, 20)

	done := make(chan struct{})
	go func() {
		defer close(done)
		publishAll(t, pubs, ms, true)
	}()
	// Cut once the publishers are well under way, for a while.
	natstest.WaitFor(t, 30*time.Second, "records before the cut", func() bool {
		return kafkaCount(t, c, "events") >= 100
	})
	cut.Cut()
	time.Sleep(time.Second) // the outage itself: its length is what is tested
	cut.Restore()
	<-done

	recs := consumeKafka(t, c, len(ms), nil, "events")
	got := map[string]bool{}
	for _, r := range recs {
		got[r.id()] = true
	}
	for _, m := range ms {
		if !got[m.Event.ID] {
			t.Errorf("event %s lost", m.Event.ID)
		}
	}
	t.Logf("%d events, %d records (%d duplicates)", len(ms), len(recs), len(recs)-len(got))
}

// kafkaCount returns how many records topic holds (the sum of its
// partitions' end offsets).
func kafkaCount(t testing.TB, c *kfake.Cluster, topic string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range int32(3) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	var n int64
	shards := cl.RequestSharded(ctx, req)
	for _, s := range shards {
		if s.Err != nil {
			return 0 // during the cut; the caller polls
		}
		for _, t := range s.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				n += p.Offset
			}
		}
	}
	return n
}

// A missing topic leaves the publisher not ready, naming BRIDGE_URL; a
// produce to it fails (retryable, not a pause) and creates nothing; once
// the topic exists, it is ready and the produce goes through. With a
// {{trigger}} template, the topic a produce found missing is what Ready
// checks.
func TestKafkaMissingTopic(t *testing.T) {
	// The cluster would create a topic a client asks it to: the bridge
	// must not ask.
	c := startKafka(t, kfake.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := open(t, kafkaURL(c, "absent"), bridge.FormatEnmeshed, bridge.Config{})
	err := p.Ready(ctx)
	if !errors.Is(err, bridge.ErrMissingDestination) || !strings.Contains(err.Error(), "BRIDGE_URL") {
		t.Fatalf("ready with no topic: %v, want %v naming BRIDGE_URL", err, bridge.ErrMissingDestination)
	}
	m := testMessages(1, 1)[0]
	err = p.Publish(ctx, m)
	if !errors.Is(err, bridge.ErrMissingDestination) || consumers.IsPause(err) {
		t.Fatalf("publish to no topic: %v, want %v", err, bridge.ErrMissingDestination)
	}
	if err := p.Ready(ctx); !errors.Is(err, bridge.ErrMissingDestination) {
		t.Fatalf("ready after a publish: %v: the topic was created", err)
	}

	tp := open(t, kafkaURL(c, "t.{{trigger}}"), bridge.FormatEnmeshed, bridge.Config{})
	if err := tp.Ready(ctx); err != nil {
		t.Fatalf("template, nothing published yet: %v", err)
	}
	if err := tp.Publish(ctx, m); !errors.Is(err, bridge.ErrMissingDestination) {
		t.Fatalf("template: publish to no topic: %v", err)
	}
	if err := tp.Ready(ctx); !errors.Is(err, bridge.ErrMissingDestination) || !strings.Contains(err.Error(), "t.transport.messageReceived") {
		t.Fatalf("template: ready after a publish to a missing topic: %v", err)
	}

	createTopics(t, c, "absent", "t.transport.messageReceived")
	for _, pub := range []bridge.Publisher{p, tp} {
		if err := pub.Ready(ctx); err != nil {
			t.Fatalf("ready once created: %v", err)
		}
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatalf("publish once created: %v", err)
		}
	}
}

// createTopics creates topics as the broker's owner would.
func createTopics(t testing.TB, c *kfake.Cluster, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		if rt.ErrorCode != 0 {
			t.Fatalf("create %s: code %d", rt.Topic, rt.ErrorCode)
		}
	}
}

// Rejected credentials (a wrong SASL password) and a user without WRITE
// on the topic pause the consumer; the topic check only warns; the right
// credentials (PLAIN, SCRAM) publish.
func TestKafkaRefused(t *testing.T) {
	passwords := map[string]string{"bridge": "s3cret-right", "reader": "s3cret-reader"}
	c := startKafka(t, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "bridge", passwords["bridge"]),
		kfake.Superuser("SCRAM-SHA-256", "scram", "s3cret-scram"),
		kfake.User("PLAIN", "reader", passwords["reader"], kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "events",
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}),
		kfake.SeedTopics(1, "events"))
	answerWrongPasswords(c, passwords)
	m := testMessages(1, 1)[0]
	for _, tc := range []struct {
		name, mechanism, user, password string
		pause                           bool
	}{
		{"wrong password", "PLAIN", "bridge", "s3cret-wrong", true},
		{"no write permission", "PLAIN", "reader", passwords["reader"], true},
		{"right credentials", "PLAIN", "bridge", passwords["bridge"], false},
		{"right credentials, SCRAM", "SCRAM-SHA-256", "scram", "s3cret-scram", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			log, buf := natstest.BufferLogger()
			cfg := bridge.Config{Kafka: bridge.KafkaConfig{SASLMechanism: tc.mechanism, User: tc.user, Password: tc.password}}
			p, err := bridge.Open(ctx, bridge.Options{URL: mustURL(t, kafkaURL(c, "events")), Format: bridge.FormatEnmeshed, Config: cfg, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Ready(ctx); err != nil {
				t.Errorf("ready: %v (a refused check only warns)", err)
			}
			err = p.Publish(ctx, m)
			if got := consumers.IsPause(err); got != tc.pause || !tc.pause && err != nil {
				t.Fatalf("publish: %v; pause %v, want %v\n%s", err, got, tc.pause, buf)
			}
			if strings.Contains(buf.String(), tc.password) || strings.Contains(errString(err), tc.password) {
				t.Errorf("the password is in the log or the error")
			}
		})
	}
}

// answerWrongPasswords makes c answer a PLAIN authentication with a wrong
// password as a Kafka broker does, SASL_AUTHENTICATION_FAILED, where kfake
// itself just closes the connection.
func answerWrongPasswords(c *kfake.Cluster, passwords map[string]string) {
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.SASLAuthenticateRequest)
		f := bytes.Split(req.SASLAuthBytes, []byte{0})
		if len(f) != 3 || passwords[string(f[1])] == string(f[2]) {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr("Authentication failed: Invalid username or password")
		return resp, nil, true
	})
}
