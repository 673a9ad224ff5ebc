// Command eventmesh is the all-in-one binary: an embedded NATS server with
// JetStream (or NATS_URL), the ENMESHED stream, the Connector webhook
// ingest, and the admin subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/nats-io/nats.go"
)

type config struct {
	Log      app.LogConfig
	Embedded embedded.Config
	NATS     streams.ConnConfig
	Producer app.ProducerConfig
}

func (c config) Validate() error {
	err := errors.Join(c.Log.Validate(), c.Producer.Validate())
	if c.Embedded.Embedded {
		err = errors.Join(err, c.Embedded.Validate())
		if c.Producer.Stream.MaxBytes > c.Embedded.MaxStore/2 {
			// The DLQ, outcomes and advisories streams need room too.
			err = errors.Join(err, fmt.Errorf("STREAM_MAX_BYTES %s must be at most half of NATS_MAX_STORE %s", c.Producer.Stream.MaxBytes, c.Embedded.MaxStore))
		}
	}
	return err
}

const usage = `eventmesh [command]

Commands:
  (none)     run the mesh: embedded NATS server (NATS_EMBEDDED), the ENMESHED stream, ingest
  version    print the version`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) {
		app.PrintHelp(stdout, usage, "The all-in-one eventmesh: puts enmeshed Connector events into one durable JetStream stream.", &config{})
		return 0
	}
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version", "-version":
			fmt.Fprintln(stdout, "eventmesh", app.Version)
			return 0
		default:
			fmt.Fprintf(stderr, "eventmesh: unknown command %q\n\nUsage: %s\n", args[0], usage)
			return 2
		}
	}
	cfg, err := app.Load[config](environ)
	if err != nil {
		fmt.Fprintln(stderr, "eventmesh: configuration:", err)
		return 2
	}
	log := cfg.Log.Logger(stderr)
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("eventmesh stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the mesh until SIGINT or SIGTERM, then shuts down in order:
// ingest (answering the requests in flight), the NATS connection (flushing
// pending publishes), the embedded server last.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	ctx, stop := app.SignalContext(ctx)
	defer stop()

	var (
		nc  *nats.Conn
		srv *embedded.Server
		err error
	)
	if cfg.Embedded.Embedded {
		if srv, err = embedded.Start(cfg.Embedded, log); err != nil {
			return err
		}
		defer srv.Shutdown()
		nc, err = srv.Connect(streams.BaseOptions("eventmesh", log)...)
	} else {
		nc, err = streams.Connect(ctx, cfg.NATS, "eventmesh", log)
	}
	if err != nil {
		return err
	}
	defer app.Drain(nc, 10*time.Second)

	reg := app.NewRegistry()
	prod, err := app.StartProducer(ctx, cfg.Producer, nc, reg, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-prod.HTTP.Done():
		err = fmt.Errorf("ingest server: %w", err)
	}
	prod.Shutdown()
	return err
}
