// Command webhook delivers events from ENMESHED to one HTTP endpoint
// (WEBHOOK_URL), signed per Standard Webhooks, with retries by JetStream,
// dead letters, and a pause when the receiver needs a person.
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
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
)

type config struct {
	Log      app.LogConfig
	NATS     streams.ConnConfig
	Prefix   streams.PrefixConfig
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:9090" desc:"address of /healthz, /readyz and /metrics"`
	Webhook  app.WebhookConfig
}

func (c config) Validate() error {
	err := errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Prefix.Validate(), c.Webhook.Validate())
	if c.Webhook.Webhook.URL == "" {
		err = errors.Join(err, errors.New("WEBHOOK_URL is required"))
	}
	return err
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) {
		app.PrintHelp(stdout, "webhook", "The eventmesh webhook consumer: signed HTTP delivery of events with retries and dead letters.", &config{})
		return 0
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, "webhook", app.Version)
		return 0
	}
	cfg, err := app.Load[config](environ)
	if err != nil {
		fmt.Fprintln(stderr, "webhook: configuration:", err)
		return 2
	}
	log := cfg.Log.Logger(stderr)
	stopTracing, _ := app.StartTracing(ctx, "eventmesh-webhook", log) // logs a failure; events flow without spans
	defer stopTracing(context.Background())
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("webhook stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the consumer until SIGINT or SIGTERM, then drains it: no more
// fetching, in-flight deliveries finish and settle, then the connection is
// drained.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	ctx, stop := app.SignalContext(ctx)
	defer stop()
	subjects, err := cfg.Prefix.Subjects()
	if err != nil {
		return err
	}
	nc, err := streams.Connect(ctx, cfg.NATS, "eventmesh-webhook", log)
	if err != nil {
		return err
	}
	defer app.Drain(nc, 10*time.Second)
	reg := app.NewRegistry()
	rt, err := app.NewWebhook(nc, subjects, cfg.Webhook, consumers.NewMetrics(reg), log)
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
