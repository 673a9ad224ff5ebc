package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
)

// Issue 18.1: ingest measured as users run it. The eventmesh binary runs
// as its own process with its defaults except NATS_SYNC=2m (archiver on,
// and off; the console on too, on a free port, as every listener: another
// eventmesh on this machine may hold the default 127.0.0.1:8088), beside ceiling processes doing the same unavoidable work (this
// test binary started again in a role, ceiling_test.go): a bare net/http
// handler, the minimal reply-after-ack process, and that process plus a
// bare batched insert loop into SQLite. The load generator (this process)
// posts about 1 KB Connector events from 64 keep-alive clients to each in
// turn; every round measures each process once, the order rotating, and
// the figures are medians over the rounds with ratios of the medians.
//
//	go test ./cmd/internal/bench -run '^$' -bench ProcessIngest -benchtime 3x
//
// EVENTMESH_BENCH_EVENTS sets the events per measurement (default 20,000);
// EVENTMESH_BENCH_PARTIES (comma-separated keys, e.g.
// eventmesh,eventmesh_no_memory_limit) measures some parties only.
// EVENTMESH_BENCH_BEFORE names another source checkout of the module (a
// git worktree of the code before a change): its eventmesh, built there,
// is measured too as eventmesh_before (archiver on) and
// eventmesh_before_archiver_off, for before and after in one run.
func BenchmarkProcessIngest(b *testing.B) {
	n := benchEvents(20_000)
	dir := b.TempDir()
	bins, err := harness.Build(filepath.Join(dir, "bin"), "eventmesh")
	if err != nil {
		b.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	before := os.Getenv("EVENTMESH_BENCH_BEFORE")
	if before != "" {
		old, err := harness.BuildFrom(before, filepath.Join(dir, "bin-before"), "eventmesh")
		if err != nil {
			b.Fatal(err)
		}
		bins["eventmesh_before"] = old["eventmesh"]
	}
	eventmeshBin := func(bin string, extra ...string) starter {
		return func(round int, ingest string) (*harness.Process, error) {
			addrs, err := freeAddrs(3)
			if err != nil {
				return nil, err
			}
			env := append([]string{"NATS_LISTEN=" + addrs[0], "ARCHIVE_ADDR=" + addrs[1], "CONSOLE_ADDR=" + addrs[2], "INGEST_ADDR=" + ingest,
				"DATA_DIR=" + filepath.Join(dir, fmt.Sprintf("data-%d-%s", round, ingest)), "NATS_SYNC=2m", "LOG_LEVEL=warn"}, extra...)
			return harness.NewProcess(bin, bins[bin], ingest, env...), nil
		}
	}
	eventmesh := func(extra ...string) starter { return eventmeshBin("eventmesh", extra...) }
	role := func(name string) starter {
		return func(round int, addr string) (*harness.Process, error) {
			return harness.NewProcess(name, self, addr, roleEnv+"="+name, roleAddrEnv+"="+addr,
				roleDirEnv+"="+filepath.Join(dir, fmt.Sprintf("%s-%d", name, round))), nil
		}
	}
	targets := []struct {
		key   string
		start starter
	}{
		{"bare_http", role(roleBareHTTP)},
		{"minimal", role(roleMinimal)},
		{"minimal_sqlite", role(roleMinimalSQLite)},
		{"eventmesh_archiver_off", eventmesh("ARCHIVE_ENABLED=false")},
		{"eventmesh", eventmesh()},
		{"eventmesh_no_memory_limit", eventmesh("GOMEMLIMIT=off")},
	}
	if before != "" {
		targets = append(targets, []struct {
			key   string
			start starter
		}{
			{"eventmesh_before_archiver_off", eventmeshBin("eventmesh_before", "ARCHIVE_ENABLED=false")},
			{"eventmesh_before", eventmeshBin("eventmesh_before")},
		}...)
	}
	if only := os.Getenv("EVENTMESH_BENCH_PARTIES"); only != "" {
		targets = slices.DeleteFunc(targets, func(t struct {
			key   string
			start starter
		}) bool {
			return !slices.Contains(strings.Split(only, ","), t.key)
		})
	}
	rates, cpus := map[string][]float64{}, map[string][]float64{}
	b.ResetTimer()
	for round := range b.N {
		for k := range targets {
			t := targets[(k+round)%len(targets)]
			rate, cpu, err := ingestRate(t.start, round, n)
			if err != nil {
				b.Fatalf("%s: %v", t.key, err)
			}
			rates[t.key], cpus[t.key] = append(rates[t.key], rate), append(cpus[t.key], cpu)
		}
	}
	b.StopTimer()
	med := map[string]float64{}
	for _, t := range targets {
		med[t.key] = median(rates[t.key])
		b.ReportMetric(med[t.key], t.key+"-req/s")
		b.ReportMetric(median(cpus[t.key]), t.key+"-cpu-µs/event")
		b.Logf("%-29s %v req/s, median %.0f; CPU %v µs/event, median %.0f", t.key, rounded(rates[t.key]), med[t.key],
			rounded(cpus[t.key]), median(cpus[t.key]))
	}
	for _, r := range []struct{ name, of, to string }{
		{"archiver-off÷minimal", "eventmesh_archiver_off", "minimal"},
		{"archiver-on÷minimal+sqlite", "eventmesh", "minimal_sqlite"},
		{"archiver-on÷archiver-off", "eventmesh", "eventmesh_archiver_off"},
		{"archiver-off÷bare", "eventmesh_archiver_off", "bare_http"},
		{"archiver-on÷bare", "eventmesh", "bare_http"},
		{"minimal÷bare", "minimal", "bare_http"},
		{"memory-limit÷none", "eventmesh", "eventmesh_no_memory_limit"},
		{"before:archiver-on÷archiver-off", "eventmesh_before", "eventmesh_before_archiver_off"},
		{"before:archiver-on÷minimal+sqlite", "eventmesh_before", "minimal_sqlite"},
		{"archiver-on:after÷before", "eventmesh", "eventmesh_before"},
	} {
		if med[r.of] > 0 && med[r.to] > 0 { // both measured
			b.ReportMetric(med[r.of]/med[r.to], r.name)
		}
	}
}

// starter returns the process of one measurement, not started, serving
// ingest (POST /events, GET /readyz) on addr.
type starter func(round int, addr string) (*harness.Process, error)

// ingestRate starts the process of start, posts n events to it from 64
// keep-alive clients flat out, and returns the events accepted per second
// and the process's CPU time per event when the last was answered (its
// whole life so far, start-up included; what the archiver has not caught
// up with by then is not in it): steadier than the rate on a machine
// whose load changes.
func ingestRate(start starter, round, n int) (rate, cpuPerEvent float64, err error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return 0, 0, err
	}
	p, err := start(round, addr)
	if err != nil {
		return 0, 0, err
	}
	p.ReadyTimeout = time.Minute
	if err := p.Start(); err != nil {
		return 0, 0, err
	}
	defer p.Stop(30 * time.Second)
	run := fmt.Sprintf("proc%d", time.Now().UnixNano())
	g := &harness.LoadGen{URL: "http://" + addr, Events: n, Clients: clients, MaxAttempts: 1,
		Event: func(i int) harness.Event { return harness.MessageReceived(run, i, 0) }}
	g.Start(context.Background())
	st := g.Wait()
	if st.Accepted != n {
		return 0, 0, fmt.Errorf("%d of %d events accepted: %v %v\n%s", st.Accepted, n, st.Status, st.Errors, p.Tail(20))
	}
	cpu, err := p.CPUTime()
	if err != nil {
		return 0, 0, err
	}
	return st.Rate(), float64(cpu.Microseconds()) / float64(n), nil
}

// benchEvents is EVENTMESH_BENCH_EVENTS, else def.
func benchEvents(def int) int {
	if v, err := strconv.Atoi(os.Getenv("EVENTMESH_BENCH_EVENTS")); err == nil && v > 0 {
		return v
	}
	return def
}

func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		var err error
		if addrs[i], err = harness.FreeAddr(); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

func rounded(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x + 0.5)
	}
	return out
}
