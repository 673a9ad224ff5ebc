package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// Issues 14 and 15, measured as users run the bridge. A nats-server
// (NATS_SYNC=2m, in this process, as BenchmarkProcessWebhook has it)
// holds a preloaded backlog of 20,000 Connector events of about 1 KB in
// ENMESHED; the built bridge binary, as its own process with its defaults
// (BRIDGE_CONCURRENCY 16) but a durable of its own starting at the first
// event (BRIDGE_START=all), drains it to a destination of its own on the
// broker; so does the bare client (roleBareBridge, this test binary
// started again), a client of the library the bridge uses, publishing the
// same bodies and metadata with the same confirms from 16 goroutines, each
// waiting for its own confirm (events it builds itself: it reads nothing
// from NATS). Each is timed from starting its process to its last confirm:
// the bridge's durable having every event acknowledged (the bridge acks an
// event after the broker's confirm; the ack floor polled every 10 ms), the
// bare client answering GET /done with 200 (polled every 10 ms). Reported
// per broker: events per second of each (medians of the rounds, the order
// alternating from round to round), the ratio (target ≥ 0.5), and each
// process's CPU time per event over its whole life, start-up included.
// One sub-benchmark per broker whose EVENTMESH_TEST_AMQP, _MQTT or _REDIS
// is set, and kafka (kfake, three brokers) and pubsub (pstest), fakes in
// this process that the processes reach over TCP, with the bridge built
// with -tags kafka or -tags pubsub:
//
//	go test ./cmd/internal/bench -run '^$' -bench ProcessBridge -benchtime 3x
//
// EVENTMESH_BENCH_EVENTS sets the backlog (default 20,000).
func BenchmarkProcessBridge(b *testing.B) {
	n := benchEvents(20_000)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m"; c.MaxStore = 4 << 30 })
	js := natstest.JetStream(b, natstest.Connect(b, srv.ClientURL()))
	subj := router.MustSubjects(router.DefaultPrefix)
	sc := streams.StreamConfig{Replicas: 1, MaxAge: 7 * 24 * time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subj, sc), natstest.Logger(b)); err != nil {
		b.Fatal(err)
	}
	run, last := preload(b, js, subj, n)
	dir := b.TempDir()
	bins := map[string]string{} // by build tags, built once under dir
	for _, br := range bridgeBrokers {
		b.Run(br.scheme, func(b *testing.B) {
			dest := newBridgeDest(b, br.scheme, br.env, "proc"+router.RandomKey()[:8], 3)
			if bins[br.tags] == "" {
				bins[br.tags] = buildBridge(b, dir, br.tags)
			}
			pb := &processBridge{js: js, natsURL: srv.ClientURL(), bridge: bins[br.tags], self: self, run: run, n: n, last: last, dest: dest}
			pb.bench(b)
		})
	}
}

// processBridge is BenchmarkProcessBridge on one broker.
type processBridge struct {
	js           jetstream.JetStream
	natsURL      string
	bridge, self string // the bridge binary, this test binary
	run          string // the preloaded events' run (connectorEvent)
	n            int
	last         uint64 // the stream sequence of the last preloaded event
	dest         bridgeDest
}

var processBridgeRound atomic.Int64

// bench runs b.N rounds of the bridge and the bare client and reports the
// medians.
func (pb *processBridge) bench(b *testing.B) {
	var ours, bare, oursCPU, bareCPU []float64
	b.ResetTimer()
	for i := range b.N {
		parties := []func(){
			func() { r, c := pb.measure(b, true); ours, oursCPU = append(ours, r), append(oursCPU, c) },
			func() { r, c := pb.measure(b, false); bare, bareCPU = append(bare, r), append(bareCPU, c) },
		}
		for j := range parties {
			parties[(i+j)%len(parties)]()
		}
	}
	b.StopTimer()
	b.ReportMetric(median(ours), "bridge-events/s")
	b.ReportMetric(median(bare), "bare-events/s")
	b.ReportMetric(median(ours)/median(bare), "ratio")
	b.ReportMetric(median(oursCPU), "bridge-cpu-µs/event")
	b.ReportMetric(median(bareCPU), "bare-cpu-µs/event")
	b.Logf("bridge %v events/s, bare %v; CPU µs/event bridge %v, bare %v",
		rounded(ours), rounded(bare), rounded(oursCPU), rounded(bareCPU))
}

