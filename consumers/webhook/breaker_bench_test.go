package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/prometheus/client_golang/prometheus"
)

// The circuit breaker's benchmarks (issue 12.1): the webhook consumer with
// its defaults (parsed from the environment as the binary does, on the
// NATS_SYNC=2m server of the other benchmarks) against a receiver that
// fails some requests at random, and against one that is down. Run them
// with
//
//	go test ./consumers/webhook -run '^$' -bench 'Flaky|Down' -benchtime 1x

const (
	flakyBacklog = 300_000         // events waiting when the consumer starts (an idle machine drains 150,000 within the warm-up and the span)
	flakyWarmUp  = time.Second     // from the first delivery to the span measured
	flakySpan    = 8 * time.Second // the span goodput is measured over
)

// randomReceiver answers 500 to a share of the requests at random (all of
// them while down), 204 to the rest, and counts requests and the distinct
// events delivered.
type randomReceiver struct {
	*httptest.Server
	failRatio atomic.Uint64 // math.Float64bits
	requests  atomic.Int64
	delivered atomic.Int64 // distinct events
	first     atomic.Int64 // unix nanoseconds of the first delivery
	mu        sync.Mutex
	seen      map[string]bool
}

func newRandomReceiver(b *testing.B, failRatio float64) *randomReceiver {
	r := &randomReceiver{seen: map[string]bool{}}
	r.failRatio.Store(uint64(failRatio * 1e6))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		io.Copy(io.Discard, req.Body)
		if rand.Float64()*1e6 < float64(r.failRatio.Load()) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		id := req.Header.Get(webhook.HeaderID)
		r.mu.Lock()
		fresh := !r.seen[id]
		r.seen[id] = true
		r.mu.Unlock()
		if fresh {
			r.first.CompareAndSwap(0, time.Now().UnixNano())
			r.delivered.Add(1)
		}
	}))
	b.Cleanup(r.Close)
	return r
}

// pauseCounter counts the breaker's "open: not fetching" log lines, one a
// cool-down, passing every record on.
type pauseCounter struct {
	slog.Handler
	pauses *atomic.Int64
}

func (h pauseCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "circuit breaker open: not fetching" {
		h.pauses.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h pauseCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return pauseCounter{h.Handler.WithAttrs(as), h.pauses}
}

func (h pauseCounter) WithGroup(name string) slog.Handler {
	return pauseCounter{h.Handler.WithGroup(name), h.pauses}
}

// runDefault runs a webhook consumer for url on the durable name, starting
// at "all", with the defaults except vars, and returns how often its
// breaker paused and a stop function.
func (e *benchEnv) runDefault(b *testing.B, url, name string, vars map[string]string) (pauses *atomic.Int64, stop func()) {
	all := map[string]string{"WEBHOOK_URL": url, "WEBHOOK_SECRET": benchSecret, "WEBHOOK_DURABLE": name, "WEBHOOK_START": "all"}
	for k, v := range vars {
		all[k] = v
	}
	c, err := env.ParseAsWithOptions[webhook.ConsumerConfig](env.Options{Environment: all})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	pauses = new(atomic.Int64)
	rt, err := webhook.New(e.js, benchSubjects, c, consumers.NewMetrics(prometheus.NewRegistry()),
		slog.New(pauseCounter{e.log.Handler(), pauses}))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	return pauses, func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime %s: %v", name, err)
		}
		e.deleteDurables(b, name)
	}
}

// goodput runs a consumer with vars against a receiver failing failRatio
// of the requests and returns the distinct events delivered per second
// over flakySpan, flakyWarmUp after the first delivery, the requests per
// second over the same span, and the breaker's pauses until its end.
func (e *benchEnv) goodput(b *testing.B, failRatio float64, vars map[string]string) (rate, attempts, cpuPerAttempt float64, pauses int64) {
	recv := newRandomReceiver(b, failRatio)
	p, stop := e.runDefault(b, recv.URL+"/hooks", fmt.Sprintf("flaky-%d", benchRound.Add(1)), vars)
	defer stop()
	deadline := time.Now().Add(time.Minute)
	for recv.first.Load() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("nothing delivered within a minute")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Until(time.Unix(0, recv.first.Load()).Add(flakyWarmUp)))
	stopProfile := spanProfile(b, failRatio)
	from, reqs, cpu := recv.delivered.Load(), recv.requests.Load(), processCPU()
	time.Sleep(flakySpan)
	to, reqs, cpu := recv.delivered.Load(), recv.requests.Load()-reqs, processCPU()-cpu
	stopProfile()
	if to >= flakyBacklog {
		b.Fatalf("the backlog of %d ran out within the span: raise flakyBacklog", flakyBacklog)
	}
	return float64(to-from) / flakySpan.Seconds(), float64(reqs) / flakySpan.Seconds(),
		float64(cpu.Microseconds()) / float64(reqs), p.Load()
}

