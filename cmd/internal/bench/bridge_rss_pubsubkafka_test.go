package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
)

// BenchmarkBridgePeakRSSPubSubKafka is BenchmarkBridgePeakRSS for the
// schemes whose brokers run in this process: Kafka (kfake, a fake cluster
// speaking the real protocol, on a free port) and Google Pub/Sub (pstest,
// Google's fake server, which the bridge reaches through
// PUBSUB_EMULATOR_HOST). The bridge binary is the real one, built with
// the scheme's tag (-tags kafka, -tags pubsub), a process of its own, as
// for the other schemes:
//
//	go test ./cmd/internal/bench -run '^$' -bench BridgePeakRSSPubSubKafka -benchtime 1x
func BenchmarkBridgePeakRSSPubSubKafka(b *testing.B) {
	b.Run("kafka", func(b *testing.B) {
		b.Setenv("GOFLAGS", strings.TrimSpace(os.Getenv("GOFLAGS")+" -tags=kafka"))
		bins, err := harness.Build(filepath.Join(b.TempDir(), "bin"), "bridge")
		if err != nil {
			b.Fatal(err)
		}
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		reportBridgeRSS(b, "kafka", bins["bridge"], "kafka://"+strings.Join(c.ListenAddrs(), ",")+"/events", nil)
	})
	b.Run("pubsub", func(b *testing.B) {
		b.Setenv("GOFLAGS", strings.TrimSpace(os.Getenv("GOFLAGS")+" -tags=pubsub"))
		bins, err := harness.Build(filepath.Join(b.TempDir(), "bin"), "bridge")
		if err != nil {
			b.Fatal(err)
		}
		srv := pstest.NewServerWithAddress("127.0.0.1:0")
		defer srv.Close()
		if _, err := srv.GServer.CreateTopic(context.Background(), &pubsubpb.Topic{Name: "projects/bench/topics/events"}); err != nil {
			b.Fatal(err)
		}
		reportBridgeRSS(b, "pubsub", bins["bridge"], "pubsub://bench/events", []string{"PUBSUB_EMULATOR_HOST=" + srv.Addr})
	})
}

// reportBridgeRSS runs bridgeRSS and reports its figures.
func reportBridgeRSS(b *testing.B, scheme, bin, url string, extra []string) {
	peak, rate := bridgeRSS(b, bin, url, extra)
	b.ReportMetric(peak, "peak_MB")
	b.ReportMetric(rate, "events/s")
	if fi, err := os.Stat(bin); err == nil {
		b.ReportMetric(float64(fi.Size())/1e6, "binary_MB")
	}
	b.Logf("%s: peak RSS %.1f MB at %.0f events/s (target ≤ 30 MB)", scheme, peak, rate)
}
