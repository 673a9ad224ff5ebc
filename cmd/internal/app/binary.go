package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Binary describes one of the separate binaries for Main.
type Binary[T any] struct {
	Name    string                                                   // e.g. "webhook"; also the tracing service eventmesh-<Name>
	Summary string                                                   // one line for --help
	Log     func(*T) LogConfig                                       // the config's log settings
	Serve   func(ctx context.Context, cfg T, log *slog.Logger) error // runs until ctx ends
}

// Main is the whole main of a separate binary: --help (every variable of T
// with its default and description), --version, configuration from
// environ (exit 2 naming the variable), logging, tracing, and Serve until
// SIGINT or SIGTERM (exit 1 on an error).
func Main[T any](ctx context.Context, b Binary[T], args, environ []string, stdout, stderr io.Writer) int {
	if HelpRequested(args) {
		var cfg T
		PrintHelp(stdout, b.Name, b.Summary, &cfg)
		return 0
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, b.Name, Version)
		return 0
	}
	cfg, err := Load[T](environ)
	if err != nil {
		fmt.Fprintf(stderr, "%s: configuration: %v\n", b.Name, err)
		return 2
	}
	log := b.Log(&cfg).Logger(stderr)
	stopTracing, _ := StartTracing(ctx, "eventmesh-"+b.Name, log) // logs a failure; events flow without spans
	defer stopTracing(context.Background())
	ctx, stop := SignalContext(ctx)
	defer stop()
	if err := b.Serve(ctx, cfg, log); err != nil {
		log.Error(b.Name+" stopped", "err", err)
		return 1
	}
	return 0
}

// ServeConsumer runs one consumer binary: it connects to NATS, builds the
// consumer with build (which may return a cleanup run after it stopped),
// serves /healthz, /readyz and /metrics on httpAddr, and on shutdown stops
// fetching, lets in-flight work settle and drains the connection.
func ServeConsumer(ctx context.Context, conn streams.ConnConfig, name, httpAddr string, log *slog.Logger,
	build func(js jetstream.JetStream, reg *prometheus.Registry) (Runner, func(), error)) error {
	nc, err := streams.Connect(ctx, conn, "eventmesh-"+name, log)
	if err != nil {
		return err
	}
	defer Drain(nc, 10*time.Second)
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		return err
	}
	reg := NewRegistry()
	runner, cleanup, err := build(js, reg)
	if err != nil {
		return err
	}
	if cleanup != nil {
		defer cleanup()
	}
	rts := StartRuntimes(ctx, log, runner)
	srv, err := ConsumerHTTP(httpAddr, reg, rts.Ready, log)
	if err != nil {
		rts.Stop()
		return err
	}
	select {
	case <-ctx.Done():
	case err = <-rts.Failed():
	case err = <-srv.Done():
	}
	rts.Stop()
	srv.Shutdown(5 * time.Second)
	return err
}

// Drain flushes nc's pending publishes and closes it, waiting up to timeout.
func Drain(nc *nats.Conn, timeout time.Duration) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		nc.Close()
	}
}
