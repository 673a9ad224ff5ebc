// Command autoaccept accepts incoming relationship requests through the
// enmeshed Connector's REST API, from the transport.relationshipChanged
// events in ENMESHED.
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
	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
)

type config struct {
	Log       app.LogConfig
	NATS      streams.ConnConfig
	Prefix    streams.PrefixConfig
	HTTPAddr  string `env:"HTTP_ADDR" envDefault:"127.0.0.1:9090" desc:"address of /healthz, /readyz and /metrics"`
	Connector connector.Config
	Accept    app.AutoAcceptConfig
}

func (c config) Validate() error {
	err := errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Prefix.Validate(), c.Connector.Validate(), c.Accept.Validate(c.Connector))
	if !c.Accept.AutoAccept.Enabled {
		err = errors.Join(err, errors.New("AUTOACCEPT_ENABLED is not true: set it to run the auto-accept consumer"))
	}
	return err
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) {
		app.PrintHelp(stdout, "autoaccept", "The eventmesh auto-accept consumer: accepts incoming relationship requests through the Connector's API.", &config{})
		return 0
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, "autoaccept", app.Version)
		return 0
	}
	cfg, err := app.Load[config](environ)
	if err != nil {
		fmt.Fprintln(stderr, "autoaccept: configuration:", err)
		return 2
	}
	log := cfg.Log.Logger(stderr)
	stopTracing, _ := app.StartTracing(ctx, "eventmesh-autoaccept", log) // logs a failure; events flow without spans
	defer stopTracing(context.Background())
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("autoaccept stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	ctx, stop := app.SignalContext(ctx)
	defer stop()
	subjects, err := cfg.Prefix.Subjects()
	if err != nil {
		return err
	}
	nc, err := streams.Connect(ctx, cfg.NATS, "eventmesh-autoaccept", log)
	if err != nil {
		return err
	}
	defer app.Drain(nc, 10*time.Second)
	reg := app.NewRegistry()
	rt, err := app.NewAutoAccept(nc, subjects, cfg.Accept, cfg.Connector, consumers.NewMetrics(reg), reg, log)
	if err != nil {
		return err
	}
	rts := app.StartRuntimes(ctx, log, rt)
	srv, err := app.ConsumerHTTP(cfg.HTTPAddr, reg, rts.Ready, log)
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
