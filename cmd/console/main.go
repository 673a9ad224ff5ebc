// Command console serves the operator console alone, against NATS_URL and
// the archive store (ARCHIVE_DSN, else DATA_DIR/archive.db, opened as
// `eventmesh archive query` opens it), with /healthz, /readyz and /metrics
// on HTTP_ADDR.
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
	"github.com/eventmesh/eventmesh/cmd/internal/consoling"
	"github.com/eventmesh/eventmesh/console"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/streams"
)

type config struct {
	Log            app.LogConfig
	NATS           streams.ConnConfig
	Prefix         streams.PrefixConfig
	HTTPAddr       string `env:"HTTP_ADDR" envDefault:"127.0.0.1:9090" desc:"address of /healthz, /readyz and /metrics"`
	DataDir        string `env:"DATA_DIR" envDefault:"./data" desc:"directory of the SQLite archive (archive.db) when ARCHIVE_DSN is not set"`
	ArchiveDSN     string `env:"ARCHIVE_DSN" secret:"true" desc:"archive store the console reads: postgres://… or a SQLite file path; default DATA_DIR/archive.db"`
	ArchiveEnabled bool   `env:"ARCHIVE_ENABLED" envDefault:"true" desc:"the mesh keeps an archive (false: the console's event pages say it is off)"`
	Console        console.Config
}

func (c config) Validate() error {
	err := errors.Join(c.Log.Validate(), c.NATS.Validate(), c.Prefix.Validate(), c.Console.Validate())
	if c.Console.Addr == "" {
		err = errors.Join(err, errors.New("CONSOLE_ADDR is empty: the console binary has nothing to serve (set an address such as 127.0.0.1:8088)"))
	}
	return err
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	return app.Main(ctx, app.Binary[config]{
		Name:    "console",
		Summary: "The eventmesh operator console: the mesh in a browser (status, events, dead letters, live tail).",
		Log:     func(c *config) app.LogConfig { return c.Log },
		Serve:   serve,
	}, args, environ, stdout, stderr)
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	subjects, err := cfg.Prefix.Subjects()
	if err != nil {
		return err
	}
	nc, err := streams.Connect(ctx, cfg.NATS, "eventmesh-console", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		return err
	}
	var st store.Store
	if cfg.ArchiveEnabled {
		if st, err = store.OpenExisting(ctx, cfg.ArchiveDSN, cfg.DataDir); err != nil {
			return fmt.Errorf("archive (ARCHIVE_DSN, else DATA_DIR/%s; ARCHIVE_ENABLED=false to run without it): %w", store.DefaultFile, err)
		}
		defer st.Close()
	}
	srv, err := consoling.Start(ctx, cfg.Console, console.Deps{JS: js, Subjects: subjects, Store: st}, log)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	ready := func(ctx context.Context) error {
		if _, err := js.Stream(ctx, streams.Events); err != nil {
			return fmt.Errorf("stream %s: %w", streams.Events, err)
		}
		return nil
	}
	ops, err := app.ConsumerHTTP(cfg.HTTPAddr, app.NewRegistry(), ready, log)
	if err != nil {
		return err
	}
	defer ops.Shutdown(5 * time.Second)
	select {
	case <-ctx.Done():
		return nil
	case err := <-srv.HTTP.Done():
		return fmt.Errorf("console server: %w", err)
	case err := <-ops.Done():
		return fmt.Errorf("HTTP_ADDR server: %w", err)
	}
}
