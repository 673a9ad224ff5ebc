package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Issue 18.1 and 18.3: webhook delivery measured as users run it. A
// nats-server (NATS_SYNC=2m, in this process) holds a preloaded stream of
// about 1 KB events; the webhook binary, as its own process with its
// defaults and WEBHOOK_CONCURRENCY 16 or 64, drains it to a receiver (in
// this process) answering 204; so does the bare pull-and-POST loop
// (roleBareWebhook, this test binary started again): a durable with the
// same configuration as the webhook's (filter subjects with the replay
// subject, ack wait, max ack pending, max deliver, copied from the
// server), as many pulled and in flight, the raw body POSTed, the ack
// after a 2xx, no signature. Reported per concurrency: events per second
// from the receiver's first request to its last, the ratio, and each
// process's CPU time per event (its whole life, start-up included).
//
//	go test ./cmd/internal/bench -run '^$' -bench ProcessWebhook -benchtime 3x
//
// EVENTMESH_BENCH_EVENTS sets the backlog (default 20,000).
func BenchmarkProcessWebhook(b *testing.B) {
	n := benchEvents(20_000)
	dir := b.TempDir()
	bins, err := harness.Build(filepath.Join(dir, "bin"), "webhook")
	if err != nil {
		b.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m"; c.MaxStore = 4 << 30 })
	nc := natstest.Connect(b, srv.ClientURL())
	js := natstest.JetStream(b, nc)
	subj := router.MustSubjects(router.DefaultPrefix)
	sc := streams.StreamConfig{Replicas: 1, MaxAge: 7 * 24 * time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subj, sc), slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	preload(b, js, subj, n)
	recv := newCountingReceiver(b)

	var template *jetstream.ConsumerConfig // the webhook's durable, as the server holds it
	round := 0
	measure := func(key string, concurrency int) (rate, cpuPerEvent float64) {
		round++
		addr, err := harness.FreeAddr()
		if err != nil {
			b.Fatal(err)
		}
		durable := fmt.Sprintf("proc-%s-%d", key, round)
		var p *harness.Process
		if key == "webhook" {
			p = harness.NewProcess("webhook", bins["webhook"], addr, "NATS_URL="+srv.ClientURL(), "HTTP_ADDR="+addr,
				"WEBHOOK_URL="+recv.URL, "WEBHOOK_SECRET="+secret, "WEBHOOK_DURABLE="+durable, "WEBHOOK_START=all",
				fmt.Sprintf("WEBHOOK_CONCURRENCY=%d", concurrency), "LOG_LEVEL=warn")
		} else {
			c := *template
			c.Durable, c.Name, c.Description = durable, "", "the bare pull-and-POST loop"
			c.DeliverPolicy, c.OptStartTime = jetstream.DeliverAllPolicy, nil
			cfg, _ := json.Marshal(c)
			p = harness.NewProcess("bare-webhook", self, addr, roleEnv+"="+roleBareWebhook, roleAddrEnv+"="+addr,
				"NATS_URL="+srv.ClientURL(), "WEBHOOK_URL="+recv.URL, bareDurableEnv+"="+string(cfg),
				fmt.Sprintf("%s=%d", bareConcurrencyEnv, concurrency))
		}
		p.ReadyTimeout = time.Minute
		t := recv.arm(n)
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		defer p.Stop(30 * time.Second)
		select {
		case <-t.done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%s: the receiver got %d of %d within 5 minutes\n%s", key, t.count.Load(), n, p.Tail(2000))
		}
		cpu, err := p.CPUTime()
		if err != nil {
			b.Fatal(err)
		}
		if template == nil {
			info, err := js.Consumer(context.Background(), streams.Events, durable)
			if err != nil {
				b.Fatal(err)
			}
			ci, err := info.Info(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			template = &ci.Config
		}
		p.Stop(30 * time.Second)
		for _, d := range []string{durable, durable + "-advisories"} {
			js.DeleteConsumer(context.Background(), streams.Events, d)
			js.DeleteConsumer(context.Background(), streams.Advisories, d)
		}
		return float64(n-1) / t.last.Sub(t.first).Seconds(), float64(cpu.Microseconds()) / float64(n)
	}

	type figures struct{ ours, bare, oursCPU, bareCPU []float64 }
	results := map[int]*figures{16: {}, 64: {}}
	b.ResetTimer()
	for i := range b.N {
		for _, c := range []int{16, 64} {
			f := results[c]
			run := func(key string) {
				rate, cpu := measure(key, c)
				if key == "webhook" {
					f.ours, f.oursCPU = append(f.ours, rate), append(f.oursCPU, cpu)
				} else {
					f.bare, f.bareCPU = append(f.bare, rate), append(f.bareCPU, cpu)
				}
			}
			if template == nil || i%2 == 0 {
				run("webhook")
				run("bare")
			} else {
				run("bare")
				run("webhook")
			}
		}
	}
	b.StopTimer()
	for _, c := range []int{16, 64} {
		f := results[c]
		b.ReportMetric(median(f.ours), fmt.Sprintf("c%d-webhook-events/s", c))
		b.ReportMetric(median(f.bare), fmt.Sprintf("c%d-bare-events/s", c))
		b.ReportMetric(median(f.ours)/median(f.bare), fmt.Sprintf("c%d-ratio", c))
		b.ReportMetric(median(f.oursCPU), fmt.Sprintf("c%d-webhook-cpu-µs/event", c))
		b.ReportMetric(median(f.bareCPU), fmt.Sprintf("c%d-bare-cpu-µs/event", c))
		b.Logf("concurrency %d: webhook %v events/s, bare %v; CPU µs/event webhook %v, bare %v",
			c, rounded(f.ours), rounded(f.bare), rounded(f.oursCPU), rounded(f.bareCPU))
	}
}

// preload publishes n events of about 1 KB as ingest stores them
// (connectorEvent of a fresh run) and returns the run and the stream
// sequence of the last.
func preload(b *testing.B, js jetstream.JetStream, subj router.Subjects, n int) (run string, last uint64) {
	run = fmt.Sprint(time.Now().UnixNano())
	_, seqs, err := publish(context.Background(), js, subj, n, func(i int) router.Event { return connectorEvent(run, i) })
	if err != nil {
		b.Fatal(err)
	}
	return run, slices.Max(seqs)
}

// connectorEvent is event i of run as preload stores it: a
// transport.messageReceived of about 1 KB, its id derived from the data as
// ingest derives it.
func connectorEvent(run string, i int) router.Event {
	data := harness.MessageReceived(run, i, 0).Data
	id, _ := router.EventID(router.DefaultSource, msgNS, data)
	return router.Event{ID: id, Namespace: msgNS, Source: router.DefaultSource, Time: time.Now(), Origin: router.OriginWebhook, Data: data}
}

// countingReceiver answers 204 and counts the requests of the armed
// measurement.
type countingReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	cur *tally
}

type tally struct {
	want        int64
	count       atomic.Int64
	first, last time.Time
	done        chan struct{}
}

func newCountingReceiver(b *testing.B) *countingReceiver {
	r := &countingReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusNoContent)
		r.mu.Lock()
		defer r.mu.Unlock()
		t := r.cur
		if t == nil {
			return
		}
		now := time.Now()
		switch c := t.count.Add(1); {
		case c == 1:
			t.first = now
		case c == t.want:
			t.last = now
			close(t.done)
		}
	}))
	b.Cleanup(r.Close)
	return r
}

