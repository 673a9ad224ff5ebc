// Command producer runs the producer alone against an external NATS server
// (NATS_URL): it owns the ENMESHED stream and serves the Connector webhook
// ingest.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/streams"
)

type config struct {
	Log      app.LogConfig
	NATS     streams.ConnConfig
	Producer app.ProducerConfig
}

func (c config) Validate() error {
	return errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Producer.Validate())
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) {
		app.PrintHelp(stdout, "producer", "The eventmesh producer: Connector webhooks in, the ENMESHED stream out.", &config{})
		return 0
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, "producer", app.Version)
		return 0
	}
	cfg, err := app.Load[config](environ)
	if err != nil {
		fmt.Fprintln(stderr, "producer: configuration:", err)
		return 2
	}
	log := cfg.Log.Logger(stderr)
	stopTracing, _ := app.StartTracing(ctx, "eventmesh-producer", log) // logs a failure; events flow without spans
	defer stopTracing(context.Background())
	ctx, stop := app.SignalContext(ctx)
	defer stop()
	nc, err := streams.Connect(ctx, cfg.NATS, "eventmesh-producer", log)
	if err != nil {
		log.Error("producer stopped", "err", err)
		return 1
	}
	defer app.Drain(nc, 10*time.Second)
	prod, err := app.StartProducer(ctx, cfg.Producer, nc, app.NewRegistry(), log)
	if err != nil {
		log.Error("producer stopped", "err", err)
		return 1
	}
	select {
	case <-ctx.Done():
	case err = <-prod.HTTP.Done():
		log.Error("ingest server stopped", "err", err)
	}
	prod.Shutdown()
	if err != nil {
		return 1
	}
	return 0
}
