package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/archiving"
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/jackc/pgx/v5"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const benchUsage = `eventmesh bench [--sync 2m|always] [--runs 3] [--events N] [--postgres DSN] [--json] [--no-rss] [--only GROUPS] [--cpuprofile FILE]

Measures the mesh on this machine, in this process, against an embedded NATS
server (a fresh store in a temporary directory for every figure), and prints
each figure's median of --runs runs beside its ceiling measured in the same
runs: the same work done by the bare tools (raw JetStream, a bare net/http
handler, a bare insert loop), on the same machine, at the same time.

The peak-RSS lines build cmd/producer, cmd/webhook, cmd/archiver and
cmd/autoaccept with 'go build', so they need a source checkout of the module
(run the command from inside it) and a Go toolchain; elsewhere they are
skipped with a note. --no-rss skips them.

Results and how to read them: BENCHMARKS.md.

Flags:`

// What every figure shares.
const (
	benchClients     = 64 // keep-alive HTTP clients of every HTTP load
	benchSteadyRate  = 1000
	benchLatencyMax  = 3000 // events of the latency figure: 3 s at 1,000/s
	benchRSSMax      = 5000 // events of the RSS figure: 5 s at 1,000/s
	benchBatch       = 256  // the bare insert loop's batch (ARCHIVE_BATCH_SIZE's default)
	benchMsgNS       = "transport.messageReceived"
	benchRelNS       = "transport.relationshipChanged"
	benchConnKey     = "bench-connector-api-key"
	benchOwnAddress  = "did:e:localhost:dids:0a0b0c0d0e0f1011121314"
	benchPeerAddress = "did:e:localhost:dids:f0e1d2c3b4a5968778695a"
)

// benchSecret signs the webhooks: receivers in production verify signatures,
// so every request is signed here too.
var benchSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("eventmesh-bench-secret-32-bytes!"))

// benchSpec is one row of the table.
type benchSpec struct {
	key, name, unit string
	group           string
	ceiling         string  // key of the row this one is compared with
	want            float64 // the target: a ratio at least want, or (atMost) a median at most want
	atMost          bool
	policy          string // the NATS_SYNC class the target is set for: "interval" (2m) or "always"
}

// benchSpecs are the rows, in table order.
var benchSpecs = []benchSpec{
	{key: "raw_publish", group: "stream", unit: "msg/s", name: "raw JetStream async publish, 1 KB events, flat out (stream ceiling)"},
	{key: "raw_publish_64", group: "stream", unit: "msg/s", name: "raw JetStream async publish, 64 in flight, each awaiting its ack (ingest's concurrency)"},
	{key: "raw_consume", group: "stream", unit: "msg/s", name: "raw durable consume+ack of the same messages (stream ceiling)"},
	{key: "bare_http", group: "http", unit: "req/s", name: "bare HTTP handler that drains the body, 64 keep-alive clients (ingest ceiling)"},
	{key: "bare_relay", group: "http", unit: "req/s", name: "bare two-hop HTTP relay, 64 keep-alive clients (ingest→webhook ceiling)"},
	{key: "ingest", group: "ingest", unit: "req/s", ceiling: "bare_http", want: 0.7, policy: "interval",
		name: "ingest → stream, 64 clients, each answered after the JetStream ack"},
	{key: "ingest_vs_raw", group: "ingest", unit: "req/s", ceiling: "raw_publish", want: 0.9, policy: "always",
		name: "ingest → stream, against the stream's ceiling"},
	{key: "ingest_vs_raw64", group: "ingest", unit: "req/s", ceiling: "raw_publish_64",
		name: "ingest → stream, against raw publish with 64 in flight"},
	{key: "e2e", group: "webhook", unit: "events/s", ceiling: "bare_relay", want: 0.5, policy: "interval",
		name: "ingest → webhook receiver, end to end, 64 clients"},
	{key: "latency_p50", group: "webhook", unit: "ms", name: "ingest → receiver latency at a steady 1,000 events/s: p50"},
	{key: "latency_p99", group: "webhook", unit: "ms", want: 10, atMost: true, policy: "interval",
		name: "ingest → receiver latency at a steady 1,000 events/s: p99"},
	{key: "latency_p999", group: "webhook", unit: "ms", name: "ingest → receiver latency at a steady 1,000 events/s: p99.9"},
	{key: "fanout_raw", group: "fanout", unit: "events/s", name: "3 raw durables consume+ack one backlog together, slowest (fan-out ceiling)"},
	{key: "fanout", group: "fanout", unit: "events/s", ceiling: "fanout_raw",
		name: "fan-out: webhook + archiver + autoaccept on one backlog together, slowest"},
	{key: "fanout_webhook", group: "fanout", unit: "events/s", ceiling: "fanout_raw", name: "fan-out, its webhook consumer"},
	{key: "fanout_archiver", group: "fanout", unit: "events/s", ceiling: "fanout_raw", name: "fan-out, its archiver (SQLite)"},
	{key: "fanout_autoaccept", group: "fanout", unit: "events/s", ceiling: "fanout_raw", name: "fan-out, its autoaccept consumer"},
	{key: "archive_bare_sqlite", group: "archive", unit: "events/s", name: "bare batched insert loop (InsertEvents, 256 a transaction), SQLite"},
	{key: "archive_sqlite", group: "archive", unit: "events/s", ceiling: "archive_bare_sqlite", name: "archive writes: archiver → SQLite"},
	{key: "archive_bare_pg", group: "archive", unit: "events/s", name: "bare batched insert loop (InsertEvents, 256 a transaction), PostgreSQL"},
	{key: "archive_pg", group: "archive", unit: "events/s", ceiling: "archive_bare_pg", name: "archive writes: archiver → PostgreSQL"},
	{key: "rss_producer", group: "rss", unit: "MB", name: "peak RSS (VmHWM) at a steady 1,000 events/s: producer"},
	{key: "rss_webhook", group: "rss", unit: "MB", want: 30, atMost: true, policy: "interval", name: "peak RSS (VmHWM) at a steady 1,000 events/s: webhook"},
	{key: "rss_archiver", group: "rss", unit: "MB", want: 30, atMost: true, policy: "interval", name: "peak RSS (VmHWM) at a steady 1,000 events/s: archiver"},
	{key: "rss_autoaccept", group: "rss", unit: "MB", want: 30, atMost: true, policy: "interval", name: "peak RSS (VmHWM) at a steady 1,000 events/s: autoaccept"},
}

// benchGroups are the groups of rows, each measured together.
var benchGroups = []string{"stream", "http", "ingest", "webhook", "fanout", "archive", "rss"}

// benchFigure is a row's results (the JSON output's figures).
type benchFigure struct {
	Key     string    `json:"key"`
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`
	Values  []float64 `json:"values"` // one per run that measured it
	Median  float64   `json:"median"`
	Ceiling string    `json:"ceiling,omitempty"`
	Ratio   float64   `json:"ratio,omitempty"`
	Target  string    `json:"target,omitempty"`
	Met     *bool     `json:"met,omitempty"`
	Note    string    `json:"note,omitempty"` // why it was skipped, or what failed
	spec    benchSpec
}

type benchOptions struct {
	sync       string
	runs       int
	events     int
	postgres   string
	json       bool
	noRSS      bool
	cpuProfile string
	only       map[string]bool // groups to run; nil: all
}