// measure runs the bridge (ours) or the bare client as a process until its
// last confirm and returns its events per second from its start and its
// CPU time per event in µs. The destination is emptied afterwards.
func (pb *processBridge) measure(b *testing.B, ours bool) (rate, cpuPerEvent float64) {
	ctx := context.Background()
	addr, err := harness.FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	durable := fmt.Sprintf("proc-bridge-%d", processBridgeRound.Add(1))
	var p *harness.Process
	if ours {
		p = harness.NewProcess("bridge", pb.bridge, addr, append([]string{"NATS_URL=" + pb.natsURL, "HTTP_ADDR=" + addr,
			"BRIDGE_URL=" + pb.dest.url, "BRIDGE_DURABLE=" + durable, "BRIDGE_START=all", "LOG_LEVEL=warn"}, pb.dest.env...)...)
	} else {
		p = harness.NewProcess("bare-bridge", pb.self, addr, append([]string{roleEnv + "=" + roleBareBridge, roleAddrEnv + "=" + addr,
			"BRIDGE_URL=" + pb.dest.url, benchRunEnv + "=" + pb.run, fmt.Sprintf("EVENTMESH_BENCH_EVENTS=%d", pb.n),
			fmt.Sprintf("%s=%d", bareConcurrencyEnv, bareBridgeInFlight)}, pb.dest.env...)...)
	}
	p.ReadyTimeout = time.Minute
	start := time.Now()
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	defer p.Stop(30 * time.Second)
	var end time.Time
	if ours {
		done, err := (&bencher{stderr: os.Stderr}).settled(ctx, pb.js, "bridge", []string{durable}, pb.last)
		if err != nil {
			b.Fatalf("%v\n%s", err, p.Tail(2000))
		}
		end = done[0]
	} else {
		var failed error
		client := &http.Client{Timeout: 5 * time.Second}
		err := until(ctx, 5*time.Minute, "the bare client's last confirm", func() bool {
			resp, err := client.Get("http://" + addr + "/done")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusInternalServerError {
				failed = errors.New(string(body))
			}
			return resp.StatusCode != http.StatusAccepted
		})
		end = time.Now()
		if err == nil {
			err = failed
		}
		if err != nil {
			b.Fatalf("%v\n%s", err, p.Tail(2000))
		}
	}
	cpu, err := p.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	p.Stop(30 * time.Second)
	if ours {
		if err := deleteDurables(ctx, pb.js, durable); err != nil {
			b.Fatal(err)
		}
	}
	if pb.dest.reset != nil {
		if err := pb.dest.reset(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(pb.n) / end.Sub(start).Seconds(), float64(cpu.Microseconds()) / float64(pb.n)
}

const (
	// benchRunEnv is the run of the preloaded events (connectorEvent)
	// the bare client publishes.
	benchRunEnv = "EVENTMESH_BENCH_RUN"
	// bareBridgeInFlight is BRIDGE_CONCURRENCY's default: the bridge's
	// confirms in flight, and the bare client's.
	bareBridgeInFlight = 16
)

// serveBareBridge is roleBareBridge: it publishes with bareBridge and
// answers GET /done 202 while publishing, then 200, or 500 with the error.
func serveBareBridge(ctx context.Context, mux *http.ServeMux) {
	var result atomic.Pointer[error]
	go func() {
		err := bareBridge(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bare-bridge:", err)
		}
		result.Store(&err)
	}()
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, _ *http.Request) {
		switch r := result.Load(); {
		case r == nil:
			w.WriteHeader(http.StatusAccepted)
		case *r != nil:
			http.Error(w, (*r).Error(), http.StatusInternalServerError)
		}
	})
}

// bareBridge publishes the EVENTMESH_BENCH_EVENTS events of
// EVENTMESH_BENCH_RUN (connectorEvent) to BRIDGE_URL as the bridge
// publishes them in its default format (the same body, metadata, key and
// destination, with the same confirm), bareConcurrencyEnv goroutines each
// waiting for its own confirm, with the client library the bridge uses
// set as the bridge sets it; it returns after the last confirm.
func bareBridge(ctx context.Context) error {
	u, err := url.Parse(os.Getenv("BRIDGE_URL"))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("EVENTMESH_BENCH_EVENTS"))
	workers, _ := strconv.Atoi(os.Getenv(bareConcurrencyEnv))
	run := os.Getenv(benchRunEnv)
	msgs := make([]bridge.Message, n)
	for i := range msgs {
		e := connectorEvent(run, i)
		msgs[i] = bridge.Message{Event: e, Body: bridge.Body(e)}
	}
	publish, closeClient, err := bareClient(ctx, u)
	if err != nil {
		return err
	}
	defer closeClient()
	_, err = inFlight(ctx, n, workers, func(i int) error { return publish(msgs[i]) })
	return err
}

