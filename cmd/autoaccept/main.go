// Command autoaccept accepts incoming relationship requests through the
// enmeshed Connector's REST API, from the transport.relationshipChanged
// events in ENMESHED.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type config struct {
	Log       app.LogConfig
	NATS      streams.ConnConfig
	Prefix    streams.PrefixConfig
	HTTPAddr  string `env:"HTTP_ADDR" envDefault:"127.0.0.1:9090" desc:"address of /healthz, /readyz and /metrics"`
	Connector connector.Config
	Accept    autoaccept.ConsumerConfig
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
	return app.Main(ctx, app.Binary[config]{
		Name:    "autoaccept",
		Summary: "The eventmesh auto-accept consumer: accepts incoming relationship requests through the Connector's API.",
		Log:     func(c *config) app.LogConfig { return c.Log },
		Serve:   serve,
	}, args, environ, stdout, stderr)
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	subjects, err := cfg.Prefix.Subjects()
	if err != nil {
		return err
	}
	return app.ServeConsumer(ctx, cfg.NATS, "autoaccept", cfg.HTTPAddr, log, func(js jetstream.JetStream, reg *prometheus.Registry) (app.Runner, func(), error) {
		rt, err := autoaccept.New(js, subjects, cfg.Accept, cfg.Connector, consumers.NewMetrics(reg), reg, log)
		return rt, nil, err
	})
}
