// Command webhook delivers events from ENMESHED to one HTTP endpoint
// (WEBHOOK_URL), signed per Standard Webhooks, with retries by JetStream,
// dead letters, and a pause when the receiver needs a person.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type config struct {
	Log      app.LogConfig
	NATS     streams.ConnConfig
	Prefix   streams.PrefixConfig
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:9090" desc:"address of /healthz, /readyz and /metrics"`
	Webhook  webhook.ConsumerConfig
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
	return app.Main(ctx, app.Binary[config]{
		Name:    "webhook",
		Summary: "The eventmesh webhook consumer: signed HTTP delivery of events with retries and dead letters.",
		Log:     func(c *config) app.LogConfig { return c.Log },
		Serve:   serve,
	}, args, environ, stdout, stderr)
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	subjects, err := cfg.Prefix.Subjects()
	if err != nil {
		return err
	}
	return app.ServeConsumer(ctx, cfg.NATS, "webhook", cfg.HTTPAddr, log, func(js jetstream.JetStream, reg *prometheus.Registry) (app.Runner, func(), error) {
		rt, err := webhook.New(js, subjects, cfg.Webhook, consumers.NewMetrics(reg), log)
		return rt, nil, err
	})
}