type bencher struct {
	opt     benchOptions
	always  bool
	log     *slog.Logger
	stderr  io.Writer
	environ []string
	tmp     string
	figs    map[string]*benchFigure
	pcfg    producing.Config
	subj    router.Subjects
	seq     atomic.Int64 // distinct event ids across runs
	bins    string       // the built binaries, "" when the RSS figure is skipped
	stalls  []benchStall
	run     int // the run in progress, from 0
	failed  bool
}

// benchReport is the --json output.
type benchReport struct {
	Command  string            `json:"command"`
	Machine  map[string]any    `json:"machine"`
	Versions map[string]string `json:"versions"`
	Sync     string            `json:"sync"`
	Runs     int               `json:"runs"`
	Events   int               `json:"events"`
	Figures  []*benchFigure    `json:"figures"`
	Stalls   []benchStall      `json:"stalls"`
}

// runBench is `eventmesh bench`.
func runBench(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eventmesh bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o benchOptions
	fs.StringVar(&o.sync, "sync", "2m", "NATS_SYNC of the embedded server: always, or a flush interval such as 2m")
	fs.IntVar(&o.runs, "runs", 3, "runs of every figure; the table shows medians")
	fs.IntVar(&o.events, "events", 20000, "events per figure and run (the latency figure takes at most 3,000, the RSS figure 5,000)")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL DSN (postgres://…) for the archive rows on PostgreSQL; each round uses fresh schemas, dropped afterwards")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of the table")
	fs.BoolVar(&o.noRSS, "no-rss", false, "skip the peak-RSS rows (which build and run the binaries)")
	only := fs.String("only", "", "run only these groups of rows, comma-separated: "+strings.Join(benchGroups, ",")+" (to profile one)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to FILE; samples carry the label figure=<group> (go tool pprof -tagfocus)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, benchUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	always, _, err := embedded.Config{Sync: o.sync}.SyncPolicy()
	var badGroup string
	if *only != "" {
		o.only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			if g = strings.TrimSpace(g); !slices.Contains(benchGroups, g) {
				badGroup = g
			}
			o.only[g] = true
		}
	}
	switch {
	case badGroup != "":
		fmt.Fprintf(stderr, "eventmesh bench: --only: no group %q (want %s)\n", badGroup, strings.Join(benchGroups, ", "))
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "eventmesh bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "eventmesh bench: --sync:", strings.TrimPrefix(err.Error(), "NATS_SYNC "))
		return 2
	case o.runs < 1:
		fmt.Fprintln(stderr, "eventmesh bench: --runs must be at least 1")
		return 2
	case o.events < 100:
		fmt.Fprintln(stderr, "eventmesh bench: --events must be at least 100")
		return 2
	case o.postgres != "" && !strings.HasPrefix(o.postgres, "postgres://") && !strings.HasPrefix(o.postgres, "postgresql://"):
		fmt.Fprintln(stderr, "eventmesh bench: --postgres: want a postgres:// or postgresql:// DSN")
		return 2
	}
	ctx, stop := app.SignalContext(ctx)
	defer stop()

	b := &bencher{opt: o, always: always, stderr: stderr, environ: environ, figs: map[string]*benchFigure{},
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, s := range benchSpecs {
		b.figs[s.key] = &benchFigure{Key: s.key, Name: s.name, Unit: s.unit, Ceiling: s.ceiling, spec: s}
	}
	if b.pcfg, err = app.Load[producing.Config]([]string{"INGEST_ADDR=127.0.0.1:0", "STREAM_MAX_BYTES=4GiB"}); err != nil {
		fmt.Fprintln(stderr, "eventmesh bench:", err)
		return 1
	}
	b.subj, _ = b.pcfg.Prefix.Subjects()
	if b.tmp, err = os.MkdirTemp("", "eventmesh-bench-"); err != nil {
		fmt.Fprintln(stderr, "eventmesh bench:", err)
		return 1
	}
	defer os.RemoveAll(b.tmp)

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "eventmesh bench: --cpuprofile:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			fmt.Fprintln(stderr, "eventmesh bench: --cpuprofile:", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	load := benchLoadAvg()
	for _, f := range b.figs {
		if o.only != nil && !o.only[f.spec.group] {
			f.Note = "skipped (--only)"
		}
	}
	if o.postgres == "" {
		b.skip("archive_bare_pg", "skipped: no --postgres DSN")
		b.skip("archive_pg", "skipped: no --postgres DSN")
	}
	rssNote := ""
	switch {
	case o.noRSS:
		rssNote = "skipped (--no-rss)"
	case o.only != nil && !o.only["rss"]:
	default:
		if err := b.buildBinaries(ctx); err != nil {
			rssNote = "skipped: " + err.Error()
		}
	}
	if rssNote != "" {
		for _, k := range []string{"rss_producer", "rss_webhook", "rss_archiver", "rss_autoaccept"} {
			b.skip(k, rssNote)
		}
	}

	groups := []struct {
		name string
		f    func(context.Context, int) error
	}{
		{"stream", b.benchStream}, {"http", b.benchHTTP}, {"ingest", b.benchIngest}, {"webhook", b.benchWebhook},
		{"fanout", b.benchFanout}, {"archive", b.benchArchive}, {"rss", b.benchRSS},
	}
	start := time.Now()
	for run := 0; run < o.runs && ctx.Err() == nil; run++ {
		fmt.Fprintf(stderr, "run %d/%d\n", run+1, o.runs)
		b.run = run
		for _, g := range groups {
			if ctx.Err() != nil {
				break
			}
			if o.only != nil && !o.only[g.name] {
				continue
			}
			var err error
			pprof.Do(ctx, pprof.Labels("figure", g.name), func(ctx context.Context) { err = g.f(ctx, run) })
			if err != nil {
				b.failed = true
				fmt.Fprintf(stderr, "run %d/%d %s: %v\n", run+1, o.runs, g.name, err)
				for _, f := range b.figs {
					if f.spec.group == g.name && !strings.HasPrefix(f.Note, "skipped") {
						f.Note = fmt.Sprintf("run %d failed: %v", run+1, err)
					}
				}
			}
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "eventmesh bench: interrupted; the table holds the runs so far")
		b.failed = true
	}
	b.finish()
	fmt.Fprintf(stderr, "bench took %s\n", time.Since(start).Round(time.Second))

	rep := b.report(load)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		b.writeTable(stdout, rep)
	}
	if b.failed {
		return 1
	}
	return 0
}

func (b *bencher) skip(key, note string) { b.figs[key].Note = note }

func (b *bencher) add(key string, v float64) {
	f := b.figs[key]
	f.Values = append(f.Values, v)
	fmt.Fprintf(b.stderr, "  %-20s %s\n", key, benchFormat(v, f.Unit))
}

// events is the number of events per figure.
func (b *bencher) events() int { return b.opt.events }

// timeout bounds every wait of a figure: generous, so that only a stall
// fails a run.
func (b *bencher) timeout() time.Duration {
	return 2*time.Minute + time.Duration(b.opt.events)*5*time.Millisecond
}

// base returns the first number of a fresh range of event ids.
func (b *bencher) base() int64 { return b.seq.Add(1) * 10_000_000 }

// finish computes medians, ratios and targets.
func (b *bencher) finish() {
	for _, s := range benchSpecs {
		f := b.figs[s.key]
		if len(f.Values) > 0 {
			f.Median = benchMedian(f.Values)
		}
	}
	for _, s := range benchSpecs {
		f := b.figs[s.key]
		if s.ceiling != "" && len(f.Values) > 0 {
			if c := b.figs[s.ceiling]; c.Median > 0 {
				f.Ratio = f.Median / c.Median
			}
		}
		if s.want == 0 {
			continue
		}
		applies := (s.policy == "always") == b.always
		if s.atMost {
			f.Target = fmt.Sprintf("≤ %g %s", s.want, s.unit)
		} else {
			f.Target = fmt.Sprintf("≥ %.1f", s.want)
		}
		if !applies {
			if s.policy == "always" {
				f.Target += " with always"
			} else {
				f.Target += " at 2m"
			}
			continue
		}
		if len(f.Values) == 0 || (!s.atMost && f.Ratio == 0) {
			continue
		}
		met := f.Ratio >= s.want
		if s.atMost {
			met = f.Median <= s.want
		}
		f.Met = &met
	}
}

// ---------------------------------------------------------------------------
// The figures.

// benchStream: raw async publishes of n events flat out (a deep window),
// then one raw durable that consumes and acks them all.
func (b *bencher) benchStream(ctx context.Context, run int) error {
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	if err := b.ensureStream(ctx, env.js); err != nil {
		return err
	}
	base, now := b.base(), time.Now()
	rate, seqs, err := benchPublish(ctx, env.js, b.subj, b.events(), func(i int) router.Event {
		return router.Event{ID: "raw" + strconv.FormatInt(base+int64(i), 10), Namespace: benchMsgNS, Source: router.DefaultSource,
			Time: now, Origin: router.OriginWebhook, Data: benchMessage(base + int64(i))}
	})
	if err != nil {
		return err
	}
	b.add("raw_publish", rate)
	rates, err := b.rawConsume(ctx, env.js, "stream", []string{"bench-raw"}, b.events(), seqs[len(seqs)-1])
	if err != nil {
		return err
	}
	b.add("raw_consume", rates[0])
	// As many in flight as ingest has clients: each publisher waits for
	// its ack before the next, as an ingest request does.
	base = b.base()
	c, err := benchRaw64(ctx, env.js, b.events(), func(i int) *nats.Msg {
		return router.Event{ID: "raw" + strconv.FormatInt(base+int64(i), 10), Namespace: benchMsgNS, Source: router.DefaultSource,
			Time: now, Origin: router.OriginWebhook, Data: benchMessage(base + int64(i))}.Msg(b.subj)
	})
	if err != nil {
		return err
	}
	b.add("raw_publish_64", c)
	return nil
}

// benchRaw64 publishes n messages from 64 goroutines, each waiting for
// its publish's ack before the next, and returns messages per second.
func benchRaw64(ctx context.Context, js jetstream.JetStream, n int, msg func(i int) *nats.Msg) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f, err := js.PublishMsgAsync(msg(i))
				if err == nil {
					select {
					case <-f.Ok():
					case err = <-f.Err():
					case <-ctx.Done():
						err = ctx.Err()
					}
				}
				if err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), first
}