// bareClient connects the bare client of u's scheme.
func bareClient(ctx context.Context, u *url.URL) (publish func(bridge.Message) error, closeClient func(), err error) {
	switch u.Scheme {
	case "amqp", "amqps":
		// One channel in confirm mode, mandatory and persistent, to the
		// default exchange.
		conn, err := amqp.Dial(u.String())
		if err != nil {
			return nil, nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		key := os.Getenv("BRIDGE_AMQP_ROUTING_KEY")
		return func(m bridge.Message) error {
			h := amqp.Table{}
			for _, f := range bridge.Metadata(m.Event) {
				h[f.Name] = f.Value
			}
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", key, true, false, amqp.Publishing{Headers: h,
				DeliveryMode: amqp.Persistent, MessageId: m.Event.ID, Timestamp: m.Event.Time, ContentType: router.DataContentType, Body: m.Body})
			if err == nil && !dc.Wait() {
				err = errors.New("negative confirm")
			}
			return err
		}, func() { conn.Close() }, nil
	case "mqtt":
		// One connection, QoS 1 (the bridge's default): each publish
		// returns after its PUBACK.
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			return nil, nil, err
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn})
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: "bare-" + router.RandomKey()[:12], CleanStart: true, KeepAlive: 30}); err != nil {
			conn.Close()
			return nil, nil, err
		}
		template := os.Getenv("BRIDGE_MQTT_TOPIC")
		return func(m bridge.Message) error {
			var user paho.UserProperties
			for _, f := range bridge.Metadata(m.Event) {
				user = append(user, paho.UserProperty{Key: f.Name, Value: f.Value})
			}
			_, err := c.Publish(ctx, &paho.Publish{QoS: 1, Topic: bridge.Expand(template, strings.ReplaceAll(m.Event.Namespace, ".", "/")),
				Payload: m.Body, Properties: &paho.PublishProperties{ContentType: router.DataContentType, User: user}})
			return err
		}, func() { c.Disconnect(&paho.Disconnect{}) }, nil
	case "redis", "rediss":
		// XADD of the same entry, one in flight per goroutine.
		opt, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, nil, err
		}
		c := redis.NewClient(opt)
		key := os.Getenv("BRIDGE_REDIS_STREAM")
		return func(m bridge.Message) error {
			vs := []any{"id", m.Event.ID, "trigger", m.Event.Namespace, "data", m.Body}
			for _, f := range bridge.Metadata(m.Event) {
				vs = append(vs, f.Name, f.Value)
			}
			return c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: vs}).Err()
		}, func() { c.Close() }, nil
	case "kafka":
		// Idempotent (the client's default), acks from all in-sync
		// replicas, no linger; the peer as the key.
		c, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(u.Host, ",")...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
		if err != nil {
			return nil, nil, err
		}
		topic := strings.TrimPrefix(u.Path, "/")
		return func(m bridge.Message) error {
			rec := &kgo.Record{Topic: topic, Value: m.Body, Headers: []kgo.RecordHeader{{Key: "namespace", Value: []byte(m.Event.Namespace)}}}
			if key := m.Key(); key != "" { // decoded per record, as the bridge's publisher does
				rec.Key = []byte(key)
			}
			for _, f := range bridge.Metadata(m.Event) {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: f.Name, Value: []byte(f.Value)})
			}
			return c.ProduceSync(ctx, rec).FirstErr()
		}, c.Close, nil
	case "pubsub":
		// Google's client at PUBSUB_EMULATOR_HOST, a batch after 1 ms,
		// each publish waiting for its result.
		c, err := pubsub.NewClient(ctx, u.Host)
		if err != nil {
			return nil, nil, err
		}
		pub := c.Publisher("projects/" + u.Host + "/topics/" + strings.TrimPrefix(u.Path, "/"))
		pub.PublishSettings.DelayThreshold = time.Millisecond
		return func(m bridge.Message) error {
			attrs := map[string]string{"namespace": m.Event.Namespace}
			for _, f := range bridge.Metadata(m.Event) {
				attrs[f.Name] = f.Value
			}
			_, err := pub.Publish(ctx, &pubsub.Message{Data: m.Body, Attributes: attrs}).Get(ctx)
			return err
		}, func() { pub.Stop(); c.Close() }, nil
	}
	return nil, nil, fmt.Errorf("BRIDGE_URL: no bare client for scheme %q", u.Scheme)
}
