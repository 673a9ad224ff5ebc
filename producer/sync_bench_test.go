package producer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkSyncRound: one steady poller round (nothing new) against a
// Connector holding syncBenchMessages received messages — the poller's
// cost every SYNC_INTERVAL once the mesh runs. Reported beside the bare
// listing of the same messages from the same double, which every round
// must do. Run with
//
//	go test ./producer -run '^$' -bench SyncRound -benchtime 5x
func BenchmarkSyncRound(b *testing.B) {
	const syncBenchMessages = 5000
	srv := natstest.Start(b)
	js := natstest.JetStream(b, natstest.Connect(b, srv.ClientURL()))
	log := natstest.Logger(b)
	s := router.MustSubjects("enmeshed")
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 10 * time.Minute}
	ctx := context.Background()
	if _, err := streams.EnsureStream(ctx, js, streams.EventsStream(s, sc), log); err != nil {
		b.Fatal(err)
	}
	d, err := connectortest.NewServer("k", log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	for i := range syncBenchMessages {
		d.AddIncomingMessage(fmt.Sprintf("did:e:peer%d", i%50), "m", time.Time{})
	}
	client, err := connector.New(d.ClientConfig(), log)
	if err != nil {
		b.Fatal(err)
	}
	pub := NewPublisher(js, s, PublisherConfig{Timeout: 5 * time.Second, Attempts: 2}, log)
	p := NewPoller(client, pub, js, router.DefaultSource, SyncConfig{Interval: time.Second}, prometheus.NewRegistry(), log)
	if p.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: streams.SyncBucket, History: 1}); err != nil {
		b.Fatal(err)
	}
	if _, err := p.round(ctx); err != nil { // the first round records the state
		b.Fatal(err)
	}
	var list, round time.Duration
	for range b.N {
		start := time.Now()
		if _, err := client.Messages(ctx); err != nil {
			b.Fatal(err)
		}
		list += time.Since(start)
		start = time.Now()
		n, err := p.round(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n != 0 {
			b.Fatalf("a steady round published %d events", n)
		}
		round += time.Since(start)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / float64(time.Millisecond) }
	b.ReportMetric(ms(round), "round-ms")
	b.ReportMetric(ms(list), "list-ms")
	b.ReportMetric(ms(round)/ms(list), "round/list")
}
