// Command archiver writes every event of the mesh, and what each consumer
// did with it, to the archive (PostgreSQL with ARCHIVE_DSN, else SQLite
// under DATA_DIR), and serves the read-only archive API on ARCHIVE_ADDR.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/archiving"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type config struct {
	Log      app.LogConfig
	NATS     streams.ConnConfig
	Prefix   streams.PrefixConfig
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:9090" desc:"address of /healthz, /readyz and /metrics"`
	DataDir  string `env:"DATA_DIR" envDefault:"./data" desc:"directory of the SQLite archive (archive.db) when ARCHIVE_DSN is not set"`
	Archive  archiving.Config
}

func (c config) Validate() error {
	return errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Prefix.Validate(), c.Archive.Validate())
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	return app.Main(ctx, app.Binary[config]{
		Name:    "archiver",
		Summary: "The eventmesh archiver: every event and its outcomes, queryable and replayable.",
		Log:     func(c *config) app.LogConfig { return c.Log },
		Serve:   serve,
	}, args, environ, stdout, stderr)
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	subjects, err := cfg.Prefix.Subjects()
	if err != nil {
		return err
	}
	return app.ServeConsumer(ctx, cfg.NATS, "archiver", cfg.HTTPAddr, log, func(js jetstream.JetStream, reg *prometheus.Registry) (app.Runner, func(), error) {
		arch, err := archiving.New(ctx, js, subjects, cfg.Archive, cfg.DataDir, consumers.NewMetrics(reg), reg, log)
		if err != nil {
			return nil, nil, err
		}
		return arch.Archiver, arch.Close, nil
	})
}
