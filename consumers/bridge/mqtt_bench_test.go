package bridge_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// The MQTT benchmarks run the bridge as cmd/bridge wires it (bridge.New:
// the consumer runtime on ENMESHED, the paho publisher) against the broker
// of EVENTMESH_TEST_MQTT, on an embedded server with NATS_SYNC=2m:
//
//	EVENTMESH_TEST_MQTT=mqtt://127.0.0.1:1883 go test ./consumers/bridge -run '^$' -bench MQTT -benchtime 3x
//
// BenchmarkMQTTDeliveryRate compares the bridge draining a preloaded
// backlog with a bare paho client publishing the same payloads and
// properties at the same QoS with the same number in flight, in the same
// run (the machine is noisy; ratios within one run are not).
// BenchmarkMQTTLatency measures, at a steady 1,000 events/s, the time from
// JetStream's ack of an event's publish to its receipt by a QoS 1
// subscriber on the broker.

const (
	mqttBenchEvents   = 10_000 // events per round of BenchmarkMQTTDeliveryRate
	mqttBenchInFlight = 16     // BRIDGE_CONCURRENCY's default, and the bare client's goroutines
	mqttLatencyRate   = 1_000  // events per second in BenchmarkMQTTLatency
	mqttLatencyFor    = 3 * time.Second
)

var mqttBenchRound atomic.Int64

// mqttBenchData is a Connector-shaped messageReceived data of about 1 KB.
func mqttBenchData(id string) []byte {
	return fmt.Appendf(nil, `{"id":"MSG%s","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"%s","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdAt":"2026-03-01T10:15:00.120Z"}`,
		id, strings.Repeat("x", 700))
}

func mqttBenchEvent(round int64, i int) router.Event {
	id := fmt.Sprintf("%016x%016x", round, i)
	return router.Event{ID: id, Namespace: "transport.messageReceived", Source: router.DefaultSource, Time: time.Now(),
		Origin: router.OriginWebhook, Data: mqttBenchData(id)}
}

// mqttBenchMesh is an embedded server with NATS_SYNC=2m and ENMESHED.
func mqttBenchMesh(b *testing.B) jetstream.JetStream {
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m"; c.MaxStore = 4 << 30 })
	nc, err := srv.Connect() // in-process, as cmd/eventmesh connects to its embedded server
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := streams.NewJetStream(nc, natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(b)); err != nil {
		b.Fatal(err)
	}
	return js
}

// runMQTTBenchBridge runs the bridge with the settings vars (over the
// bench's defaults) until the returned stop is called.
func runMQTTBenchBridge(b *testing.B, js jetstream.JetStream, vars ...string) (*bridge.Bridge, func()) {
	kv := map[string]string{"BRIDGE_CONCURRENCY": fmt.Sprint(mqttBenchInFlight)}
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		kv[k] = val
	}
	cfg, err := env.ParseAsWithOptions[bridge.Config](env.Options{Environment: kv})
	if err != nil {
		b.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	br, err := bridge.New(js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	return br, func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("bridge: %v", err)
		}
		js.DeleteConsumer(context.Background(), streams.Events, br.Name())
	}
}

// bareMQTT is the ceiling: a paho client of its own connection publishing
// each event as the bridge does (same topic, body, properties, QoS).
func bareMQTT(b *testing.B, addr string, qos byte) *paho.Client {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "bare-" + bridgetest.MQTTPrefix()[len("eventmesh-test/"):], CleanStart: true, KeepAlive: 30}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c
}

func barePublish(topic string, e router.Event, qos byte) *paho.Publish {
	var user paho.UserProperties
	for _, f := range bridge.Metadata(e) {
		user = append(user, paho.UserProperty{Key: f.Name, Value: f.Value})
	}
	return &paho.Publish{QoS: qos, Topic: topic, Payload: bridge.Body(e),
		Properties: &paho.PublishProperties{ContentType: router.DataContentType, User: user}}
}

