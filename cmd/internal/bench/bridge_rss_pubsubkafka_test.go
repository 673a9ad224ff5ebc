package bench

import (
	"os"
	"testing"
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
	for _, br := range bridgeBrokers {
		if br.tags == "" {
			continue
		}
		b.Run(br.scheme, func(b *testing.B) {
			bin := buildBridge(b, b.TempDir(), br.tags)
			dest := newBridgeDest(b, br.scheme, br.env, "rss", 1)
			reportBridgeRSS(b, br.scheme, bin, dest.url, dest.env)
		})
	}
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
