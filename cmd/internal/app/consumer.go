package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// WebhookConfig is what the webhook consumer reads.
type WebhookConfig struct {
	Webhook webhook.Config
	Order   string           `env:"WEBHOOK_ORDER" envDefault:"none" desc:"none, or per-key: events of one peer are delivered in stream order (retries included) while other peers proceed in parallel; one process of the durable is active, the others stand by"`
	Runtime consumers.Config `envPrefix:"WEBHOOK_"`
}

// Enabled reports whether WEBHOOK_URL is set (eventmesh runs the webhook
// consumer only then).
func (c WebhookConfig) Enabled() bool { return c.Webhook.URL != "" }

// Validate checks both parts.
func (c WebhookConfig) Validate() error {
	var err error
	if c.Order != "none" && c.Order != "per-key" {
		err = fmt.Errorf("WEBHOOK_ORDER %q: want none or per-key", c.Order)
	}
	return errors.Join(c.Webhook.Validate(), c.Runtime.Validate("WEBHOOK_"), err)
}

// NewWebhook builds the webhook consumer: its durable filters on the
// subjects of WEBHOOK_TRIGGERS (and its replay subject), starts at "new"
// unless WEBHOOK_START says otherwise, and delivers with the signing sender.
func NewWebhook(nc *nats.Conn, s router.Subjects, c WebhookConfig, m *consumers.Metrics, log *slog.Logger) (*consumers.Runtime, error) {
	sender, err := webhook.NewSender(c.Webhook, log)
	if err != nil {
		return nil, err
	}
	patterns, err := router.ParsePatterns(c.Webhook.Triggers)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_TRIGGERS: %w", err)
	}
	filters, exact := patterns.FilterSubjects(s.Prefix())
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		return nil, err
	}
	o := consumers.Options{Name: c.Webhook.DurableName(), Filters: filters, DefaultStart: "new",
		Handler: sender.Handler(), Metrics: m, Log: log}
	if !exact {
		o.Match = patterns.Match
	}
	if c.Order == "per-key" {
		o.OrderKey = func(d consumers.Delivery) string { return router.OrderKey(d.Event.Data) }
	}
	return consumers.New(js, s, c.Runtime, o)
}

// Runner is a consumer the binaries run: a consumer runtime, or the
// archiver around one.
type Runner interface {
	Name() string
	Run(ctx context.Context) error
	Ready(ctx context.Context) error
}

// Runtimes runs consumers until their context ends, then waits for them
// to drain.
type Runtimes struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
	list   []Runner
}

// StartRuntimes runs each consumer in the background.
func StartRuntimes(ctx context.Context, log *slog.Logger, rts ...Runner) *Runtimes {
	ctx, cancel := context.WithCancel(ctx)
	r := &Runtimes{cancel: cancel, errs: make(chan error, len(rts)), list: rts}
	for _, rt := range rts {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := rt.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("consumer stopped", "consumer", rt.Name(), "err", err)
				r.errs <- fmt.Errorf("consumer %s: %w", rt.Name(), err)
			}
		}()
	}
	return r
}

// Failed delivers the error of a runtime that stopped on its own.
func (r *Runtimes) Failed() <-chan error { return r.errs }

// Ready is nil when every runtime is ready.
func (r *Runtimes) Ready(ctx context.Context) error {
	for _, rt := range r.list {
		if err := rt.Ready(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops fetching and waits for in-flight events to settle.
func (r *Runtimes) Stop() {
	r.cancel()
	r.wg.Wait()
}

// ConsumerHTTP serves /healthz, /readyz and /metrics of a consumer binary
// on HTTP_ADDR.
func ConsumerHTTP(addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger) (*HTTPServer, error) {
	mux := http.NewServeMux()
	Ops(mux, reg, ready)
	return Listen("HTTP_ADDR", addr, mux, log)
}

// ArchiveConfig is what the archiver reads.
type ArchiveConfig struct {
	Archive archiver.Config
	Runtime consumers.Config `envPrefix:"ARCHIVE_"`
}

// Validate checks both parts.
func (c ArchiveConfig) Validate() error {
	return errors.Join(c.Archive.Validate(), c.Runtime.Validate("ARCHIVE_"),
		TLSFiles{c.Archive.TLSCert, c.Archive.TLSKey}.Validate("ARCHIVE_TLS"))
}

// Archive is a running archiver's parts that need closing.
type Archive struct {
	Archiver *archiver.Archiver
	Store    store.Store
	HTTP     *HTTPServer // nil when ARCHIVE_ADDR is empty
}

// NewArchive opens the store (ARCHIVE_DSN, else dataDir/archive.db) and
// builds the archiver and its read-only HTTP API on ARCHIVE_ADDR.
func NewArchive(ctx context.Context, nc *nats.Conn, s router.Subjects, c ArchiveConfig, dataDir string, m *consumers.Metrics, reg *prometheus.Registry, log *slog.Logger) (*Archive, error) {
	st, err := store.Open(ctx, c.Archive.DSN, dataDir)
	if err != nil {
		return nil, fmt.Errorf("archive store (ARCHIVE_DSN): %w", err)
	}
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	a, err := archiver.New(js, s, c.Archive, c.Runtime, st, m, reg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	out := &Archive{Archiver: a, Store: st}
	if c.Archive.Addr != "" {
		tlsConfig, err := TLSFiles{c.Archive.TLSCert, c.Archive.TLSKey}.Config("ARCHIVE_TLS")
		if err != nil {
			st.Close()
			return nil, err
		}
		if out.HTTP, err = Listen("ARCHIVE_ADDR", c.Archive.Addr, archiver.Handler(st, c.Archive.APIKey), log, tlsConfig); err != nil {
			st.Close()
			return nil, err
		}
	}
	return out, nil
}

// Close stops the HTTP API and closes the store (after the archiver stopped).
func (a *Archive) Close() {
	if a.HTTP != nil {
		a.HTTP.Shutdown(5 * time.Second)
	}
	a.Store.Close()
}

// AutoAcceptConfig is what the auto-accept consumer reads.
type AutoAcceptConfig struct {
	AutoAccept autoaccept.Config
	Runtime    consumers.Config `envPrefix:"AUTOACCEPT_"`
}

// Validate checks both parts and that the Connector is configured.
func (c AutoAcceptConfig) Validate(conn connector.Config) error {
	err := errors.Join(c.AutoAccept.Validate(), c.Runtime.Validate("AUTOACCEPT_"))
	if !conn.Enabled() {
		err = errors.Join(err, errors.New("AUTOACCEPT_ENABLED=true needs CONNECTOR_URL and CONNECTOR_API_KEY"))
	}
	return err
}

// NewAutoAccept builds the auto-accept consumer: a durable on
// transport.relationshipChanged (start all) accepting through the
// Connector's API.
func NewAutoAccept(nc *nats.Conn, s router.Subjects, c AutoAcceptConfig, conn connector.Config, m *consumers.Metrics, reg prometheus.Registerer, log *slog.Logger) (*consumers.Runtime, error) {
	client, err := connector.New(conn, log)
	if err != nil {
		return nil, err
	}
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		return nil, err
	}
	h := autoaccept.NewHandler(client, c.AutoAccept, reg, log)
	return consumers.New(js, s, c.Runtime, consumers.Options{Name: autoaccept.Name,
		Filters: []string{s.Event(autoaccept.Namespace)}, DefaultStart: "all", Handler: h, Metrics: m, Log: log})
}
