package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The load of BenchmarkBridgePeakRSS: as the other binaries' RSS rows, a
// steady 1,000 events/s, for ten seconds.
const (
	bridgeRSSEvents = 10_000
	bridgeRSSRate   = 1000
)

// BenchmarkBridgePeakRSS runs the built bridge binary with its defaults
// against a nats-server on a free port, once per broker whose
// EVENTMESH_TEST_* variable is set, publishes transport.messageReceived
// events into ENMESHED at a steady 1,000/s, waits until the bridge has
// settled every one, and reports its peak RSS (VmHWM, peak_MB). The
// target: at most 30 MB per scheme. One run takes some twenty seconds per
// broker, whatever b.N:
//
//	go test ./cmd/internal/bench -run '^$' -bench BridgePeakRSS -benchtime 1x
func BenchmarkBridgePeakRSS(b *testing.B) {
	bin := buildBridge(b, b.TempDir(), "")
	run := "rss" + router.RandomKey()[:8]
	for _, br := range bridgeBrokers {
		if br.env == "" {
			continue // BenchmarkBridgePeakRSSPubSubKafka
		}
		b.Run(br.scheme, func(b *testing.B) {
			dest := newBridgeDest(b, br.scheme, br.env, run, 0)
			peak, rate := bridgeRSS(b, bin, dest.url, dest.env)
			b.ReportMetric(peak, "peak_MB")
			b.ReportMetric(rate, "events/s")
			b.Logf("%s: peak RSS %.1f MB at %.0f events/s (target ≤ 30 MB)", br.scheme, peak, rate)
		})
	}
}

// bridgeRSS runs the bridge at url with extra settings through the load
// and returns its peak RSS in MB and the rate of the load achieved.
func bridgeRSS(b *testing.B, bin, url string, extra []string) (peakMB, rate float64) {
	srv := natstest.Start(b)
	// Room for every publish in flight: the load never waits for acks.
	js, err := jetstream.New(natstest.Connect(b, srv.ClientURL()), jetstream.WithPublishAsyncMaxPending(2*bridgeRSSEvents))
	if err != nil {
		b.Fatal(err)
	}
	subjects := router.MustSubjects(router.DefaultPrefix)
	ctx := context.Background()
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 1 << 30, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(ctx, js, streams.EventsStream(subjects, sc), natstest.Logger(b)); err != nil {
		b.Fatal(err)
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	const durable = "bridge-rss"
	p := harness.NewProcess("bridge", bin, addr, append([]string{"NATS_URL=" + srv.ClientURL(), "HTTP_ADDR=" + addr,
		"BRIDGE_URL=" + url, "BRIDGE_DURABLE=" + durable, "LOG_LEVEL=warn"}, extra...)...)
	p.ReadyTimeout = 30 * time.Second
	if err := p.Start(); err != nil {
		b.Fatalf("%v\n%s", err, p.Tail(2000))
	}
	defer p.Stop(20 * time.Second)

	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	per := bridgeRSSRate / 100
	for i := 0; i < bridgeRSSEvents; i += per {
		<-tick.C
		for j := i; j < i+per; j++ {
			e := harness.MessageReceived("rss", j, 0)
			ev := router.Event{Namespace: e.Trigger, Source: "bench", Time: time.Now().UTC(), Origin: router.OriginWebhook, Data: e.Data}
			ev.ID = router.HashID(ev.Source, ev.Namespace, fmt.Sprint(j, time.Now().UnixNano()))
			if _, err := js.PublishMsgAsync(ev.Msg(subjects)); err != nil {
				b.Fatal(err)
			}
		}
	}
	rate = float64(bridgeRSSEvents) / time.Since(start).Seconds()
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		b.Fatal("publishes not acknowledged")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := js.Consumer(ctx, streams.Events, durable)
		if err != nil {
			b.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream >= bridgeRSSEvents {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the bridge did not settle the events: %+v\n%s", info, p.Tail(2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.StopTimer()
	peak, err := p.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}
	return float64(peak) / 1e6, rate
}

// amqpDo runs f on a channel of a new connection to url.
func amqpDo(url string, f func(*amqp.Channel) error) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return f(ch)
}
