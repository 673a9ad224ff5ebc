package producer_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Each crossing of a fill threshold is logged once, in both directions:
// filling at STREAM_WARN_RATIO, full, back below the ratio.
func TestStreamWatchLogsCrossings(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx := context.Background()
	s := router.MustSubjects("enmeshed")
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 1 << 20, DuplicateWindow: time.Minute, WarnRatio: 0.5}
	st, err := streams.EnsureStream(ctx, js, streams.EventsStream(s, sc), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	w := producer.NewStreamWatch(reg, slog.New(slog.NewTextHandler(&logs, nil)))
	look := func(times int) {
		t.Helper()
		for range times {
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			w.Observe(info)
		}
	}
	publish := func(size int) error {
		_, err := js.Publish(ctx, s.Event("transport.messageReceived"), make([]byte, size))
		return err
	}
	count := func(msg string) int { return strings.Count(logs.String(), msg) }

	look(2) // empty: nothing to say
	for range 4 {
		publish(100 << 10)
	}
	look(2) // ~40 %
	if logs.Len() != 0 {
		t.Errorf("logged below the ratio:\n%s", logs.String())
	}
	publish(100 << 10)
	publish(100 << 10)
	look(3) // ~60 %
	for publish(100<<10) == nil {
	}
	for publish(1) == nil {
	}
	look(3) // full
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(5)); err != nil {
		t.Fatal(err)
	}
	look(3) // filling, no longer full
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	look(3)
	for msg, want := range map[string]int{"stream is filling": 1, "stream is FULL": 1, "stream is no longer full": 1,
		"stream is below STREAM_WARN_RATIO again": 1} {
		if got := count(msg); got != want {
			t.Errorf("%q logged %d times, want %d", msg, got, want)
		}
	}
	if strings.Index(logs.String(), "stream is filling") > strings.Index(logs.String(), "stream is FULL") {
		t.Errorf("crossings out of order:\n%s", logs.String())
	}
	t.Logf("logs:\n%s", logs.String())

	// The gauges follow the last look.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		got[f.GetName()] = gaugeValue(f.GetMetric()[0])
	}
	if got["eventmesh_stream_messages"] != 0 || got["eventmesh_stream_bytes"] != 0 || got["eventmesh_stream_max_bytes"] != 1<<20 ||
		got["eventmesh_stream_used_ratio"] != 0 {
		t.Errorf("gauges after the purge: %v", got)
	}
}

func gaugeValue(m *dto.Metric) float64 { return m.GetGauge().GetValue() }