// benchHTTP: the two HTTP ceilings under the load of the ingest figures.
func (b *bencher) benchHTTP(ctx context.Context, run int) error {
	bare, err := app.Listen("bench bare handler", "127.0.0.1:0", http.HandlerFunc(benchBareHandler), b.log)
	if err != nil {
		return err
	}
	defer bare.Shutdown(5 * time.Second)
	hop2, err := app.Listen("bench second hop", "127.0.0.1:0", http.HandlerFunc(benchNoContent), b.log)
	if err != nil {
		return err
	}
	defer hop2.Shutdown(5 * time.Second)
	// The relay's client has the webhook sender's transport settings.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 128
	relayClient := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer relayClient.CloseIdleConnections()
	hop2URL := "http://" + hop2.Addr() + "/hooks"
	relay, err := app.Listen("bench relay", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, hop2URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := relayClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			http.Error(w, resp.Status, http.StatusBadGateway)
			return
		}
		benchBareHandler(w, r)
	}), b.log)
	if err != nil {
		return err
	}
	defer relay.Shutdown(5 * time.Second)

	base := b.base()
	rate, err := benchLoad(ctx, "http://"+bare.Addr()+"/events", b.events(), func(i int) []byte { return benchBody(benchMsgNS, benchMessage(base+int64(i))) })
	if err != nil {
		return fmt.Errorf("bare handler: %w", err)
	}
	b.add("bare_http", rate)
	rate, err = benchLoad(ctx, "http://"+relay.Addr()+"/events", b.events(), func(i int) []byte { return benchBody(benchMsgNS, benchMessage(base+int64(i))) })
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	b.add("bare_relay", rate)
	return nil
}

// benchIngest: the producer as eventmesh wires it (producing.Start) under
// the load of the bare handler.
func (b *bencher) benchIngest(ctx context.Context, run int) error {
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	prod, err := producing.Start(ctx, b.pcfg, env.nc, app.NewRegistry(), b.log)
	if err != nil {
		return err
	}
	defer prod.Shutdown()
	base := b.base()
	rate, err := benchLoad(ctx, "http://"+prod.HTTP.Addr()+"/events", b.events(), func(i int) []byte { return benchBody(benchMsgNS, benchMessage(base+int64(i))) })
	if err != nil {
		return err
	}
	b.add("ingest", rate)
	// The same rate, compared with two more ceilings.
	b.figs["ingest_vs_raw"].Values = append(b.figs["ingest_vs_raw"].Values, rate)
	b.figs["ingest_vs_raw64"].Values = append(b.figs["ingest_vs_raw64"].Values, rate)
	return nil
}

