package producing_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

// scrape reads the gauges named in names from the producer's /metrics.
func scrape(t *testing.T, addr string, names ...string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		for _, n := range names {
			if ok && name == n {
				if got[n], err = strconv.ParseFloat(value, 64); err != nil {
					t.Fatalf("%s: %v", sc.Text(), err)
				}
			}
		}
	}
	return got
}

// The producer's /metrics tells how full ENMESHED is, from the stream's
// info, refreshed every StreamWatchEvery.
func TestStreamGauges(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.ClientURL())
	c := testProducerConfig()
	c.Stream.MaxBytes = 1 << 20
	p, err := producing.Start(context.Background(), c, nc, prometheus.NewRegistry(), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	const n = 25
	for i := range n {
		body := fmt.Sprintf(`{"trigger":"transport.messageReceived","data":{"id":"MSGgauge%02d"}}`, i)
		resp, err := http.Post("http://"+p.HTTP.Addr()+"/events", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	info, err := p.Stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n || info.State.Bytes == 0 {
		t.Fatalf("stream state %+v", info.State)
	}
	names := []string{"eventmesh_stream_bytes", "eventmesh_stream_max_bytes", "eventmesh_stream_messages", "eventmesh_stream_used_ratio"}
	want := map[string]float64{"eventmesh_stream_bytes": float64(info.State.Bytes), "eventmesh_stream_max_bytes": 1 << 20,
		"eventmesh_stream_messages": n, "eventmesh_stream_used_ratio": float64(info.State.Bytes) / (1 << 20)}
	var got map[string]float64
	deadline := time.Now().Add(3 * producing.StreamWatchEvery)
	for {
		got = scrape(t, p.HTTP.Addr(), names...)
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gauges %v, want %v", got, want)
	}
	if streams.WarnRatio(info.Config) != 0.8 {
		t.Errorf("warn ratio in the metadata: %v", info.Config.Metadata)
	}
}
