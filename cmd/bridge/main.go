// Command bridge delivers events from ENMESHED into a message broker
// (BRIDGE_URL: RabbitMQ, MQTT, Redis, Google Pub/Sub, Kafka), acknowledging
// each event only after the broker confirmed it, with retries by
// JetStream, dead letters, and a pause when the broker refuses our
// credentials.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type config struct {
	Log      app.LogConfig
	NATS     streams.ConnConfig
	Prefix   streams.PrefixConfig
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:9090" desc:"address of /healthz, /readyz (ready once the durable exists and the broker is ready) and /metrics"`
	Bridge   bridge.Config
}

func (c config) Validate() error {
	err := errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Prefix.Validate(), c.Bridge.Validate())
	if !c.Bridge.Enabled() {
		err = errors.Join(err, errors.New("BRIDGE_URL is required"))
	}
	return err
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	return app.Main(ctx, app.Binary[config]{
		Name:    "bridge",
		Summary: "The eventmesh bridge consumer: events into RabbitMQ, MQTT, Redis, Pub/Sub or Kafka, acknowledged after the broker's confirm.",
		Log:     func(c *config) app.LogConfig { return c.Log },
		Serve:   serve,
	}, args, environ, stdout, stderr)
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	subjects, err := cfg.Prefix.Subjects()
	if err != nil {
		return err
	}
	log.Info("bridge", "config", cfg.Bridge)
	return app.ServeConsumer(ctx, cfg.NATS, "bridge", cfg.HTTPAddr, log, func(js jetstream.JetStream, reg *prometheus.Registry) (app.Runner, func(), error) {
		b, err := bridge.New(js, subjects, cfg.Bridge, consumers.NewMetrics(reg), log)
		return b, nil, err
	})
}