// openMQTTBenchPublisher opens the bridge's Publisher alone, publishing
// below prefix at qos; it closes with the benchmark.
func openMQTTBenchPublisher(b *testing.B, broker *url.URL, prefix string, qos int) bridge.Publisher {
	cfg, err := env.ParseAsWithOptions[bridge.Config](env.Options{Environment: map[string]string{
		"BRIDGE_URL": broker.String(), "BRIDGE_MQTT_TOPIC": prefix + "/{{trigger}}", "BRIDGE_MQTT_QOS": fmt.Sprint(qos)}})
	if err != nil {
		b.Fatal(err)
	}
	o, err := cfg.Options(natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	p, err := bridge.Open(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkMQTTDeliveryRate: the bridge draining a backlog of 10,000
// events (1 KB data) from ENMESHED to the broker against a bare paho
// client publishing the same messages with the same QoS and the same
// number in flight (16 goroutines publishing one message each at a time);
// and the bridge's Publisher alone, called the same way (no JetStream, no
// runtime), to tell the publisher's share of a gap from the runtime's.
func BenchmarkMQTTDeliveryRate(b *testing.B) {
	broker := bridgetest.MQTTURL(b)
	for _, qos := range []int{1, 2} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			js := mqttBenchMesh(b)
			prefix := bridgetest.MQTTPrefix()
			topic := prefix + "/transport/messageReceived"
			bare := bareMQTT(b, broker.Host, byte(qos))
			pub := openMQTTBenchPublisher(b, broker, prefix, qos)
			var bridgeRates, bareRates, pubRates []float64
			for b.Loop() {
				round := mqttBenchRound.Add(1)
				events := make([]router.Event, mqttBenchEvents)
				for i := range events {
					events[i] = mqttBenchEvent(round, i)
				}
				pubRates = append(pubRates, bridgetest.Parallel(b, len(events), mqttBenchInFlight, func(i int) error {
					return pub.Publish(context.Background(), bridge.Message{Event: events[i], Body: bridge.Body(events[i])})
				}))
				bareRates = append(bareRates, bridgetest.Parallel(b, len(events), mqttBenchInFlight, func(i int) error {
					_, err := bare.Publish(context.Background(), barePublish(topic, events[i], byte(qos)))
					return err
				}))

				futs := make([]jetstream.PubAckFuture, 0, len(events))
				for _, e := range events {
					f, err := js.PublishMsgAsync(e.Msg(subjects), jetstream.WithStallWait(time.Minute))
					if err != nil {
						b.Fatal(err)
					}
					futs = append(futs, f)
				}
				var last uint64
				for _, f := range futs {
					select {
					case ack := <-f.Ok():
						last = max(last, ack.Sequence)
					case err := <-f.Err():
						b.Fatal(err)
					}
				}
				start := time.Now()
				br, stop := runMQTTBenchBridge(b, js, "BRIDGE_URL="+broker.String(), "BRIDGE_MQTT_TOPIC="+prefix+"/{{trigger}}",
					fmt.Sprintf("BRIDGE_MQTT_QOS=%d", qos), "BRIDGE_START=all", fmt.Sprintf("BRIDGE_DURABLE=bench-mqtt-%d", round))
				waitSettled(b, js, br.Name(), last)
				bridgeRates = append(bridgeRates, float64(len(events))/time.Since(start).Seconds())
				stop()
				// The next round's backlog only.
				s, err := js.Stream(context.Background(), streams.Events)
				if err == nil {
					err = s.Purge(context.Background())
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			br, ba := bridgetest.Median(bridgeRates), bridgetest.Median(bareRates)
			b.ReportMetric(br, "bridge_events/s")
			b.ReportMetric(ba, "bare_events/s")
			b.ReportMetric(br/ba, "ratio")
			b.ReportMetric(bridgetest.Median(pubRates), "publisher_events/s")
			b.ReportMetric(bridgetest.Median(pubRates)/ba, "publisher_ratio")
		})
	}
}

// waitSettled waits until the durable acknowledged every event up to the
// stream sequence last.
func waitSettled(b *testing.B, js jetstream.JetStream, durable string, last uint64) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if c, err := js.Consumer(context.Background(), streams.Events, durable); err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.AckFloor.Stream >= last && info.NumAckPending == 0 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("the bridge did not acknowledge the events up to stream sequence %d within 5 minutes", last)
}

// BenchmarkMQTTLatency: events published to ENMESHED at a steady 1,000/s
// for 3 s while the bridge runs (QoS 1, BRIDGE_CONCURRENCY 16); the
// latency of each is from JetStream's ack of its publish to its receipt by
// a QoS 1 subscriber ("bridge"). In the same run, "publisher" calls the
// bridge's Publisher itself at the same pace (no JetStream, no runtime),
// from the call to the receipt: the broker's and the publisher's share of
// the latency.
func BenchmarkMQTTLatency(b *testing.B) {
	broker := bridgetest.MQTTURL(b)
	b.Run("bridge", func(b *testing.B) {
		js := mqttBenchMesh(b)
		mqttLatency(b, broker, func(prefix string, round int64) (func(router.Event), func()) {
			br, stop := runMQTTBenchBridge(b, js, "BRIDGE_URL="+broker.String(), "BRIDGE_MQTT_TOPIC="+prefix+"/{{trigger}}",
				fmt.Sprintf("BRIDGE_DURABLE=bench-mqtt-lat-%d", round))
			natstest.WaitFor(b, 20*time.Second, "the bridge ready", func() bool { return br.Ready(context.Background()) == nil })
			return func(e router.Event) {
				if _, err := js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
					b.Fatal(err)
				}
			}, stop
		})
	})
	b.Run("publisher", func(b *testing.B) {
		mqttLatency(b, broker, func(prefix string, _ int64) (func(router.Event), func()) {
			p := openMQTTBenchPublisher(b, broker, prefix, 1)
			return func(e router.Event) {
				if err := p.Publish(context.Background(), bridge.Message{Event: e, Body: bridge.Body(e)}); err != nil {
					b.Fatal(err)
				}
			}, func() { p.Close() }
		})
	})
}

