// Command archiver writes every event of the mesh, and what each consumer
// did with it, to the archive (PostgreSQL with ARCHIVE_DSN, else SQLite
// under DATA_DIR), and serves the read-only archive API on ARCHIVE_ADDR.
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
	DataDir  string `env:"DATA_DIR" envDefault:"./data" desc:"directory of the SQLite archive (archive.db) when ARCHIVE_DSN is not set"`
	Archive  app.ArchiveConfig
}

func (c config) Validate() error {
	return errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Prefix.Validate(), c.Archive.Validate())
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) {
		app.PrintHelp(stdout, "archiver", "The eventmesh archiver: every event and its outcomes, queryable and replayable.", &config{})
		return 0
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, "archiver", app.Version)
		return 0
	}
	cfg, err := app.Load[config](environ)
	if err != nil {
		fmt.Fprintln(stderr, "archiver: configuration:", err)
		return 2
	}
	log := cfg.Log.Logger(stderr)
	stopTracing, _ := app.StartTracing(ctx, "eventmesh-archiver", log) // logs a failure; events flow without spans
	defer stopTracing(context.Background())
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("archiver stopped", "err", err)
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
	nc, err := streams.Connect(ctx, cfg.NATS, "eventmesh-archiver", log)
	if err != nil {
		return err
	}
	defer app.Drain(nc, 10*time.Second)
	reg := app.NewRegistry()
	arch, err := app.NewArchive(ctx, nc, subjects, cfg.Archive, cfg.DataDir, consumers.NewMetrics(reg), reg, log)
	if err != nil {
		return err
	}
	defer arch.Close()
	rts := app.StartRuntimes(ctx, log, arch.Archiver)
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
