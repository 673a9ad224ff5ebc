// Command eventmesh is the all-in-one binary: an embedded NATS server with
// JetStream (or NATS_URL), the ENMESHED stream, the Connector webhook
// ingest, and the admin subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/archiving"
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/nats-io/nats.go"
)

type config struct {
	Log      app.LogConfig
	Embedded embedded.Config
	NATS     streams.ConnConfig
	Producer producing.Config
	Webhook  webhook.ConsumerConfig
	Archive  archiving.Config
	Accept   autoaccept.ConsumerConfig
	Bridge   bridge.Config
}

func (c config) Validate() error {
	err := errors.Join(c.Log.Validate(), c.Producer.Validate())
	if c.Webhook.Enabled() {
		err = errors.Join(err, c.Webhook.Validate())
	}
	if c.Archive.Archive.Enabled {
		err = errors.Join(err, c.Archive.Validate())
	}
	if c.Accept.AutoAccept.Enabled {
		err = errors.Join(err, c.Accept.Validate(c.Producer.Connector))
	}
	if c.Bridge.Enabled() {
		err = errors.Join(err, c.Bridge.Validate())
	}
	if !c.Embedded.Embedded && c.Embedded.ServerConfig != "" {
		err = errors.Join(err, errors.New("NATS_SERVER_CONFIG is set but NATS_EMBEDDED=false: there is no embedded server to configure"))
	}
	if c.Embedded.Embedded {
		err = errors.Join(err, c.NATS.Validate(), c.embedded().Validate())
		if c.Embedded.ServerConfig == "" && (c.NATS.Creds != "" || c.NATS.NKey != "") {
			err = errors.Join(err, errors.New("NATS_CREDS or NATS_NKEY is set but cannot set up the embedded server's authentication: "+
				"use NATS_USER and NATS_PASSWORD, or NATS_TOKEN, or NATS_SERVER_CONFIG with a file that defines this user"))
		}
		if c.Producer.Stream.MaxBytes > c.Embedded.MaxStore/2 {
			// The DLQ, outcomes and advisories streams need room too.
			err = errors.Join(err, fmt.Errorf("STREAM_MAX_BYTES %s must be at most half of NATS_MAX_STORE %s", c.Producer.Stream.MaxBytes, c.Embedded.MaxStore))
		}
	}
	return err
}

// embedded is the embedded server's configuration with its client
// authentication: the credentials eventmesh itself and the admin commands
// connect with (used by the server unless NATS_SERVER_CONFIG is set).
func (c config) embedded() embedded.Config {
	e := c.Embedded
	e.Auth = embedded.Auth{User: c.NATS.User, Password: c.NATS.Password, Token: c.NATS.Token}
	return e
}

// ownCredentials are the nats.go options of eventmesh's in-process
// connection to its embedded server: the credentials of NATS_CREDS,
// NATS_NKEY, NATS_USER/NATS_PASSWORD or NATS_TOKEN (no TLS in process).
func ownCredentials(c streams.ConnConfig) ([]nats.Option, error) {
	return streams.ConnConfig{Creds: c.Creds, NKey: c.NKey, User: c.User, Password: c.Password, Token: c.Token}.Options()
}

const usage = `eventmesh [command]

Commands:
  (none)                 run the mesh: embedded NATS server (NATS_EMBEDDED), the ENMESHED stream,
                         ingest, the webhook consumer when WEBHOOK_URL is set, the bridge when
                         BRIDGE_URL is set
  dlq ls|show|replay|purge
                         dead letters in ENMESHED_DLQ (eventmesh dlq --help)
  consumer ls|pause|resume
                         durable consumers on ENMESHED
  status [--json]        health of every durable consumer on ENMESHED (exit 0 ok, 1 attention, 2 unknown)
  archive query|replay|erase
                         the archive (eventmesh archive --help)
  webhook test           send one signed sample event to WEBHOOK_URL and show the answer
  bridge test            send one sample event to the broker of BRIDGE_URL and show its confirm
  demo [--duration 30s]  the whole mesh against a simulated Connector: watch events flow
  sql-source init [--dialect postgres|sqlite] [--apply [--example]]
                         DDL of the SQL event-table source (and an example trigger)
  bench [--sync 2m|always] [--runs 3] [--events N] [--postgres DSN]
                         every published figure beside its ceiling, measured in one run (BENCHMARKS.md)
  permissions BINARY [--durable D]
                         the least NATS permissions of producer, webhook, autoaccept, archiver,
                         bridge or status (what eventmesh status reads)
  version                print the version

Admin commands never start a server: they connect to NATS_URL, else to NATS_LISTEN.`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) && (len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
		app.PrintHelp(stdout, usage, "The all-in-one eventmesh: puts enmeshed Connector events into one durable JetStream stream.", &config{})
		return 0
	}
	if len(args) > 0 {
		switch args[0] {
		case "dlq", "consumer":
			return runAdmin(ctx, args, environ, stdout, stderr)
		case "archive":
			return runArchive(ctx, args, environ, stdout, stderr)
		case "demo":
			return runDemo(ctx, args[1:], environ, stdout, stderr)
		case "status":
			return runStatus(ctx, args[1:], environ, stdout, stderr)
		case "sql-source":
			return runSQLSource(ctx, args, environ, stdout, stderr)
		case "bench":
			return runBench(ctx, args[1:], environ, stdout, stderr)
		case "permissions":
			return runPermissions(ctx, args[1:], stdout, stderr)
		case "webhook":
			return runWebhookTest(ctx, args[1:], environ, stdout, stderr)
		case "bridge":
			return runBridgeTest(ctx, args[1:], environ, stdout, stderr)
		case "version", "--version", "-version":
			fmt.Fprintln(stdout, "eventmesh", app.Version)
			return 0
		default:
			fmt.Fprintf(stderr, "eventmesh: unknown command %q\n\nUsage: %s\n", args[0], usage)
			return 2
		}
	}
	cfg, err := app.Load[config](environ)
	if err != nil {
		fmt.Fprintln(stderr, "eventmesh: configuration:", err)
		return 2
	}
	log := cfg.Log.Logger(stderr)
	stopTracing, _ := app.StartTracing(ctx, "eventmesh", log) // logs a failure; events flow without spans
	defer stopTracing(context.Background())
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("eventmesh stopped", "err", err)
		return 1
	}
	return 0
}

