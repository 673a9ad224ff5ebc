package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/bench"
	"github.com/eventmesh/eventmesh/streams/embedded"
)

const benchUsage = `eventmesh bench [--sync 2m|always] [--runs 3] [--events N] [--postgres DSN] [--json] [--no-rss] [--only GROUPS] [--cpuprofile FILE]

Measures the mesh on this machine, in this process, against an embedded NATS
server (a fresh store in a temporary directory for every figure), and prints
each figure's median of --runs runs beside its ceiling measured in the same
runs: the same work done by the bare tools (raw JetStream, a bare net/http
handler, a bare insert loop), on the same machine, at the same time.

The peak-RSS lines build cmd/producer, cmd/webhook, cmd/archiver,
cmd/autoaccept and cmd/console with 'go build', so they need a source
checkout of the module (run the command from inside it) and a Go toolchain;
elsewhere they are skipped with a note. --no-rss skips them.

Results and how to read them: BENCHMARKS.md.

Flags:`

// runBench is `eventmesh bench`: its flags; the figures are package bench's.
func runBench(ctx context.Context, args, _ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eventmesh bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	fs.StringVar(&o.Sync, "sync", "2m", "NATS_SYNC of the embedded server: always, or a flush interval such as 2m")
	fs.IntVar(&o.Runs, "runs", 3, "runs of every figure; the table shows medians")
	fs.IntVar(&o.Events, "events", 20000, "events per figure and run (the latency figure takes at most 3,000, the RSS figure 5,000)")
	fs.StringVar(&o.Postgres, "postgres", "", "PostgreSQL DSN (postgres://…) for the archive rows on PostgreSQL; each round uses fresh schemas, dropped afterwards")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON instead of the table")
	fs.BoolVar(&o.NoRSS, "no-rss", false, "skip the peak-RSS rows (which build and run the binaries)")
	only := fs.String("only", "", "run only these groups of rows, comma-separated: "+strings.Join(bench.Groups, ",")+" (to profile one)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to FILE; samples carry the label figure=<group> (go tool pprof -tagfocus)")
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
	_, _, err := embedded.Config{Sync: o.Sync}.SyncPolicy()
	var badGroup string
	if *only != "" {
		o.Only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			if g = strings.TrimSpace(g); !slices.Contains(bench.Groups, g) {
				badGroup = g
			}
			o.Only[g] = true
		}
	}
	switch {
	case badGroup != "":
		fmt.Fprintf(stderr, "eventmesh bench: --only: no group %q (want %s)\n", badGroup, strings.Join(bench.Groups, ", "))
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "eventmesh bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "eventmesh bench: --sync:", strings.TrimPrefix(err.Error(), "NATS_SYNC "))
		return 2
	case o.Runs < 1:
		fmt.Fprintln(stderr, "eventmesh bench: --runs must be at least 1")
		return 2
	case o.Events < 100:
		fmt.Fprintln(stderr, "eventmesh bench: --events must be at least 100")
		return 2
	case o.Postgres != "" && !strings.HasPrefix(o.Postgres, "postgres://") && !strings.HasPrefix(o.Postgres, "postgresql://"):
		fmt.Fprintln(stderr, "eventmesh bench: --postgres: want a postgres:// or postgresql:// DSN")
		return 2
	}
	ctx, stop := app.SignalContext(ctx)
	defer stop()
	switch err := bench.Run(ctx, o, stdout, stderr); {
	case errors.Is(err, bench.ErrFailed):
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "eventmesh bench:", err)
		return 1
	}
	return 0
}
