// Command producer runs the producer alone against an external NATS server
// (NATS_URL): it owns the ENMESHED stream and serves the Connector webhook
// ingest.
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
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/streams"
)

type config struct {
	Log      app.LogConfig
	NATS     streams.ConnConfig
	Producer producing.Config
}

func (c config) Validate() error {
	return errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Producer.Validate())
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	return app.Main(ctx, app.Binary[config]{
		Name:    "producer",
		Summary: "The eventmesh producer: Connector webhooks in, the ENMESHED stream out.",
		Log:     func(c *config) app.LogConfig { return c.Log },
		Serve:   serve,
	}, args, environ, stdout, stderr)
}

// serve runs the producer until ctx ends; ingest answers the requests in
// flight before the connection drains.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	nc, err := streams.Connect(ctx, cfg.NATS, "eventmesh-producer", log)
	if err != nil {
		return err
	}
	defer app.Drain(nc, 10*time.Second)
	prod, err := producing.Start(ctx, cfg.Producer, nc, app.NewRegistry(), log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err = <-prod.HTTP.Done():
		err = fmt.Errorf("ingest server: %w", err)
	}
	prod.Shutdown()
	return err
}
