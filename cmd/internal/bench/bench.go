// Package bench is `eventmesh bench`: it measures the mesh on this machine,
// in this process, against an embedded NATS server (a fresh store in a
// temporary directory for every figure), and sets each figure's median of
// several runs beside its ceiling measured in the same runs: the same work
// done by the bare tools (raw JetStream, a bare net/http handler, a bare
// insert loop), on the same machine, at the same time.
//
// The peak-RSS rows build and run the binaries with cmd/internal/harness
// (go build, process control); webhooks go to a harness receiver, and the
// Connector that autoaccept calls is connectortest's double. A file per
// group of figures: stream, http (and ingest), webhook, fanout, archive,
// rss; env.go holds what they share, report.go the table and the JSON.
// Only the eventmesh command links this package. Results and how to read
// them: BENCHMARKS.md.
package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/embedded"
)

// What every figure shares.
const (
	clients     = 64   // keep-alive HTTP clients of every HTTP load
	steadyRate  = 1000 // events per second of the steady loads
	latencyMax  = 3000 // events of the latency figure: 3 s at 1,000/s
	rssMax      = 5000 // events of the RSS figure: 5 s at 1,000/s
	insertBatch = 256  // the bare insert loop's batch (ARCHIVE_BATCH_SIZE's default)
	msgNS       = connectortest.EventMessageReceived
	relNS       = connectortest.EventRelationshipChanged
	connKey     = "bench-connector-api-key"
	peerAddress = "did:e:localhost:dids:f0e1d2c3b4a5968778695a"
	templateID  = "RLTbenchTemplate0001"
)

// secret signs the webhooks: receivers in production verify signatures,
// so every request is signed here too.
var secret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("eventmesh-bench-secret-32-bytes!"))

// spec is one row of the table.
type spec struct {
	key, name, unit string
	group           string
	ceiling         string  // key of the row this one is compared with
	want            float64 // the target: a ratio at least want, or (atMost) a median at most want
	atMost          bool
	policy          string // the NATS_SYNC class the target is set for: "interval" (2m) or "always"
}

// specs are the rows, in table order.
var specs = []spec{
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
	{key: "rss_console", group: "rss", unit: "MB", want: 30, atMost: true, policy: "interval", name: "peak RSS (VmHWM) at a steady 1,000 events/s: console"},
}

// Groups are the groups of rows, each measured together, in the order
// they run.
var Groups = []string{"stream", "http", "ingest", "webhook", "fanout", "archive", "rss"}

// Options are the settings of a bench, the flags of `eventmesh bench`.
type Options struct {
	// Sync is NATS_SYNC of the embedded server: always, or a flush
	// interval such as 2m.
	Sync string
	// Runs is the number of runs of every figure (at least 1).
	Runs int
	// Events is the number of events per figure and run (at least 100).
	Events int
	// Postgres is a PostgreSQL DSN for the archive rows on PostgreSQL;
	// empty skips them.
	Postgres string
	// JSON prints the results as JSON instead of the table.
	JSON bool
	// NoRSS skips the peak-RSS rows.
	NoRSS bool
	// CPUProfile is a file to write a CPU profile of the whole run to.
	CPUProfile string
	// Only names the groups to run; nil runs all.
	Only map[string]bool
}

// ErrFailed is returned by Run, after the results are printed, when a
// figure failed or the run was interrupted.
var ErrFailed = errors.New("bench: a figure failed or the run was interrupted")

type bencher struct {
	opt    Options
	always bool
	log    *slog.Logger
	stderr io.Writer
	tmp    string
	figs   map[string]*Figure
	pcfg   producing.Config
	subj   router.Subjects
	seq    atomic.Int64      // distinct event ids across runs
	bins   map[string]string // the built binaries by name; nil when the RSS figure is skipped
	stalls []Stall
	run    int // the run in progress, from 0
	failed bool
}

// Run measures the figures o asks for, printing progress to stderr and the
// results (the table, or JSON) to stdout. It returns ErrFailed when a
// figure failed or ctx ended, and an error before measuring when it cannot
// set up.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	always, _, err := embedded.Config{Sync: o.Sync}.SyncPolicy()
	if err != nil {
		return err
	}
	b := &bencher{opt: o, always: always, stderr: stderr, figs: map[string]*Figure{},
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, s := range specs {
		b.figs[s.key] = &Figure{Key: s.key, Name: s.name, Unit: s.unit, Ceiling: s.ceiling, spec: s}
	}
	if b.pcfg, err = app.Load[producing.Config]([]string{"INGEST_ADDR=127.0.0.1:0", "STREAM_MAX_BYTES=4GiB"}); err != nil {
		return err
	}
	b.subj, _ = b.pcfg.Prefix.Subjects()
	if b.tmp, err = os.MkdirTemp("", "eventmesh-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	loadavg := loadAvg()
	for _, f := range b.figs {
		if o.Only != nil && !o.Only[f.spec.group] {
			f.Note = "skipped (--only)"
		}
	}
	if o.Postgres == "" {
		b.skip("archive_bare_pg", "skipped: no --postgres DSN")
		b.skip("archive_pg", "skipped: no --postgres DSN")
	}
	rssNote := ""
	switch {
	case o.NoRSS:
		rssNote = "skipped (--no-rss)"
	case o.Only != nil && !o.Only["rss"]:
	default:
		if err := b.build(); err != nil {
			rssNote = "skipped: " + err.Error()
		}
	}
	if rssNote != "" {
		for _, name := range rssBinaries {
			b.skip("rss_"+name, rssNote)
		}
	}

	groups := []struct {
		name string
		f    func(context.Context, int) error
	}{
		{"stream", b.runStream}, {"http", b.runHTTP}, {"ingest", b.runIngest}, {"webhook", b.runWebhook},
		{"fanout", b.runFanout}, {"archive", b.runArchive}, {"rss", b.runRSS},
	}
	start := time.Now()
	for run := 0; run < o.Runs && ctx.Err() == nil; run++ {
		fmt.Fprintf(stderr, "run %d/%d\n", run+1, o.Runs)
		b.run = run
		for _, g := range groups {
			if ctx.Err() != nil {
				break
			}
			if o.Only != nil && !o.Only[g.name] {
				continue
			}
			var err error
			pprof.Do(ctx, pprof.Labels("figure", g.name), func(ctx context.Context) { err = g.f(ctx, run) })
			if err != nil {
				b.failed = true
				fmt.Fprintf(stderr, "run %d/%d %s: %v\n", run+1, o.Runs, g.name, err)
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

	rep := b.report(loadavg)
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		b.writeTable(stdout, rep)
	}
	if b.failed {
		return ErrFailed
	}
	return nil
}

func (b *bencher) skip(key, note string) { b.figs[key].Note = note }

func (b *bencher) add(key string, v float64) {
	f := b.figs[key]
	f.Values = append(f.Values, v)
	fmt.Fprintf(b.stderr, "  %-20s %s\n", key, format(v, f.Unit))
}

// events is the number of events per figure.
func (b *bencher) events() int { return b.opt.Events }

// timeout bounds every wait of a figure: generous, so that only a stall
// fails a run.
func (b *bencher) timeout() time.Duration {
	return 2*time.Minute + time.Duration(b.opt.Events)*5*time.Millisecond
}

// base returns the first number of a fresh range of event ids.
func (b *bencher) base() int64 { return b.seq.Add(1) * 10_000_000 }

// finish computes medians, ratios and targets.
func (b *bencher) finish() {
	for _, s := range specs {
		f := b.figs[s.key]
		if len(f.Values) > 0 {
			f.Median = median(f.Values)
		}
	}
	for _, s := range specs {
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
