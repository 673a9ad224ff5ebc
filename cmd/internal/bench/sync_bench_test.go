package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// The sync poller's round as an operator runs it: the producer binary as
// its own process, the Connector double in another (this test binary run
// again as TestSyncBenchDouble), holding messages received messages, NATS
// in the benchmark's process. It reports the first round (which records
// every message in the bucket), a steady round (nothing new: what every
// SYNC_INTERVAL costs), and the producer's peak RSS (VmHWM). Run with
//
//	go test ./cmd/internal/bench -run '^$' -bench SyncRoundProcess -benchtime 3x
//
// SYNC_BENCH_PRODUCER names a producer binary to measure instead of the
// one built from this checkout (to compare with an older build).
func BenchmarkSyncRoundProcess(b *testing.B) {
	bin := os.Getenv("SYNC_BENCH_PRODUCER")
	if bin == "" {
		root, err := harness.ModuleRoot()
		if err != nil {
			b.Fatal(err)
		}
		bins, err := harness.BuildFrom(root, b.TempDir(), "producer")
		if err != nil {
			b.Fatal(err)
		}
		bin = bins["producer"]
	}
	for _, n := range []int{20_000, 200_000} {
		// Set up once: the framework calls the function again for b.N.
		var r *syncRig
		b.Run(fmt.Sprintf("messages=%d", n), func(sb *testing.B) {
			if r == nil {
				r = startSyncRig(b, bin, n)
			}
			r.bench(sb)
		})
		if r != nil {
			r.p.Stop(20 * time.Second)
		}
	}
}

// syncRig is a producer process polling a double process.
type syncRig struct {
	p        *harness.Process
	addr     string
	messages int
	first    time.Duration       // from the start to the first round's end
	last     time.Time           // the last round's end
	status   producer.SyncStatus // after it
}

// syncDoubleEnv carries the number of messages to the helper process.
const syncDoubleEnv = "EVENTMESH_SYNC_BENCH_DOUBLE"

// syncInterval is the producer's SYNC_INTERVAL (the least it takes).
const syncInterval = time.Second

// startSyncRig starts NATS, the double and the producer, and waits for
// the first round.
func startSyncRig(b *testing.B, bin string, messages int) *syncRig {
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m" })
	url := startDouble(b, messages)
	addr, err := harness.FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	p := harness.NewProcess("producer", bin, addr, "NATS_URL="+srv.ClientURL(), "INGEST_ADDR="+addr, "LOG_LEVEL=warn",
		"CONNECTOR_URL="+url, "CONNECTOR_API_KEY="+syncBenchKey, "SYNC_INTERVAL="+syncInterval.String(), "CONNECTOR_TIMEOUT=60s")
	p.ReadyTimeout = 30 * time.Second
	b.Cleanup(func() { p.Stop(20 * time.Second) })
	start := time.Now()
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	r := &syncRig{p: p, addr: addr, messages: messages}
	r.waitRound(b)
	r.first = r.last.Sub(start)
	return r
}

// waitRound waits for the end of the next round (GET /sync/status).
func (r *syncRig) waitRound(b *testing.B) {
	after := r.status.Rounds
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var s producer.SyncStatus
		resp, err := http.Get("http://" + r.addr + "/sync/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
		}
		if err != nil {
			b.Fatal(err)
		}
		if s.Rounds > after {
			r.status, r.last = s, time.Now()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("no round within 10 minutes\n%s", r.p.Tail(2000))
}

// bench measures b.N steady rounds: the time between two rounds' ends
// less the interval the poller sleeps. A failing first round (the whole
// listing over the client's bound, before issue 13.5) is reported with
// the peak RSS alone.
func (r *syncRig) bench(b *testing.B) {
	if r.status.ConsecutiveFailures > 0 {
		rss, _ := r.p.PeakRSS()
		b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MB")
		b.ReportMetric(0, "ok-rounds")
		b.Logf("%d messages: the rounds fail: %s", r.messages, r.status.LastError)
		return
	}
	var steady time.Duration
	b.ResetTimer()
	for range b.N {
		last := r.last
		r.waitRound(b)
		if r.status.ConsecutiveFailures > 0 {
			b.Fatalf("a steady round failed: %s", r.status.LastError)
		}
		steady += r.last.Sub(last) - syncInterval
	}
	b.StopTimer()
	rss, err := r.p.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.first.Seconds(), "first-round-s")
	b.ReportMetric(float64(steady.Milliseconds())/float64(b.N), "round-ms")
	b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MB")
}

const syncBenchKey = "Bench-Key_4fQ9zR2mX8kL1pW7vN3bT6yH"

// startDouble runs this test binary again as TestSyncBenchDouble with
// messages messages and returns the double's URL; the process ends with
// the benchmark.
func startDouble(b *testing.B, messages int) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSyncBenchDouble$")
	cmd.Env = append(os.Environ(), syncDoubleEnv+"="+strconv.Itoa(messages))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdin, err := cmd.StdinPipe() // closed at the end: the helper then exits
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if url, ok := strings.CutPrefix(sc.Text(), "double at "); ok {
			go func() { // drain the rest
				for sc.Scan() {
				}
			}()
			return url
		}
	}
	b.Fatalf("the double process ended without its URL: %v", sc.Err())
	return ""
}

// TestSyncBenchDouble is the Connector double's process of
// BenchmarkSyncRoundProcess, skipped unless the benchmark starts it. It
// serves until its stdin closes.
func TestSyncBenchDouble(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(syncDoubleEnv))
	if err != nil {
		t.Skip("the helper process of BenchmarkSyncRoundProcess")
	}
	d, err := connectortest.NewServer(syncBenchKey, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	d.AddIncomingMessages(connectortest.NewAddress(), "m", n)
	d.SyncNow()
	fmt.Fprintf(os.Stderr, "the double holds %d messages (made in %s)\n", n, time.Since(start).Round(time.Millisecond))
	fmt.Printf("double at %s\n", d.URL())
	bufio.NewReader(os.Stdin).ReadByte() // until the benchmark closes it
}
