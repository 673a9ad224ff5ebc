//go:build kafka

package bridge_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmesh/eventmesh/consumers/bridge"
)

// BenchmarkKafkaDeliveryRate: see pubsubkafka_bench_test.go. The bare
// client is a franz-go client configured as the bridge's (idempotent,
// acks from all in-sync replicas, no linger), producing records with the
// same key, value and headers, each goroutine waiting for its record's
// promise. The cluster is kfake with three brokers and a topic of three
// partitions.
func BenchmarkKafkaDeliveryRate(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, "events"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	url := kafkaURL(c, "events")
	p := newPKBench(b)
	pub := open(b, url, bridge.FormatEnmeshed, bridge.Config{})
	bare, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	produce := func(m bridge.Message) error {
		rec := &kgo.Record{Topic: "events", Key: []byte(m.Key()), Value: m.Body,
			Headers: []kgo.RecordHeader{{Key: "namespace", Value: []byte(m.Event.Namespace)}}}
		for _, f := range bridge.Metadata(m.Event) {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: f.Name, Value: []byte(f.Value)})
		}
		return bare.ProduceSync(context.Background(), rec).FirstErr()
	}
	p.rates(b, pub, produce, "BRIDGE_URL="+url)
}