// mqttLatency runs the latency rounds: start returns what sends one event
// (returning once it is stored or confirmed) and what stops the sender.
// Each event's latency runs from the return of its send to its first
// receipt by a QoS 1 subscriber; the send loop is open (the next event
// goes when it is due), so a slow pipeline shows as growing latency.
func mqttLatency(b *testing.B, broker *url.URL, start func(prefix string, round int64) (send func(router.Event), stop func())) {
	var lat []time.Duration
	for b.Loop() {
		round := mqttBenchRound.Add(1)
		prefix := bridgetest.MQTTPrefix()
		sub := bridgetest.SubscribeMQTT(b, broker.Host, prefix+"/#")
		send, stop := start(prefix, round)
		n := int(mqttLatencyRate * mqttLatencyFor / time.Second)
		sent := make([]time.Time, n)
		ids := make([]string, n)
		byID := make(map[string]int, n)
		began := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			time.Sleep(time.Until(began.Add(time.Duration(i) * time.Second / mqttLatencyRate)))
			e := mqttBenchEvent(round, i)
			ids[i], byID[e.ID] = e.ID, i
			wg.Go(func() { send(e); sent[i] = time.Now() })
		}
		wg.Wait()
		sub.WaitIDs(b, 60*time.Second, ids)
		stop()
		at := sub.ReceivedAt()
		seen := map[string]bool{}
		for i, m := range sub.Received() {
			id := bridgetest.MQTTEventID(m)
			if j, ok := byID[id]; ok && !seen[id] {
				seen[id] = true
				// A receipt can beat the sender's return: count it as 0.
				lat = append(lat, max(0, at[i].Sub(sent[j])))
			}
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(q(1), "max_ms")
}