// ignoredNATS reports whether settings for an external server are set
// while the embedded one runs: a context, or a NATS_URL other than the
// embedded server's own address (which admin commands may rightly use).
// Credentials are not ignored: the embedded server takes them.
func ignoredNATS(c streams.ConnConfig, listen string) bool {
	if c.Context != "" {
		return true
	}
	if c.URL == "" {
		return false
	}
	for _, u := range strings.Split(c.URL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host != listen {
			return true
		}
	}
	return false
}

// durableReady is the bridge as ingest's /readyz sees it: ready once its
// durable exists (so no event ingest accepts is missed by a new durable),
// whatever its broker does.
type durableReady struct{ *bridge.Bridge }

func (d durableReady) Ready(ctx context.Context) error { return d.DurableReady(ctx) }

// serve runs the mesh until SIGINT or SIGTERM, then shuts down in order:
// ingest (answering the requests in flight), the NATS connection (flushing
// pending publishes), the embedded server last.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	ctx, stop := app.SignalContext(ctx)
	defer stop()

	var (
		nc  *nats.Conn
		srv *embedded.Server
		err error
	)
	if cfg.Embedded.Embedded {
		if ignoredNATS(cfg.NATS, cfg.Embedded.Listen) {
			log.Warn("NATS_URL or NATS_CONTEXT is set but NATS_EMBEDDED=true: eventmesh runs its own server on NATS_LISTEN and ignores them "+
				"(set NATS_EMBEDDED=false to use that server; the admin commands do use them)",
				"nats_listen", cfg.Embedded.Listen, "nats_url", streams.Redact(cfg.NATS.URL))
		}
		var creds []nats.Option
		if creds, err = ownCredentials(cfg.NATS); err != nil {
			return err
		}
		if srv, err = embedded.Start(cfg.embedded(), log); err != nil {
			return err
		}
		defer srv.Shutdown()
		nc, err = srv.Connect(append(creds, streams.BaseOptions("eventmesh", log)...)...)
	} else {
		nc, err = streams.Connect(ctx, cfg.NATS, "eventmesh", log)
	}
	if err != nil {
		return err
	}
	defer app.Drain(nc, 10*time.Second)

	reg := app.NewRegistry()
	subjects, _ := cfg.Producer.Prefix.Subjects()
	metrics := consumers.NewMetrics(reg)
	js, err := streams.NewJetStream(nc, log) // the consumers'; the producer makes its own
	if err != nil {
		return err
	}
	var rts []app.Runner
	if cfg.Webhook.Enabled() {
		rt, err := webhook.New(js, subjects, cfg.Webhook, metrics, log)
		if err != nil {
			return err
		}
		rts = append(rts, rt)
	}
	if cfg.Accept.AutoAccept.Enabled {
		rt, err := autoaccept.New(js, subjects, cfg.Accept, cfg.Producer.Connector, metrics, reg, log)
		if err != nil {
			return err
		}
		rts = append(rts, rt)
	}
	if cfg.Bridge.Enabled() {
		b, err := bridge.New(js, subjects, cfg.Bridge, metrics, log)
		if err != nil {
			return err
		}
		rts = append(rts, durableReady{b})
	}
	if cfg.Archive.Archive.Enabled {
		arch, err := archiving.New(ctx, js, subjects, cfg.Archive, cfg.Embedded.DataDir, metrics, reg, log)
		if err != nil {
			return err
		}
		defer arch.Close()
		rts = append(rts, arch.Archiver)
	}
	// The consumers wait for the stream, which the producer creates.
	running := app.StartRuntimes(ctx, log, rts...)
	prod, err := producing.Start(ctx, cfg.Producer, nc, reg, log, running.Ready)
	if err != nil {
		running.Stop()
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-prod.HTTP.Done():
		err = fmt.Errorf("ingest server: %w", err)
	case err = <-running.Failed():
	}
	// Ingest stops taking events while the consumers drain; both finish
	// before the connection drains and the embedded server stops.
	done := make(chan struct{})
	go func() { running.Stop(); close(done) }()
	prod.Shutdown()
	<-done
	return err
}