// backlog publishes n events with ids of kind and waits for their acks.
func (e *benchEnv) backlog(b *testing.B, kind string, n int) {
	r := benchRound.Add(1)
	events := make([]router.Event, n)
	for i := range events {
		events[i] = benchEvent(fmt.Sprintf("%s-%d-%06d", kind, r, i))
	}
	e.publishAll(b, events)
}

// BenchmarkFlakyReceiver: a receiver answering 500 to 30 % of the requests
// at random, against the same receiver failing none, with the defaults
// except WEBHOOK_BACKOFF=1s and WEBHOOK_MAX_ACK_PENDING=10000 (a retry
// waiting out its delay holds an ack-pending slot). Goodput is distinct
// events delivered per second while a backlog of 60,000 drains, measured
// over 8 s after a 1 s warm-up; the breaker must not pause.
func BenchmarkFlakyReceiver(b *testing.B) {
	e := newBenchEnv(b)
	e.backlog(b, "flaky", flakyBacklog)
	vars := map[string]string{"WEBHOOK_BACKOFF": "1s", "WEBHOOK_MAX_ACK_PENDING": "10000"}
	var clean, flaky, cleanReqs, flakyReqs, cleanCPU, flakyCPU []float64
	var pauses int64
	b.ResetTimer()
	for range b.N {
		rate, reqs, cpu, _ := e.goodput(b, 0, vars)
		clean, cleanReqs, cleanCPU = append(clean, rate), append(cleanReqs, reqs), append(cleanCPU, cpu)
		rate, reqs, cpu, p := e.goodput(b, 0.3, vars)
		flaky, flakyReqs, flakyCPU = append(flaky, rate), append(flakyReqs, reqs), append(flakyCPU, cpu)
		pauses += p
	}
	b.StopTimer()
	b.ReportMetric(median(clean), "clean-events/s")
	b.ReportMetric(median(flaky), "flaky-events/s")
	b.ReportMetric(median(flaky)/median(clean), "ratio")
	b.ReportMetric(median(flakyReqs)/median(cleanReqs), "attempt-ratio")
	b.ReportMetric(median(cleanCPU), "clean-cpu-µs/attempt")
	b.ReportMetric(median(flakyCPU), "flaky-cpu-µs/attempt")
	b.ReportMetric(float64(pauses), "breaker-pauses")
	if pauses > 0 {
		b.Errorf("the breaker paused %d times against a receiver failing 30 %% at random", pauses)
	}
}

// BenchmarkDownReceiver: a receiver answering 500 to every request, with a
// backlog of 5,000 events, with the defaults except a cool-down of 2 s
// (30 s by default: the span would take minutes); and the same with the
// breaker off (WEBHOOK_BREAKER_THRESHOLD=0). Reported: the attempts until
// the breaker opened, and attempts per second at the receiver over the
// 20 s after it did (with the breaker off: after the first 20).
func BenchmarkDownReceiver(b *testing.B) {
	const backlog, span = 5_000, 20 * time.Second
	e := newBenchEnv(b)
	e.backlog(b, "down", backlog)
	attempts := func(vars map[string]string, breaker bool) (before int64, rate float64) {
		recv := newRandomReceiver(b, 1)
		pauses, stop := e.runDefault(b, recv.URL+"/hooks", fmt.Sprintf("down-%d", benchRound.Add(1)), vars)
		defer stop()
		deadline := time.Now().Add(time.Minute)
		for (breaker && pauses.Load() == 0) || (!breaker && recv.requests.Load() < 20) {
			if time.Now().After(deadline) {
				b.Fatalf("breaker %v: not open within a minute, %d requests", breaker, recv.requests.Load())
			}
			time.Sleep(time.Millisecond)
		}
		before = recv.requests.Load()
		time.Sleep(span)
		return before, float64(recv.requests.Load()-before) / span.Seconds()
	}
	var opened int64
	var withBreaker, without float64
	b.ResetTimer()
	for range b.N {
		opened, withBreaker = attempts(map[string]string{"WEBHOOK_BREAKER_COOLDOWN": "2s"}, true)
		_, without = attempts(map[string]string{"WEBHOOK_BREAKER_THRESHOLD": "0"}, false)
	}
	b.StopTimer()
	b.ReportMetric(float64(opened), "attempts-to-open")
	b.ReportMetric(withBreaker, "open-attempts/s")
	b.ReportMetric(without, "no-breaker-attempts/s")
}

// processCPU is the CPU time (user and system) this process has used: the
// consumer's, the embedded server's and the receiver's together.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// spanProfile starts a CPU profile of the span measured when
// EVENTMESH_BENCH_PROFILE_DIR names a directory (one file per span,
// flaky-<failure ratio>-<round>.prof; -cpuprofile would mix in the
// backlog's publishing), and returns what stops it.
func spanProfile(b *testing.B, failRatio float64) (stop func()) {
	dir := os.Getenv("EVENTMESH_BENCH_PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("flaky-%.1f-%d.prof", failRatio, benchRound.Add(1))))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("span profile (is -cpuprofile on as well?): %v", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
