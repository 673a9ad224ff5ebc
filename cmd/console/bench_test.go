package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
)

// BenchmarkIngestToLiveTail is the latency from an event's POST to ingest
// to its row in the console's Live tail (the server-sent event), through
// the real eventmesh binary (embedded NATS, NATS_SYNC=always), at a steady
// 100 events/s; it reports p50 and p99 (target p99 < 1 s):
//
//	go test ./cmd/console -run '^$' -bench IngestToLiveTail -benchtime 1000x
func BenchmarkIngestToLiveTail(b *testing.B) {
	natsAddr, ingest, consoleAddr := benchAddr(b), benchAddr(b), benchAddr(b)
	mesh := harness.NewProcess("eventmesh", bins["eventmesh"], ingest, "DATA_DIR="+b.TempDir(), "NATS_LISTEN="+natsAddr,
		"INGEST_ADDR="+ingest, "ARCHIVE_ADDR=", "CONSOLE_ADDR="+consoleAddr, "LOG_LEVEL=warn")
	if err := mesh.Start(); err != nil {
		b.Fatal(err)
	}
	defer mesh.Stop(30 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+consoleAddr+"/live/stream?trigger=transport.*", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("tail: %v %v", resp, err)
	}
	defer resp.Body.Close()

	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	got := make(chan struct{})
	go func() {
		defer close(got)
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() {
			data, ok := strings.CutPrefix(lines.Text(), "data: ")
			if !ok {
				continue
			}
			var e struct{ ID string }
			json.Unmarshal([]byte(data), &e)
			now := time.Now()
			mu.Lock()
			if t, ok := sent[e.ID]; ok {
				lat = append(lat, now.Sub(t))
			}
			done := len(lat) == b.N
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	run := fmt.Sprintf("L%d", time.Now().UnixNano()%1e9)
	tick := time.NewTicker(10 * time.Millisecond) // 100 events/s
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		e := harness.MessageReceived(run, i, 0)
		mu.Lock()
		sent[e.ID()] = time.Now()
		mu.Unlock()
		post(b, ingest, e)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		mu.Lock()
		b.Fatalf("the tail showed %d of %d events", len(lat), b.N)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func benchAddr(b *testing.B) string {
	a, err := harness.FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	return a
}