// arm starts counting a measurement of want requests.
func (r *countingReceiver) arm(want int) *tally {
	t := &tally{want: int64(want), done: make(chan struct{})}
	r.mu.Lock()
	r.cur = t
	r.mu.Unlock()
	return t
}

// bareWebhook is the bare pull-and-POST loop of roleBareWebhook.
func bareWebhook(ctx context.Context) error {
	var cfg jetstream.ConsumerConfig
	if err := json.Unmarshal([]byte(os.Getenv(bareDurableEnv)), &cfg); err != nil {
		return fmt.Errorf("%s: %w", bareDurableEnv, err)
	}
	var concurrency int
	fmt.Sscan(os.Getenv(bareConcurrencyEnv), &concurrency)
	url := os.Getenv("WEBHOOK_URL")
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.Events, cfg)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 128
	client := &http.Client{Transport: tr}
	work := make(chan jetstream.Msg)
	for range concurrency {
		go func() {
			for m := range work {
				resp, err := client.Post(url, "application/json", bytes.NewReader(m.Data()))
				if err != nil {
					m.Nak()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					m.Ack()
				} else {
					m.Nak()
				}
			}
		}()
	}
	// Pulls as many at a time as the consumer runtime's window holds (four
	// events per worker): the ceiling fetches no worse than ours.
	cc, err := cons.Consume(func(m jetstream.Msg) { work <- m }, jetstream.PullMaxMessages(4*concurrency))
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Stop()
	nc.Close()
	return nil
}