// benchWebhook: the producer and the webhook consumer in one process, as
// eventmesh runs them; first flat out (the rate until the receiver has
// every event), then at a steady 1,000 events/s (the latency from handing
// the request to the HTTP client to its delivery reaching the receiver).
func (b *bencher) benchWebhook(ctx context.Context, run int) error {
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	recv, err := newBenchReceiver(b.log)
	if err != nil {
		return err
	}
	defer recv.srv.Shutdown(5 * time.Second)
	wcfg, err := b.webhookConfig(recv.url+"/hooks", "new")
	if err != nil {
		return err
	}
	reg := app.NewRegistry()
	rt, err := webhook.New(env.js, b.subj, wcfg, consumers.NewMetrics(reg), b.log)
	if err != nil {
		return err
	}
	running := app.StartRuntimes(ctx, b.log, rt)
	defer running.Stop()
	prod, err := producing.Start(ctx, b.pcfg, env.nc, reg, b.log, running.Ready)
	if err != nil {
		return err
	}
	defer prod.Shutdown()
	if err := benchUntil(ctx, 30*time.Second, "the webhook durable", func() bool { return running.Ready(ctx) == nil }); err != nil {
		return err
	}
	url := "http://" + prod.HTTP.Addr() + "/events"

	n := b.events()
	recv.arm(n)
	base := b.base()
	start := time.Now()
	if _, err := benchLoad(ctx, url, n, func(i int) []byte { return benchBody(benchMsgNS, benchMessage(base+int64(i))) }); err != nil {
		return err
	}
	if _, err := recv.wait(ctx, b.timeout()); err != nil {
		return err
	}
	b.add("e2e", float64(n)/time.Since(start).Seconds())

	m := min(n, benchLatencyMax)
	recv.arm(m)
	base = b.base()
	ids := make([]string, m)
	sent := make([]time.Time, m)
	err = benchSteady(ctx, url, m, benchSteadyRate, func(i int) []byte { return benchBody(benchMsgNS, benchMessage(base+int64(i))) },
		func(i int, at time.Time, reply []byte) error {
			var r struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(reply, &r); err != nil || r.ID == "" {
				return fmt.Errorf("ingest reply without an id: %s", reply)
			}
			ids[i], sent[i] = r.ID, at
			return nil
		})
	if err != nil {
		return err
	}
	arrived, err := recv.wait(ctx, b.timeout())
	if err != nil {
		return err
	}
	lat := make([]time.Duration, m)
	for i, id := range ids {
		at, ok := arrived[id]
		if !ok {
			return fmt.Errorf("event %s was acknowledged by ingest but not delivered", id)
		}
		lat[i] = at.Sub(sent[i])
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.add("latency_p50", ms(benchQuantile(lat, 0.50)))
	b.add("latency_p99", ms(benchQuantile(lat, 0.99)))
	b.add("latency_p999", ms(benchQuantile(lat, 0.999)))
	return nil
}

// benchFanout: a backlog of n relationshipChanged events (new incoming
// relationship requests, so every consumer has work: the webhook delivers
// each, the archiver stores each, autoaccept reads and accepts each through
// the Connector's API, here a bare stub) consumed by the three consumers
// at once, against three raw durables doing nothing but ack.
func (b *bencher) benchFanout(ctx context.Context, run int) error {
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	if err := b.ensureStream(ctx, env.js); err != nil {
		return err
	}
	recv, err := newBenchReceiver(b.log)
	if err != nil {
		return err
	}
	defer recv.srv.Shutdown(5 * time.Second)
	stub, err := newBenchConnector(b.log)
	if err != nil {
		return err
	}
	defer stub.srv.Shutdown(5 * time.Second)
	n, base, now := b.events(), b.base(), time.Now()
	_, seqs, err := benchPublish(ctx, env.js, b.subj, n, func(i int) router.Event {
		data := benchRelationship(base + int64(i))
		id, _ := router.EventID(router.DefaultSource, benchRelNS, data)
		return router.Event{ID: id, Namespace: benchRelNS, Source: router.DefaultSource, Time: now, Origin: router.OriginWebhook, Data: data}
	})
	if err != nil {
		return err
	}
	last := seqs[len(seqs)-1]

	ceiling := func() error {
		rates, err := b.rawConsume(ctx, env.js, "fanout", []string{"bench-fan-1", "bench-fan-2", "bench-fan-3"}, n, last)
		if err != nil {
			return err
		}
		b.add("fanout_raw", slices.Min(rates))
		return nil
	}
	ours := func() error {
		recv.arm(n)
		reg := app.NewRegistry()
		metrics := consumers.NewMetrics(reg)
		wcfg, err := b.webhookConfig(recv.url+"/hooks", "all")
		if err != nil {
			return err
		}
		wh, err := webhook.New(env.js, b.subj, wcfg, metrics, b.log)
		if err != nil {
			return err
		}
		acfg, err := b.archiveConfig("")
		if err != nil {
			return err
		}
		arch, err := archiving.New(ctx, env.js, b.subj, acfg, filepath.Join(env.dir, "archive"), metrics, reg, b.log)
		if err != nil {
			return err
		}
		defer arch.Close()
		xcfg, err := app.Load[autoaccept.ConsumerConfig]([]string{"AUTOACCEPT_ENABLED=true"})
		if err != nil {
			return err
		}
		conn, err := app.Load[connector.Config]([]string{"CONNECTOR_URL=" + stub.url, "CONNECTOR_API_KEY=" + benchConnKey})
		if err != nil {
			return err
		}
		aa, err := autoaccept.New(env.js, b.subj, xcfg, conn, metrics, reg, b.log)
		if err != nil {
			return err
		}
		start := time.Now()
		running := app.StartRuntimes(ctx, b.log, wh, arch.Archiver, aa)
		names := []string{wh.Name(), archiver.Name, autoaccept.Name}
		done, err := b.settled(ctx, env.js, "fanout", names, last)
		running.Stop()
		if err != nil {
			return err
		}
		rates := make([]float64, len(done))
		for i, t := range done {
			rates[i] = float64(n) / t.Sub(start).Seconds()
		}
		if got := recv.count(); got != n {
			return fmt.Errorf("fan-out: the receiver got %d of %d events", got, n)
		}
		if got := stub.accepts.Load(); got != int64(n) {
			return fmt.Errorf("fan-out: autoaccept accepted %d of %d relationships", got, n)
		}
		b.add("fanout", slices.Min(rates))
		b.add("fanout_webhook", rates[0])
		b.add("fanout_archiver", rates[1])
		b.add("fanout_autoaccept", rates[2])
		stub.reset()
		return benchDeleteDurables(ctx, env.js, names...)
	}
	return benchBoth(run, ceiling, ours)
}

// benchArchive: n events in the stream (published once, not timed); the
// archiver as eventmesh wires it (archiving.New: SQLite under DATA_DIR, or
// ARCHIVE_DSN) from its start until every event is stored and acked,
// against InsertEvents of the very rows it writes, in batches of 256,
// without NATS, into a fresh store of the same kind.
func (b *bencher) benchArchive(ctx context.Context, run int) error {
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	if err := b.ensureStream(ctx, env.js); err != nil {
		return err
	}
	n, base := b.events(), b.base()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	events := make([]router.Event, n)
	for i := range events {
		data := benchMessage(base + int64(i))
		id, _ := router.EventID(router.DefaultSource, benchMsgNS, data)
		events[i] = router.Event{ID: id, Namespace: benchMsgNS, Source: router.DefaultSource,
			Time: t0.Add(time.Duration(i) * time.Microsecond), Origin: router.OriginWebhook, Data: data}
	}
	_, seqs, err := benchPublish(ctx, env.js, b.subj, n, func(i int) router.Event { return events[i] })
	if err != nil {
		return err
	}
	last := seqs[len(seqs)-1]
	// The rows the archiver writes: no other consumer exists on this
	// server, so every event is flagged unsubscribed.
	rows := make([]store.Event, n)
	for i, e := range events {
		rows[i] = store.Event{ID: e.ID, Subject: b.subj.Event(e.Namespace), Type: e.Namespace, Source: e.Source, Time: e.Time,
			StreamSeq: seqs[i], Origin: string(e.Origin), Headers: e.Header(), Data: e.Data, Unsubscribed: true}
	}
	events = nil

	// ours runs the archiver into the store dsn names ("": SQLite under dir).
	ours := func(key, dsn, dir string) error {
		acfg, err := b.archiveConfig(dsn)
		if err != nil {
			return err
		}
		arch, err := archiving.New(ctx, env.js, b.subj, acfg, dir, consumers.NewMetrics(app.NewRegistry()), app.NewRegistry(), b.log)
		if err != nil {
			return err
		}
		defer arch.Close()
		start := time.Now()
		running := app.StartRuntimes(ctx, b.log, arch.Archiver)
		done, err := b.settled(ctx, env.js, "archive", []string{archiver.Name}, last)
		running.Stop()
		if err != nil {
			return err
		}
		b.add(key, float64(n)/done[0].Sub(start).Seconds())
		if err := benchDeleteDurables(ctx, env.js, archiver.Name); err != nil {
			return err
		}
		err = env.js.DeleteConsumer(ctx, streams.Outcomes, archiver.OutcomesDurable)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		return nil
	}
	bare := func(key, dsn, dir string) error {
		st, err := store.Open(ctx, dsn, dir)
		if err != nil {
			return err
		}
		defer st.Close()
		start := time.Now()
		for batch := range slices.Chunk(rows, benchBatch) {
			if err := st.InsertEvents(ctx, batch); err != nil {
				return err
			}
		}
		b.add(key, float64(n)/time.Since(start).Seconds())
		return nil
	}
	err = benchBoth(run,
		func() error { return bare("archive_bare_sqlite", "", filepath.Join(env.dir, "bare")) },
		func() error { return ours("archive_sqlite", "", filepath.Join(env.dir, "ours")) })
	if err != nil || b.opt.postgres == "" {
		return err
	}
	s1, s2 := benchSchema(), benchSchema()
	defer benchDropSchemas(b.opt.postgres, s1, s2)
	return benchBoth(run,
		func() error { return bare("archive_bare_pg", benchSearchPath(b.opt.postgres, s1), "") },
		func() error { return ours("archive_pg", benchSearchPath(b.opt.postgres, s2), "") })
}

// benchRSS runs the producer, webhook, archiver and autoaccept binaries
// against the embedded server (over TCP), posts relationshipChanged events
// to the producer's ingest at a steady 1,000/s (so every consumer handles
// every event), waits until every consumer has settled them, and reads
// each process's VmHWM. The binaries run with their defaults.
func (b *bencher) benchRSS(ctx context.Context, run int) error {
	if b.bins == "" {
		return nil
	}
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	recv, err := newBenchReceiver(b.log)
	if err != nil {
		return err
	}
	defer recv.srv.Shutdown(5 * time.Second)
	stub, err := newBenchConnector(b.log)
	if err != nil {
		return err
	}
	defer stub.srv.Shutdown(5 * time.Second)
	wcfg, err := b.webhookConfig(recv.url+"/hooks", "")
	if err != nil {
		return err
	}
	common := []string{"NATS_URL=" + env.srv.ClientURL(), "LOG_LEVEL=warn"}
	ingest := freePort()
	procs := []*benchProc{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	start := func(name string, env ...string) (*benchProc, error) {
		p, err := b.startProc(name, append(slices.Clone(common), env...))
		if p != nil {
			procs = append(procs, p)
		}
		return p, err
	}
	prod, err := start("producer", "INGEST_ADDR="+ingest)
	if err != nil {
		return err
	}
	if err := prod.ready(ctx, "http://"+ingest+"/readyz"); err != nil {
		return err
	}
	consumerProcs := []struct{ name, addr string }{{"webhook", freePort()}, {"archiver", freePort()}, {"autoaccept", freePort()}}
	envs := map[string][]string{
		"webhook":    {"WEBHOOK_URL=" + recv.url + "/hooks", "WEBHOOK_SECRET=" + benchSecret},
		"archiver":   {"DATA_DIR=" + filepath.Join(env.dir, "archive"), "ARCHIVE_ADDR=" + freePort()},
		"autoaccept": {"AUTOACCEPT_ENABLED=true", "CONNECTOR_URL=" + stub.url, "CONNECTOR_API_KEY=" + benchConnKey},
	}
	started := map[string]*benchProc{"producer": prod}
	for _, c := range consumerProcs {
		p, err := start(c.name, append(envs[c.name], "HTTP_ADDR="+c.addr)...)
		if err != nil {
			return err
		}
		started[c.name] = p
	}
	for _, c := range consumerProcs {
		if err := started[c.name].ready(ctx, "http://"+c.addr+"/readyz"); err != nil {
			return err
		}
	}
	m := min(b.events(), benchRSSMax)
	recv.arm(m)
	base := b.base()
	var last atomic.Uint64
	err = benchSteady(ctx, "http://"+ingest+"/events", m, benchSteadyRate, func(i int) []byte { return benchBody(benchRelNS, benchRelationship(base+int64(i))) },
		func(i int, _ time.Time, reply []byte) error {
			var r struct {
				Seq uint64 `json:"stream_seq"`
			}
			if err := json.Unmarshal(reply, &r); err != nil || r.Seq == 0 {
				return fmt.Errorf("ingest reply without a stream_seq: %s", reply)
			}
			for {
				old := last.Load()
				if r.Seq <= old || last.CompareAndSwap(old, r.Seq) {
					return nil
				}
			}
		})
	if err != nil {
		return err
	}
	if _, err := b.settled(ctx, env.js, "rss", []string{wcfg.Webhook.DurableName(), archiver.Name, autoaccept.Name}, last.Load()); err != nil {
		return err
	}
	for _, name := range []string{"producer", "webhook", "archiver", "autoaccept"} {
		mb, err := started[name].peakRSS()
		if err != nil {
			return err
		}
		b.add("rss_"+name, mb)
	}
	return nil
}

// benchBoth runs a ceiling and ours, alternating which goes first from run
// to run so that neither always runs on the heels of the other's garbage.
func benchBoth(run int, ceiling, ours func() error) error {
	first, second := ceiling, ours
	if run%2 == 1 {
		first, second = ours, ceiling
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// ---------------------------------------------------------------------------
// The environment of a figure.

type benchEnv struct {
	dir string
	srv *embedded.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

// startEnv starts a fresh embedded server (its store in a new directory,
// the product's settings but for NATS_SYNC and NATS_LISTEN) and connects in
// process, as eventmesh does.
func (b *bencher) startEnv() (*benchEnv, error) {
	dir, err := os.MkdirTemp(b.tmp, "env-")
	if err != nil {
		return nil, err
	}
	cfg, err := app.Load[embedded.Config]([]string{"NATS_SYNC=" + b.opt.sync, "NATS_LISTEN=127.0.0.1:0", "DATA_DIR=" + dir, "NATS_MAX_STORE=16GiB"})
	if err != nil {
		return nil, err
	}
	srv, err := embedded.Start(cfg, b.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	env := &benchEnv{dir: dir, srv: srv}
	if env.nc, err = srv.Connect(streams.BaseOptions("eventmesh-bench", b.log)...); err == nil {
		env.js, err = streams.NewJetStream(env.nc, b.log)
	}
	if err != nil {
		env.close()
		return nil, err
	}
	return env, nil
}

func (e *benchEnv) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	e.srv.Shutdown()
	os.RemoveAll(e.dir)
}

// ensureStream creates ENMESHED as the producer does.
func (b *bencher) ensureStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := streams.EnsureStream(ctx, js, streams.EventsStream(b.subj, b.pcfg.Stream), b.log)
	return err
}

// webhookConfig is the webhook consumer's configuration: the defaults
// (WEBHOOK_CONCURRENCY 16, …), signed, to url, starting at start (""
// keeps the default, new).
func (b *bencher) webhookConfig(url, start string) (webhook.ConsumerConfig, error) {
	env := []string{"WEBHOOK_URL=" + url, "WEBHOOK_SECRET=" + benchSecret}
	if start != "" {
		env = append(env, "WEBHOOK_START="+start)
	}
	return app.Load[webhook.ConsumerConfig](env)
}

// archiveConfig is the archiver's configuration: the defaults, the store
// dsn names, no HTTP API.
func (b *bencher) archiveConfig(dsn string) (archiving.Config, error) {
	c, err := app.Load[archiving.Config]([]string{"ARCHIVE_DSN=" + dsn})
	c.Archive.Addr = ""
	return c, err
}

// benchPublish publishes n events with async publishes (up to the
// client's window in flight) and returns messages per second and the
// stream sequence of each.
func benchPublish(ctx context.Context, js jetstream.JetStream, s router.Subjects, n int, event func(i int) router.Event) (float64, []uint64, error) {
	futs := make([]jetstream.PubAckFuture, n)
	start := time.Now()
	for i := range n {
		f, err := js.PublishMsgAsync(event(i).Msg(s), jetstream.WithStallWait(time.Minute))
		if err != nil {
			return 0, nil, err
		}
		futs[i] = f
	}
	seqs := make([]uint64, n)
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			return 0, nil, err
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	return float64(n) / time.Since(start).Seconds(), seqs, nil
}

// rawConsume creates a durable per name (deliver all, explicit acks, the
// product's MaxAckPending) that acks every message, all at once, and
// returns each one's rate until its ack floor reached last. The durables
// are deleted afterwards.
func (b *bencher) rawConsume(ctx context.Context, js jetstream.JetStream, group string, names []string, n int, last uint64) ([]float64, error) {
	defer benchDeleteDurables(context.WithoutCancel(ctx), js, names...)
	start := time.Now()
	for _, name := range names {
		cons, err := js.CreateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: 30 * time.Second, MaxAckPending: 1000})
		if err != nil {
			return nil, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { m.Ack() })
		if err != nil {
			return nil, err
		}
		defer cc.Stop()
	}
	done, err := b.settled(ctx, js, group, names, last)
	if err != nil {
		return nil, err
	}
	rates := make([]float64, len(done))
	for i, t := range done {
		rates[i] = float64(n) / t.Sub(start).Seconds()
	}
	return rates, nil
}

// settled waits until the ack floor of each durable on ENMESHED has
// reached last (everything up to it handled and acknowledged) and returns
// when each got there (polled every 10 ms). It also notes stalls: spans of
// at least half a second in which a durable had events pending on the
// server, none in flight and no pull request waiting, so nothing moved.
func (b *bencher) settled(ctx context.Context, js jetstream.JetStream, group string, names []string, last uint64) ([]time.Time, error) {
	timeout := b.timeout()
	done := make([]time.Time, len(names))
	floor := make([]uint64, len(names))
	stalled := make([]time.Time, len(names)) // since when, zero: not stalled
	endStall := func(i int, now time.Time) {
		if !stalled[i].IsZero() {
			if d := now.Sub(stalled[i]); d >= 500*time.Millisecond {
				b.stalls = append(b.stalls, benchStall{Run: b.run + 1, Group: group, Durable: names[i], Seconds: d.Seconds(), Floor: floor[i]})
				fmt.Fprintf(b.stderr, "  stall: durable %s had events pending and no pull request at the server for %.1fs\n", names[i], d.Seconds())
			}
			stalled[i] = time.Time{}
		}
	}
	deadline := time.Now().Add(timeout)
	for left := len(names); left > 0; {
		for i, name := range names {
			if !done[i].IsZero() {
				continue
			}
			c, err := js.Consumer(ctx, streams.Events, name)
			if err != nil {
				continue
			}
			now, info := time.Now(), c.CachedInfo()
			floor[i] = info.AckFloor.Stream
			if floor[i] >= last {
				endStall(i, now)
				done[i] = now
				left--
				continue
			}
			if info.NumPending > 0 && info.NumAckPending == 0 && info.NumWaiting == 0 {
				if stalled[i].IsZero() {
					stalled[i] = now
				}
			} else {
				endStall(i, now)
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			var s []string
			for i, name := range names {
				s = append(s, fmt.Sprintf("%s at %d", name, floor[i]))
			}
			return nil, fmt.Errorf("not every durable settled up to stream sequence %d within %s: %s", last, timeout, strings.Join(s, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return done, nil
}

// benchStall is a span in which a durable had work but no pull request.
type benchStall struct {
	Run     int     `json:"run"`
	Group   string  `json:"group"`
	Durable string  `json:"durable"`
	Seconds float64 `json:"seconds"`
	Floor   uint64  `json:"ack_floor"`
}

// benchDeleteDurables deletes durables on ENMESHED (and the runtime's
// advisory durables beside them).
func benchDeleteDurables(ctx context.Context, js jetstream.JetStream, names ...string) error {
	for _, name := range names {
		if err := js.DeleteConsumer(ctx, streams.Events, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete durable %s: %w", name, err)
		}
		adv := consumers.AdvisoryDurable(name)
		err := js.DeleteConsumer(ctx, streams.Advisories, adv)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete durable %s: %w", adv, err)
		}
	}
	return nil
}

func benchUntil(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready within %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Payloads: Connector-shaped data of 1 KB, distinct per n.

var (
	benchMsgHead = `{"id":"MSG`
	benchMsgTail = `","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"` +
		strings.Repeat("x", 420) + `","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX",` +
		`"recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i",` +
		`"relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`
	benchRelHead = `{"id":"REL`
	benchRelTail = `","templateId":"RLTbenchTemplate0001","status":"Pending","peer":"` + benchPeerAddress + `","peerIdentity":{"address":"` + benchPeerAddress +
		`","publicKey":"eyJwdWIiOiJCZW5jaG1hcmtQdWJsaWNLZXkwMTIzNDU2Nzg5IiwiYWxnIjozfQ"},"creationContent":{"@type":"RelationshipCreationContent",` +
		`"response":{"@type":"Response","result":"Accepted","requestId":"REQbenchRequest00001","items":[{"@type":"ReadAttributeAcceptResponseItem",` +
		`"result":"Accepted","attributeId":"ATTbenchAttribute001","attribute":{"@type":"IdentityAttribute","owner":"` + benchPeerAddress +
		`","value":{"@type":"DisplayName","value":"` + strings.Repeat("x", 360) + `"}}}]}},"auditLog":[{"createdAt":"2026-03-01T10:15:00.120Z","createdBy":"` +
		benchPeerAddress + `","createdByDevice":"DVCbenchDevice000001","reason":"Creation","newStatus":"Pending"}]}`
)

func benchPayload(head, tail string, n int64) []byte {
	b := make([]byte, 0, len(head)+17+len(tail))
	b = append(b, head...)
	b = fmt.Appendf(b, "%017d", n)
	return append(b, tail...)
}

// benchMessage is transport.messageReceived data with message id n.
func benchMessage(n int64) []byte { return benchPayload(benchMsgHead, benchMsgTail, n) }

// benchRelationship is transport.relationshipChanged data: a new
// relationship request from a peer, relationship id n.
func benchRelationship(n int64) []byte { return benchPayload(benchRelHead, benchRelTail, n) }

// benchBody is the Connector's webhook body.
func benchBody(namespace string, data []byte) []byte {
	b := make([]byte, 0, len(data)+64)
	b = append(b, `{"trigger":"`...)
	b = append(b, namespace...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// ---------------------------------------------------------------------------
// HTTP: load, servers, the receiver and the Connector stub.

func benchHTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}
}

func benchPost(ctx context.Context, c *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	reply, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: %s: %.200s", url, resp.Status, reply)
	}
	return reply, err
}

// benchLoad posts n bodies from 64 keep-alive clients, each posting its
// next as soon as it has the answer, and returns requests per second.
// Every answer must be a 2xx.
func benchLoad(ctx context.Context, url string, n int, body func(i int) []byte) (float64, error) {
	c := benchHTTPClient()
	defer c.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if _, err := benchPost(ctx, c, url, body(i)); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), first
}

// benchSteady posts n bodies at rate per second, open loop: a dispatcher
// hands each event to one of 64 workers when it is due (a late tick sends
// every event that is due, so the rate holds on average). reply gets each
// answer and the moment its request was handed to the HTTP client.
func benchSteady(ctx context.Context, url string, n, rate int, body func(i int) []byte, reply func(i int, sent time.Time, b []byte) error) error {
	c := benchHTTPClient()
	defer c.CloseIdleConnections()
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range benchClients {
		wg.Go(func() {
			for i := range jobs {
				b := body(i)
				sent := time.Now()
				r, err := benchPost(ctx, c, url, b)
				if err == nil {
					err = reply(i, sent, r)
				}
				if err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		due := min(n, int(time.Since(start)/interval)+1)
		for ; i < due; i++ {
			jobs <- i
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// benchBareHandler is the bare ingest handler: it drains the body and
// answers a small JSON document.
func benchBareHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}`))
}

// benchNoContent is the bare webhook endpoint: it drains the body and
// answers 204.
func benchNoContent(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
}

// benchReceiver is the webhook endpoint: benchNoContent that also notes
// when each webhook-id first arrived.
type benchReceiver struct {
	srv  *app.HTTPServer
	url  string
	mu   sync.Mutex
	at   map[string]time.Time
	want int
	done chan struct{}
}

func newBenchReceiver(log *slog.Logger) (*benchReceiver, error) {
	r := &benchReceiver{at: map[string]time.Time{}, done: make(chan struct{})}
	srv, err := app.Listen("bench receiver", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		arrived := time.Now()
		benchNoContent(w, req)
		id := req.Header.Get(webhook.HeaderID)
		r.mu.Lock()
		if _, seen := r.at[id]; !seen && r.want > 0 {
			r.at[id] = arrived
			if len(r.at) == r.want {
				close(r.done)
			}
		}
		r.mu.Unlock()
	}), log)
	if err != nil {
		return nil, err
	}
	r.srv, r.url = srv, "http://"+srv.Addr()
	return r, nil
}

// arm starts counting a round of want distinct events.
func (r *benchReceiver) arm(want int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at, r.want, r.done = make(map[string]time.Time, want), want, make(chan struct{})
}

func (r *benchReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

// wait waits until the round is complete and returns the arrival times.
func (r *benchReceiver) wait(ctx context.Context, timeout time.Duration) (map[string]time.Time, error) {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(timeout):
		return nil, fmt.Errorf("the webhook receiver got %d of %d events within %s", r.count(), r.want, timeout)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.at), nil
}

// benchConnector is a bare stand-in for the Connector's REST API: the
// three routes autoaccept calls, answered from a map.
type benchConnector struct {
	srv      *app.HTTPServer
	url      string
	accepted sync.Map
	accepts  atomic.Int64
}

func newBenchConnector(log *slog.Logger) (*benchConnector, error) {
	c := &benchConnector{}
	reply := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	rel := func(id, status string) string {
		return `{"result":{"id":"` + id + `","templateId":"RLTbenchTemplate0001","status":"` + status + `","peer":"` + benchPeerAddress +
			`","auditLog":[{"createdAt":"2026-03-01T10:15:00.120Z","createdBy":"` + benchPeerAddress + `","reason":"Creation","newStatus":"Pending"}]}}`
	}
	srv, err := app.Listen("bench connector", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-API-KEY") != benchConnKey {
			reply(w, http.StatusUnauthorized, `{"error":{"code":"error.runtime.unauthorized","message":"unauthorized"}}`)
			return
		}
		path := strings.TrimPrefix(r.URL.Path, "/api/core/v1")
		id, accept := strings.CutSuffix(strings.TrimPrefix(path, "/Relationships/"), "/Accept")
		switch {
		case r.Method == http.MethodGet && path == "/Account/IdentityInfo":
			reply(w, http.StatusOK, `{"result":{"address":"`+benchOwnAddress+`","publicKey":"eyJwdWIiOiJPd24ifQ"}}`)
		case strings.HasPrefix(path, "/Relationships/") && accept && r.Method == http.MethodPut:
			if _, was := c.accepted.LoadOrStore(id, true); was {
				reply(w, http.StatusBadRequest, `{"error":{"code":"error.transport.relationships.wrongRelationshipStatus","message":"not pending"}}`)
				return
			}
			c.accepts.Add(1)
			reply(w, http.StatusOK, rel(id, connector.StatusActive))
		case strings.HasPrefix(path, "/Relationships/") && !accept && r.Method == http.MethodGet:
			status := connector.StatusPending
			if _, ok := c.accepted.Load(id); ok {
				status = connector.StatusActive
			}
			reply(w, http.StatusOK, rel(id, status))
		default:
			reply(w, http.StatusNotFound, `{"error":{"code":"error.runtime.recordNotFound","message":"not found"}}`)
		}
	}), log)
	if err != nil {
		return nil, err
	}
	c.srv, c.url = srv, "http://"+srv.Addr()
	return c, nil
}

// reset forgets what was accepted (the next round consumes the same
// backlog again).
func (c *benchConnector) reset() {
	c.accepted.Clear()
	c.accepts.Store(0)
}

// ---------------------------------------------------------------------------
// PostgreSQL.

func benchSchema() string {
	var r [6]byte
	rand.Read(r[:])
	return "eventmesh_bench_" + hex.EncodeToString(r[:])
}

func benchSearchPath(dsn, schema string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

func benchDropSchemas(dsn string, schemas ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, s := range schemas {
		conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE")
	}
}

// ---------------------------------------------------------------------------
// The binaries of the RSS figure.

// buildBinaries builds the four binaries from the source checkout that
// holds the working directory.
func (b *bencher) buildBinaries(ctx context.Context) error {
	root, err := benchSourceRoot()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("go"); err != nil {
		return errors.New("no Go toolchain on PATH to build the binaries")
	}
	dir := filepath.Join(b.tmp, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintln(b.stderr, "building cmd/producer, cmd/webhook, cmd/archiver, cmd/autoaccept for the RSS rows ...")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/producer", "./cmd/webhook", "./cmd/archiver", "./cmd/autoaccept")
	cmd.Dir = root
	if len(b.environ) > 0 {
		cmd.Env = b.environ
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build failed: %v: %.300s", err, out)
	}
	b.bins = dir
	return nil
}

// benchSourceRoot finds the module's source checkout around the working
// directory.
func benchSourceRoot() (string, error) {
	const module = "github.com/eventmesh/eventmesh"
	notFound := errors.New("not run from a source checkout of " + module + " (the RSS rows build its binaries with go build)")
	dir, err := os.Getwd()
	if err != nil {
		return "", notFound
	}
	for {
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(mod), "\n")
			if strings.TrimSpace(strings.TrimPrefix(first, "module")) != module {
				return "", notFound
			}
			if _, err := os.Stat(filepath.Join(dir, "cmd", "webhook")); err != nil {
				return "", notFound
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", notFound
		}
		dir = parent
	}
}

type benchProc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

func (b *bencher) startProc(name string, env []string) (*benchProc, error) {
	p := &benchProc{name: name, log: filepath.Join(b.tmp, fmt.Sprintf("%s-%d.log", name, b.seq.Add(1))), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(b.bins, name))
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// ready waits until url answers 200.
func (p *benchProc) ready(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logTail())
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 30s\n%s", p.name, p.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// peakRSS reads the process's VmHWM from /proc, in MB (10^6 bytes).
func (p *benchProc) peakRSS() (float64, error) {
	select {
	case <-p.exited:
		return 0, fmt.Errorf("%s exited during the run: %v\n%s", p.name, p.err, p.logTail())
	default:
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS of %s: %w (the RSS rows need Linux's /proc)", p.name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %s: %q", p.name, rest)
			}
			return kb * 1024 / 1e6, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
}

// stop sends SIGTERM and waits (killing it after 20 s).
func (p *benchProc) stop() {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.cmd.Process.Kill()
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *benchProc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// Statistics and output.

func benchMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// benchQuantile returns the q-quantile of sorted (nearest rank).
func benchQuantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func benchFormat(v float64, unit string) string {
	switch unit {
	case "ms":
		if v < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.1f ms", v)
	case "MB":
		return fmt.Sprintf("%.1f MB", v)
	}
	return benchThousands(v) + " " + unit
}

func benchThousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

func benchLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func benchCPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func benchVersions() map[string]string {
	v := map[string]string{"go": runtime.Version(), "nats-server": "v" + natsserver.VERSION, "nats.go": nats.Version, "eventmesh": app.Version}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.GoVersion != "" {
			v["go"] = bi.GoVersion
		}
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			switch d.Path {
			case "github.com/nats-io/nats-server/v2":
				v["nats-server"] = d.Version
			case "github.com/nats-io/nats.go":
				v["nats.go"] = d.Version
			}
		}
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "+modified"
			}
			v["eventmesh"] += " (" + rev + ")"
		}
	}
	return v
}

func (b *bencher) report(load string) benchReport {
	rep := benchReport{
		Command:  fmt.Sprintf("eventmesh bench --sync %s --runs %d --events %d", b.opt.sync, b.opt.runs, b.opt.events),
		Machine:  map[string]any{"cores": runtime.NumCPU(), "cpu": benchCPUModel(), "os": runtime.GOOS, "arch": runtime.GOARCH, "loadavg_at_start": load},
		Versions: benchVersions(),
		Sync:     b.opt.sync, Runs: b.opt.runs, Events: b.opt.events,
	}
	if b.opt.postgres != "" {
		rep.Command += " --postgres DSN"
	}
	for _, s := range benchSpecs {
		rep.Figures = append(rep.Figures, b.figs[s.key])
	}
	rep.Stalls = b.stalls
	return rep
}

func (b *bencher) writeTable(w io.Writer, rep benchReport) {
	v := rep.Versions
	fsync := "every write is fsynced before JetStream acknowledges it"
	if !b.always {
		fsync = "the store is fsynced every " + b.opt.sync + " (an acknowledged event may be lost on power loss)"
	}
	fmt.Fprintf(w, "%s\n\n", rep.Command)
	fmt.Fprintf(w, "machine   %d cores (runtime.NumCPU), %s, %s/%s", rep.Machine["cores"], rep.Machine["cpu"], runtime.GOOS, runtime.GOARCH)
	if load := rep.Machine["loadavg_at_start"]; load != "" {
		fmt.Fprintf(w, ", load average %s at start", load)
	}
	fmt.Fprintf(w, "\nversions  %s, nats-server %s (embedded, in-process client), nats.go %s, eventmesh %s\n", v["go"], v["nats-server"], v["nats.go"], v["eventmesh"])
	fmt.Fprintf(w, "fsync     NATS_SYNC=%s: %s\n", b.opt.sync, fsync)
	fmt.Fprintf(w, "figures   median of %d run(s), %s events of about 1 KB each; every ceiling measured in the same runs; ratio = median / ceiling's median\n\n",
		b.opt.runs, benchThousands(float64(b.opt.events)))
	fmt.Fprintln(w, "| figure | median | runs (min–max) | ceiling | ratio | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, f := range rep.Figures {
		med, spread, ceiling, ratio := "—", "", "", ""
		if len(f.Values) > 0 {
			med = benchFormat(f.Median, f.Unit)
			if len(f.Values) > 1 {
				spread = strings.TrimSuffix(benchFormat(slices.Min(f.Values), f.Unit), " "+f.Unit) + "–" + benchFormat(slices.Max(f.Values), f.Unit)
			}
		}
		if f.Note != "" {
			med = strings.Join(strings.Fields(f.Note), " ")
			if len(med) > 240 {
				med = med[:240] + "…"
			}
			if len(f.Values) > 0 {
				med = benchFormat(f.Median, f.Unit) + " (" + med + ")"
			}
		}
		if f.Ceiling != "" {
			c := b.figs[f.Ceiling]
			ceiling = benchShortName(f.Ceiling)
			if len(c.Values) > 0 {
				ceiling += " " + benchFormat(c.Median, c.Unit)
			}
			if f.Ratio > 0 {
				ratio = fmt.Sprintf("**%.2f**", f.Ratio)
			}
		}
		target := f.Target
		if f.Met != nil {
			if *f.Met {
				target += ": met"
			} else {
				target += ": **missed**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", f.Name, med, spread, ceiling, ratio, target)
	}
	if len(rep.Stalls) > 0 {
		fmt.Fprintf(w, "\nStalls: a durable had events pending on the server, none in flight and no pull request waiting, so nothing moved until the client's missed-heartbeat check re-issued its pull:\n")
		for _, st := range rep.Stalls {
			fmt.Fprintf(w, "- run %d, %s: %s, %.1f s (ack floor at stream sequence %d)\n", st.Run, st.Group, st.Durable, st.Seconds, st.Floor)
		}
	}
}

func benchShortName(key string) string {
	switch key {
	case "raw_publish":
		return "raw async publish"
	case "raw_publish_64":
		return "raw publish, 64 in flight"
	case "bare_http":
		return "bare handler"
	case "bare_relay":
		return "two-hop relay"
	case "fanout_raw":
		return "3 raw durables"
	case "archive_bare_sqlite", "archive_bare_pg":
		return "bare inserts"
	}
	return key
}
